"""The spread summary of ``benchmarks/bench_seeds.py`` on figures whose answer is known."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
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
                            "scikit-learn": "1.9"}, "python benchmarks/bench_seeds.py", 2, 2)
    rows = [line for line in text.splitlines() if line.startswith("| small_confounded")]
    assert len(rows) == 1
    assert "0.500 ± 0.141 [0.400, 0.600]" in rows[0]
    assert rows[0].endswith("`model0 (0)`; `model1 (0)` |")  # histories in order
    assert "| tiny_clinic | 1,500 | 1 | 0.500 ± 0.000 [0.500, 0.500]" in text
    assert "| small_confounded | 1,500 | 2 | " in text  # the histories each figure is over
    assert "large_clinic" not in text  # scenarios not run are left out


def test_thin_clinics_get_more_histories():
    from bench_seeds import SMALL_CLINIC, histories

    from recommender.devtools.simulator import SCENARIOS

    assert SCENARIOS["tiny_clinic"].default_episodes <= SMALL_CLINIC < SCENARIOS["large_clinic"].default_episodes
    assert histories("tiny_clinic", 3, 10) == 10
    assert histories("large_clinic", 3, 10) == 3


def test_choose_caution_takes_the_least_harmful_setting_the_data_cannot_tell_from_the_best():
    from bench_seeds import choose_caution

    # three scenarios × three settings; setting 0 is best on average, setting 1 is within a
    # standard error of it and harms fewer patients, setting 2 is clearly worse but harmless
    values = np.array([[0.90, 0.89, 0.70], [0.60, 0.61, 0.50], [0.80, 0.79, 0.60]])
    harms = np.array([[0.01, 0.00, 0.00], [0.02, 0.01, 0.00], [0.00, 0.00, 0.00]])
    chosen, diff, se = choose_caution(values, harms)
    assert chosen == 1
    assert diff[0] == 0 and diff[2] < -se[2]
    # the same values with the harm reversed: the best mean is kept
    assert choose_caution(values, harms[:, ::-1])[0] == 0


def test_caution_table_chooses_within_each_size_class_and_says_whether_the_engine_ships_it():
    from bench_engine import CAUTION_GRID
    from bench_seeds import caution_table

    from recommender.model.engine import LARGE_HISTORY, setting_for

    def sweep(best_j: int) -> list[dict]:
        return [{"normalised_value": 0.9 if j == best_j else 0.5, "harmed_share": 0.0}
                for j in range(len(CAUTION_GRID))]

    thin = CAUTION_GRID.index(setting_for(LARGE_HISTORY - 1))
    large = CAUTION_GRID.index(setting_for(LARGE_HISTORY))

    def results(best_thin: int, best_large: int) -> list[dict]:
        return [dict(_result(s, k, 0.5), caution_sweep=sweep(best), followed_up=n)
                for s, best, n in (("tiny_clinic", best_thin, 350),
                                   ("large_clinic", best_large, 17_000)) for k in (0, 1)]

    text = "\n".join(caution_table(results(thin, large)))
    assert text.count("(the same)") == 2 and "not the chosen setting" not in text
    other = (large + 1) % len(CAUTION_GRID)
    text = "\n".join(caution_table(results(thin, other)))
    assert text.count("(the same)") == 1 and text.count("not the chosen setting") == 1
    c, z = CAUTION_GRID[other]
    large_part = text[text.index(f"{LARGE_HISTORY:,} followed-up episodes or more"):]
    assert f"| **{c}** | **{z}** |" in large_part and "tiny_clinic" not in large_part
