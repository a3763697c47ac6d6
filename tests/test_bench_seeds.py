"""The spread summary of ``benchmarks/bench_seeds.py`` on figures whose answer is known."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_seeds import FIGURES, render, spread  # noqa: E402


def test_spread_is_mean_sample_sd_min_and_max():
    s = spread([0.8, 0.9, 1.0])
    assert s == pytest.approx({"mean": 0.9, "sd": 0.1, "min": 0.8, "max": 1.0})
    assert spread([0.5])["sd"] == 0.0  # one history: no spread, not NaN


def _result(scenario: str, k: int, value: float) -> dict:
    row = {"scenario": scenario, "history": k, "n_train": 1500, "chosen": f"model{k} (0)"}
    row.update({key: value for _, key, _ in FIGURES})
    return row


def test_render_one_row_per_scenario_in_history_order():
    results = [_result("small_confounded", 1, 0.6), _result("small_confounded", 0, 0.4),
               _result("tiny_clinic", 0, 0.5)]
    text = render(results, {"date": "2026-12-03", "cores": 2, "cpu": "x", "python": "3.11",
                            "scikit-learn": "1.9"}, "python benchmarks/bench_seeds.py", 2)
    rows = [line for line in text.splitlines() if line.startswith("| small_confounded")]
    assert len(rows) == 1
    assert "0.500 ± 0.141 [0.400, 0.600]" in rows[0]
    assert rows[0].endswith("`model0 (0)`; `model1 (0)` |")  # histories in order
    assert "| tiny_clinic | 1,500 | 0.500 ± 0.000 [0.500, 0.500]" in text
    assert "large_clinic" not in text  # scenarios not run are left out
