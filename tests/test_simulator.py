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


@pytest.mark.parametrize("scenario", ["large_clinic", "heavy_noise", "foreign_clinic"])
def test_true_followup_probability_undoes_the_outcome_dependent_loss(scenario):
    """Weighting followed-up episodes by 1 / the true P(followed up) recovers the mean
    expected outcome of all episodes (lost ones included); the unweighted mean of the
    followed-up is biased upward."""
    cohort = simulate(30_000, seed=8, scenario=scenario)
    p = cohort.followup_probability()
    observed = cohort.episodes["followup_pain_score"].notna().to_numpy()
    assert p.shape == observed.shape and np.all((p > 0) & (p < 1))
    assert abs(p.mean() - observed.mean()) < 0.01
    reduction = (cohort.episodes["pain_score"] - cohort.episodes["followup_pain_score"]).to_numpy(float)
    truth = cohort.expected_reduction(encode_frame(cohort.episodes), paired=True).mean()
    weighted = np.sum(np.where(observed, np.nan_to_num(reduction) / p, 0.0)) / len(p)
    assert np.nanmean(reduction) - truth > 0.1  # the followed-up did better
    assert abs(weighted - truth) < 0.06


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


# ----------------------------------------------------------------- the wider family of clinics


def _oracle_plans(cohort):
    best, _ = cohort.oracle()
    return PLAN_SPACE.matrix[best]


def test_moving_optimum_best_exercise_rises_with_activity():
    cohort = simulate(1500, seed=2, scenario="moving_optimum")
    best = _oracle_plans(cohort)
    activity = cohort.truth["activity_level"].to_numpy()
    days = [best[activity == a, 3].mean() for a in ("sedentary", "light", "moderate", "active")]
    assert days == sorted(days) and days[-1] - days[0] > 1.5
    standard = _oracle_plans(simulate(1500, seed=2))
    assert best[activity == "active", 3].mean() > standard[activity == "active", 3].mean() + 0.8


def test_threshold_reversal_turns_more_into_less():
    cohort = simulate(800, seed=3, scenario="threshold_reversal")
    two = np.array([[2, 1, 2, 3, 30, 8]], dtype=float)
    four = np.array([[4, 1, 2, 3, 30, 8]], dtype=float)
    massage_ok = cohort.truth["_massage_level_allowed"].to_numpy() >= 1
    diff = (cohort.expected_reduction(four) - cohort.expected_reduction(two))[massage_ok, 0]
    assert diff.mean() < -0.3
    more_exercise = (cohort.expected_reduction(np.array([[2, 1, 2, 7, 30, 8]], float))
                     - cohort.expected_reduction(np.array([[2, 1, 2, 4, 30, 8]], float)))
    assert more_exercise.mean() < 0


def test_subgroup_harm_firm_massage_in_fibromyalgia_and_training_in_nerve_pain():
    cohort = simulate(3000, seed=4, scenario="subgroup_harm")
    truth = cohort.truth
    fibro = (truth["pain_cause"] == "fibromyalgia").to_numpy() & (truth["_massage_level_allowed"] == 3).to_numpy()
    firm = cohort.expected_reduction(np.array([[3, 3, 1, 3, 30, 8]], float))[:, 0]
    none = cohort.expected_reduction(np.array([[0, 0, 1, 3, 30, 8]], float))[:, 0]
    assert (firm - none)[fibro].mean() < -0.3
    nerve = (truth["pain_cause"] == "nerve").to_numpy()
    train4 = cohort.expected_reduction(np.array([[0, 0, 4, 3, 30, 8]], float))[:, 0]
    train1 = cohort.expected_reduction(np.array([[0, 0, 1, 3, 30, 8]], float))[:, 0]
    assert (train4 - train1)[nerve].mean() < -0.5 < (train4 - train1)[~nerve].mean()


@pytest.mark.parametrize("scenario", ["heavy_noise", "foreign_clinic"])
def test_heavy_tailed_expectation_matches_sampled_outcomes(scenario):
    cohort = simulate(1500, seed=13, scenario=scenario)
    plans = encode_frame(cohort.episodes)
    expected = cohort.expected_reduction(plans, paired=True)
    draws = np.array([cohort.sample_outcomes(plans, seed=s) for s in range(30)])
    assert abs(draws.mean() - expected.mean()) < 0.04
    from recommender.devtools.simulator import _draw_noise, _noise_sd

    z = _draw_noise(cohort.truth, cohort.scenario, np.random.default_rng(0)) / _noise_sd(
        cohort.truth, cohort.scenario)
    assert np.mean(z**4) / np.mean(z**2) ** 2 > 5  # far heavier tails than a normal (kurtosis 3)


def test_messy_clinic_is_messy(tmp_path, capsys):
    cohort = simulate(3000, seed=6, scenario="messy_clinic")
    ep = cohort.episodes
    for col in ("sleep_quality", "anxiety_score", "depression_score", "bmi", "adherence"):
        assert 0.2 < ep[col].isna().mean() < 0.35, col
    assert "referral_source" in ep
    lost = ep["followup_pain_score"].isna().mean()
    standard = simulate(3000, seed=6).episodes
    assert lost > standard["followup_pain_score"].isna().mean() + 0.05
    out = tmp_path / "messy.csv"
    assert main(["simulate", "--episodes", "300", "--scenario", "messy_clinic", "--out", str(out)]) == 0
    assert main(["validate", str(out), "--kind", "training"]) == 0
    assert "ignored unknown column(s): referral_source" in capsys.readouterr().err


def test_foreign_world_is_fixed_per_scenario_and_unlike_the_standard_one():
    a = simulate(400, seed=1, scenario="foreign_clinic")
    b = simulate(400, seed=2, scenario="foreign_clinic")
    assert not a.episodes.equals(b.episodes)
    # the same patients get the same truth whichever cohort they came from: one world
    plans = PLAN_SPACE.matrix[::97]
    assert np.allclose(a.expected_reduction(plans)[:5],
                       simulate(400, seed=1, scenario="foreign_clinic").expected_reduction(plans)[:5])
    # unlike the standard process on the very same patients
    standard = simulate(400, seed=1)
    assert a.truth["pain_score"].equals(standard.truth["pain_score"])
    corr = np.corrcoef(a.expected_reduction(plans).ravel(), standard.expected_reduction(plans).ravel())[0, 1]
    assert corr < 0.8
    # therapists' choices follow another model too (foreign minutes include 25 and 40)
    assert set(a.episodes["session_minutes"]) - {15, 20, 30, 45, 60}


def test_foreign_oracle_is_allowed():
    cohort = simulate(300, seed=9, scenario="foreign_clinic")
    assert not gate.violations(cohort.intakes(), _oracle_plans(cohort)).any()
