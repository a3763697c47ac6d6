"""The loss decomposition of ``benchmarks/bench_losses.py`` on a world whose answer is known."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_losses import COMPONENTS, component_swaps, group_regret  # noqa: E402


def _value(plans: np.ndarray) -> np.ndarray:
    """A toy truth: value falls with the distance of exercise days (column 3) from 4 and of
    massage sessions (column 0) from 2; every other column is irrelevant."""
    return -np.abs(plans[:, 3] - 4) - 0.5 * np.abs(plans[:, 0] - 2)


def test_fixing_the_wrong_component_recovers_exactly_its_share_of_the_loss():
    oracle = np.array([[2, 2, 1, 4, 30, 8]] * 3, dtype=float)
    recommended = oracle.copy()
    recommended[:, 3] = [1, 4, 7]  # exercise wrong for two of three patients
    recommended[:, 5] = 12  # weeks differ but do not matter
    swaps = component_swaps(_value, recommended, oracle)
    assert set(swaps) == {label for label, _ in COMPONENTS}
    assert swaps["own exercise"] == pytest.approx(0.0)  # the whole loss
    assert swaps["weeks"] == pytest.approx(_value(recommended).mean())  # none of it
    assert swaps["massage"] == pytest.approx(_value(recommended).mean())


def test_massage_sessions_and_intensity_are_swapped_together():
    oracle = np.array([[2, 1, 0, 4, 30, 8]], dtype=float)
    recommended = np.array([[0, 0, 0, 4, 30, 8]], dtype=float)
    seen = []
    component_swaps(lambda p: seen.append(p.copy()) or np.zeros(len(p)), recommended, oracle)
    massage = seen[[label for label, _ in COMPONENTS].index("massage")]
    assert massage[0, :2].tolist() == [2, 1]  # a session count never pairs with "no intensity"


def test_group_regret_ratios_are_relative_to_the_average():
    regret = np.array([1.0, 1.0, 4.0, 2.0])
    groups = group_regret(regret, np.array(["a", "a", "b", "b"]))
    assert groups["a"]["regret"] == pytest.approx(1.0)
    assert groups["b"]["ratio"] == pytest.approx(3.0 / 2.0)
    assert groups["a"]["share"] == pytest.approx(0.5)
