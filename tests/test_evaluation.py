"""Evaluation: report shape, exact values on simulated data, and the DR correction."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.model.evaluation import DoublyRobust, evaluate, format_report, guideline_plans


def test_report_on_simulated_data(trained, test_cohort, typed_test_rows):
    report = evaluate(trained["model"], typed_test_rows, test_cohort)
    assert report["gate_violations"] == 0
    assert 0.75 < report["prediction"]["interval_coverage"] < 0.99
    pv = report["policy_value"]
    for name in ("model", "historical", "guideline"):
        assert pv[name]["ci_low"] < pv[name]["estimate"] < pv[name]["ci_high"]
    sim = report["simulated"]
    assert sim["oracle_value"] >= sim["model_value"] > sim["historical_value"]
    assert abs(sim["dr_error"]) < 0.5
    assert abs(sim["dr_error_true_followup"]) < 0.5
    groups = {(r["group"], r["level"]) for r in report["subgroups"]}
    assert ("sex", "F") in groups and ("age_band", "40-59") in groups
    text = format_report(report)
    assert "normalised value" in text and "Subgroups" in text
    assert f"{sim['dr_error_true_followup']:+.3f} with the true follow-up probabilities" in text


def test_dr_uses_given_followup_probabilities(trained, typed_test_rows):
    """Known P(followed up) replaces the learned model's: every followed-up episode weighs
    1 / p, every lost one 0, and the estimate changes with them."""
    model = trained["model"]
    plans = np.array([r.best.plan.encode() for r in model.recommend_frame(typed_test_rows)])
    observed = typed_test_rows["followup_pain_score"].notna().to_numpy()
    p = np.linspace(0.3, 0.9, len(typed_test_rows))
    dr = DoublyRobust(model, typed_test_rows, followup_probability=p)
    np.testing.assert_allclose(dr.w, np.where(observed, 1 / p, 0.0))
    learned = DoublyRobust(model, typed_test_rows).value(plans)["estimate"]
    assert dr.value(plans)["estimate"] != learned


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: p[:-1], "one value per episode"),
    (lambda p: np.where(np.arange(len(p)) == 3, np.nan, p), "row 3 is nan"),
    (lambda p: np.where(np.arange(len(p)) == 5, 0.0, p), "row 5 is 0.0"),
    (lambda p: np.where(np.arange(len(p)) == 7, 1.5, p), "row 7 is 1.5"),
])
def test_given_followup_probabilities_are_checked(trained, typed_test_rows, change, message):
    p = change(np.full(len(typed_test_rows), 0.8))
    with pytest.raises(ValueError, match=message):
        DoublyRobust(trained["model"], typed_test_rows, followup_probability=p)


def test_dr_corrects_a_biased_outcome_model(trained, typed_test_rows):
    """Shift the model's baseline by +1 point: the direct estimate moves by 1, DR barely."""
    model = trained["model"]
    dr = DoublyRobust(model, typed_test_rows)
    plans = np.array([r.best.plan.encode() for r in model.recommend_frame(typed_test_rows)])
    honest = dr.value(plans)
    base = model.estimator_.baseline_model_
    original = base.predict

    class Shifted:
        def predict(self, X):
            return original(X) + 1.0

    model.estimator_.baseline_model_ = Shifted()
    try:
        biased = DoublyRobust(model, typed_test_rows).value(plans)
    finally:
        model.estimator_.baseline_model_ = base
    assert biased["direct"] - honest["direct"] > 0.8
    assert abs(biased["estimate"] - honest["estimate"]) < 0.2


def test_residual_model_corrects_a_bias_the_basis_cannot_see(trained):
    """A plan-dependent bias in a subgroup (older patients, firmer massage: −1.5 points) is a
    step the effect basis cannot express, so the Riesz correction alone leaves much of it;
    the cross-fitted residual model removes it (needs a file large enough to learn from)."""
    from recommender.contract.csv_io import read_episodes, to_csv_bytes
    from recommender.devtools.simulator import simulate

    model = trained["model"]
    rows = read_episodes(to_csv_bytes(simulate(3000, seed=98).episodes), "training").frame
    plans = np.array([r.best.plan.encode() for r in model.recommend_frame(rows)])
    honest = DoublyRobust(model, rows).value(plans)["estimate"]
    est = model.estimator_
    age, intensity = model.featurizer_.index("age"), -est.n_plan_columns_ + 1
    original = est.predict
    est.predict = lambda X: original(X) - 1.5 * (X[:, age] > 60) * (X[:, intensity] >= 2)
    try:
        riesz_only = DoublyRobust(model, rows, residual_correction=False).value(plans)["estimate"]
        corrected = DoublyRobust(model, rows).value(plans)
    finally:
        del est.predict
    assert corrected["direct"] < honest - 0.3  # the model's own plug-in estimate is biased
    assert riesz_only < honest - 0.15          # the basis's correction leaves much of it
    assert abs(corrected["estimate"] - honest) < 0.1


def test_residual_model_needs_enough_followed_up_rows(trained, typed_test_rows):
    """On a small file (300 episodes) no residual model is fitted: too little to learn from."""
    assert DoublyRobust(trained["model"], typed_test_rows).residual_models is None


def test_the_paired_difference_is_the_difference_of_values_with_a_narrower_interval(
        trained, typed_test_rows):
    """Two policies on the same episodes share part of their estimates' noise: the paired
    difference's interval is narrower than either value's (what the promotion gate uses)."""
    model = trained["model"]
    dr = DoublyRobust(model, typed_test_rows)
    plans = np.array([r.best.plan.encode() for r in model.recommend_frame(typed_test_rows)])
    guide = guideline_plans(typed_test_rows)
    a, b, d = dr.value(plans), dr.value(guide), dr.difference(plans, guide)
    assert d["estimate"] == pytest.approx(a["estimate"] - b["estimate"])
    assert d["ci_high"] - d["ci_low"] < min(a["ci_high"] - a["ci_low"], b["ci_high"] - b["ci_low"])
    same = dr.difference(plans, plans)
    assert same == {"estimate": 0.0, "ci_low": 0.0, "ci_high": 0.0}


def test_a_file_without_follow_ups_is_refused_not_given_a_value(trained, typed_test_rows):
    """No outcome was observed: a policy value would be the model's own prediction, so
    evaluation refuses with the reason instead of printing one with an interval."""
    rows = typed_test_rows.assign(followup_pain_score=np.nan)
    with pytest.raises(ValueError, match="none of the 300 .*follow-up pain score"):
        evaluate(trained["model"], rows)
    with pytest.raises(ValueError, match="no outcome to evaluate"):
        DoublyRobust(trained["model"], rows)
    with pytest.raises(ValueError, match="none of the 0 valid episode"):
        evaluate(trained["model"], rows.iloc[0:0])
