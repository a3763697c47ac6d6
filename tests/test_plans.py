"""The plan space: contract-valid, complete over the documented grid, encoding round-trips."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommender.contract.columns import Kind
from recommender.contract.csv_io import read_episodes, to_csv_bytes
from recommender.safety.plans import (
    GUIDELINE_PLAN,
    PLAN_SPACE,
    Plan,
    encode_frame,
    encoded_to_frame,
    guideline_plan_for,
)


def test_size_and_coverage():
    m = PLAN_SPACE.matrix
    assert len(PLAN_SPACE) == 13 * 5 * 8 * 3 * 4 == 6240
    assert len({tuple(r) for r in m}) == len(PLAN_SPACE)
    combos = {(int(s), int(lvl), int(t), int(e)) for s, lvl, t, e in m[:, :4]}
    assert len(combos) == 13 * 5 * 8  # every massage × training × exercise combination


def test_encoding_round_trips():
    frame = encoded_to_frame(PLAN_SPACE.matrix)
    assert np.array_equal(encode_frame(frame), PLAN_SPACE.matrix)
    for i in (0, 1234, len(PLAN_SPACE) - 1):
        plan = PLAN_SPACE.plan(i)
        assert PLAN_SPACE.index_of(plan) == i
        assert np.array_equal(plan.encode(), PLAN_SPACE.matrix[i])


def test_every_plan_is_contract_valid(training_csv):
    base = pd.read_csv(training_csv, dtype=str, keep_default_na=False).head(1)
    grid = encoded_to_frame(PLAN_SPACE.matrix)
    rows = pd.concat([base] * len(grid), ignore_index=True)
    rows[grid.columns] = grid.astype(str)
    rows["episode_id"] = [f"E{i}" for i in range(len(rows))]
    report = read_episodes(to_csv_bytes(rows), Kind.TRAINING).report
    assert report.valid, report.format(3)


def test_plan_refuses_inconsistent_intensity():
    with pytest.raises(ValueError):
        Plan(0, "gentle", 1, 1, 30, 8)
    with pytest.raises(ValueError):
        Plan(2, "none", 1, 1, 30, 8)


@pytest.mark.parametrize("values, column", [
    ((9, "gentle", 2, 3, 30, 8), "massage_sessions_per_week"),
    ((1, "GENTLE", 2, 3, 30, 8), "massage_intensity"),
    ((1, "gentle", -1, 3, 30, 8), "muscle_training_sessions_per_week"),
    ((1, "gentle", 2, 8, 30, 8), "exercise_days_per_week"),
    ((1, "gentle", 2, 3, 14, 8), "session_minutes"),
    ((1, "gentle", 2, 3, 30, 99), "programme_weeks"),
    ((1, "gentle", 2, 3, 30.5, 8), "session_minutes"),
    ((True, "gentle", 2, 3, 30, 8), "massage_sessions_per_week"),
])
def test_plan_refuses_values_outside_the_contract_naming_column_and_value(values, column):
    with pytest.raises(ValueError, match=f"'{column}': .* expected"):
        Plan(*values)


def test_guideline_follows_clinical_basis():
    g = GUIDELINE_PLAN
    assert g.has_massage and g.muscle_training_sessions_per_week == 2
    assert 2 <= g.exercise_days_per_week <= 4 and g.session_minutes == 30
    assert not guideline_plan_for(massage_allowed=False).has_massage
    assert guideline_plan_for(True, max_level=2).massage_intensity in ("gentle", "moderate")
    assert PLAN_SPACE.index_of(g) is not None
    assert "30 min" in g.describe()
