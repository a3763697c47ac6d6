"""The clinic simulator: deterministic, contract-valid, messy like real history, with an oracle."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.cli import main
from recommender.devtools.simulator import SCENARIOS, simulate
from recommender.safety import gate
from recommender.safety.plans import PLAN_SPACE, encode_frame, guideline_plan_for


def test_deterministic_per_seed():
    a, b, c = simulate(300, seed=3), simulate(300, seed=3), simulate(300, seed=4)
    assert a.episodes.equals(b.episodes)
    assert not a.episodes.equals(c.episodes)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_output_passes_validate(tmp_path, scenario, capsys):
    out = tmp_path / "sim.csv"
    assert main(["simulate", "--episodes", "500", "--seed", "2", "--scenario", scenario,
                 "--out", str(out)]) == 0
    assert main(["validate", str(out), "--kind", "training"]) == 0
    assert "valid training file, 500 row(s)" in capsys.readouterr().out


def test_history_is_messy(small_cohort):
    ep = small_cohort.episodes
    lost = ep["followup_pain_score"].isna().mean()
    assert 0.03 < lost < 0.25
    assert ep["sleep_quality"].isna().any() and ep["grip_strength_kg"].isna().any()
    big = simulate(4000, seed=11)
    broke = gate.violations(big.intakes(), encode_frame(big.episodes))
    assert broke.sum() > 0  # some historical plans broke the rules


def test_loss_to_follow_up_depends_on_outcome():
    cohort = simulate(6000, seed=5)
    value = cohort.expected_reduction(encode_frame(cohort.episodes), paired=True)
    lost = cohort.episodes["followup_pain_score"].isna().to_numpy()
    assert value[lost].mean() < value[~lost].mean() - 0.1


def test_therapists_choices_are_confounded():
    cohort = simulate(6000, seed=5, scenario="small_confounded")
    ep = cohort.episodes
    high = ep["pain_score"] >= 8
    low = ep["pain_score"] <= 4
    assert ep.loc[high, "massage_sessions_per_week"].mean() > ep.loc[low, "massage_sessions_per_week"].mean() + 0.5


def test_oracle_is_allowed_and_beats_history_and_guideline():
    cohort = simulate(300, seed=9)
    best, value = cohort.oracle()
    grid = PLAN_SPACE.matrix[best]
    assert not gate.violations(cohort.intakes(), grid).any()
    values = cohort.expected_reduction(PLAN_SPACE.matrix)
    assert np.allclose(values[np.arange(len(best)), best], value)
    hist = cohort.expected_reduction(encode_frame(cohort.episodes), paired=True)
    decisions = gate.evaluate_frame(cohort.intakes())
    guide = np.array([guideline_plan_for(d.massage_allowed, d.max_massage_level).encode()
                      for d in decisions])
    guide_value = cohort.expected_reduction(guide, paired=True)
    assert value.mean() > guide_value.mean() > hist.mean()


def test_expected_reduction_matches_sampled_outcomes():
    cohort = simulate(2000, seed=13)
    plans = encode_frame(cohort.episodes)
    expected = cohort.expected_reduction(plans, paired=True)
    draws = np.mean([cohort.sample_outcomes(plans, seed=s) for s in range(20)], axis=0)
    assert abs(draws.mean() - expected.mean()) < 0.03


def test_heterogeneous_effects():
    """Firm massage suits high tolerance and harms low tolerance, on average."""
    cohort = simulate(2000, seed=1)
    firm = np.array([[3, 3, 2, 3, 30, 8]], dtype=float)
    gentle = np.array([[3, 1, 2, 3, 30, 8]], dtype=float)
    diff = (cohort.expected_reduction(firm) - cohort.expected_reduction(gentle))[:, 0]
    tol = cohort.truth["pain_tolerance"].to_numpy()
    assert diff[tol == "high"].mean() > 0 > diff[tol == "low"].mean()
