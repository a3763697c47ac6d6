"""Plan bases and the choice of the model's flexibility by cross-fitted policy value."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.model.estimator import PlanEffectRegressor
from recommender.model.plan_basis import PlanBasis
from recommender.model.selection import MIN_ROWS_FOR_SELECTION

CANDIDATES = (("quadratic", 0), ("quadratic", 2), ("spline", 2))


def test_spline_basis_extends_the_quadratic_one():
    P = np.column_stack([np.tile(np.arange(8.0), 20), np.repeat([20.0, 30.0, 45.0, 60.0], 40)])
    quad, spline = PlanBasis.fit(P, "quadratic"), PlanBasis.fit(P, "spline")
    # 8 dose levels: u, u², on/off + 4 hinges determine any curve through them; 4 levels need none
    assert [len(k) for k in spline.knots] == [4, 0]
    phi_q, phi_s = quad(P), spline(P)
    assert phi_s.shape[1] == phi_q.shape[1] + 4 == spline.n_features
    assert np.allclose(phi_s[:, : quad.n_main], phi_q[:, : quad.n_main])
    levels = np.unique(phi_s[:, : spline.n_main], axis=0)
    assert np.linalg.matrix_rank(levels[:, [0, 2, 4, 5, 6, 7]]) == 6  # hinges are not collinear
    with pytest.raises(ValueError, match="basis must be one of"):
        PlanBasis.fit(P, "cubic")


def _threshold_world(n, seed):
    """Dose 0–7 whose best level moves with a patient trait: helps up to it, hurts past it."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    dose = np.clip(np.round(3 + 1.2 * x[:, 0] + rng.normal(0, 1.6, n)), 0, 7)  # confounded
    best = np.where(x[:, 1] > 0, 5.0, 2.0)
    effect = np.minimum(dose, best) - 1.2 * np.maximum(dose - best, 0)
    y = 2 * np.sin(x[:, 0]) + x[:, 2] + effect + rng.normal(0, 1, n)
    return np.column_stack([x, dose]), y, best


def test_flexible_candidate_is_chosen_when_it_recommends_better():
    X, y, _ = _threshold_world(6000, 0)
    est = PlanEffectRegressor(n_plan_columns=1, candidates=CANDIDATES, random_state=0).fit(X, y)
    sel = est.selection_
    assert sel["candidates"] == ["quadratic+0", "quadratic+2", "spline+2"]
    assert sel["chosen"] != "quadratic+0"
    assert f"{est.basis_}+{est.adaptive_rounds_}" == sel["chosen"]
    # the chosen model's recommended doses beat the rigid model's on new patients
    Xt, _, best = _threshold_world(2000, 1)
    rigid = PlanEffectRegressor(n_plan_columns=1, random_state=0).fit(X, y)
    grid = np.arange(8.0)[:, None]

    def value(model):
        dose = grid[model.score_grid(Xt[:, :3], grid)[0].argmax(axis=1), 0]
        return np.mean(np.minimum(dose, best) - 1.2 * np.maximum(dose - best, 0))

    assert value(est) > value(rigid) + 0.1


def test_thin_data_keeps_the_rigid_model():
    X, y, _ = _threshold_world(MIN_ROWS_FOR_SELECTION - 500, 2)
    est = PlanEffectRegressor(n_plan_columns=1, candidates=CANDIDATES, random_state=0).fit(X, y)
    assert est.selection_["chosen"] == "quadratic+0" and est.basis_ == "quadratic"
    assert "fewer than" in est.selection_["reason"]


def test_single_candidate_needs_no_contest_and_empty_is_refused():
    X, y, _ = _threshold_world(400, 3)
    est = PlanEffectRegressor(n_plan_columns=1, candidates=(("spline", 1),), random_state=0).fit(X, y)
    assert est.selection_["chosen"] == "spline+1" and est.basis_ == "spline"
    with pytest.raises(ValueError, match="at least one"):
        PlanEffectRegressor(n_plan_columns=1, candidates=()).fit(X, y)


def _tree_world(n, seed):
    """A dose that helps patients with a middling trait and harms the others: a tree-shaped
    modifier (|x| < 0.7) that effects linear in the patient features cannot represent."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    dose = np.clip(np.round(2 + 0.8 * x[:, 2] + rng.normal(0, 1.2, n)), 0, 4)  # confounded
    slope = np.where(np.abs(x[:, 1]) < 0.7, 1.0, -0.6)
    y = x[:, 2] + np.cos(x[:, 0]) + slope * dose + rng.normal(0, 1, n)
    return np.column_stack([x, dose]), y, slope


def test_direct_model_is_stacked_when_it_recommends_better():
    X, y, _ = _tree_world(6000, 0)
    est = PlanEffectRegressor(n_plan_columns=1, stack_weights=(0.0, 0.5), stack_shortlist=3,
                              random_state=0).fit(X, y)
    assert est.stack_selection_["chosen"] == est.stack_weight_ == 0.5
    assert est.direct_model_ is not None
    Xt, _, slope = _tree_world(2000, 1)
    grid = np.arange(5.0)[:, None]
    mean, _, sd = est.score_grid(Xt[:, :3], grid)
    eligible = np.ones_like(mean, dtype=bool)
    eligible[:, 4] = False  # an ineligible plan is never chosen, stacked or not
    score, _ = est.stacked_scores(Xt[:, :3], grid, mean, sd, 1.0, eligible)
    assert np.isinf(score[:, 4]).all() and (np.isfinite(score).sum(axis=1) == 3).all()
    stacked_dose = grid[score.argmax(axis=1), 0]
    alone_dose = grid[np.where(eligible, mean - sd, -np.inf).argmax(axis=1), 0]
    assert np.mean(slope * stacked_dose) > np.mean(slope * alone_dose) + 0.1


def test_thin_data_is_not_stacked():
    X, y, _ = _tree_world(MIN_ROWS_FOR_SELECTION - 500, 2)
    est = PlanEffectRegressor(n_plan_columns=1, stack_weights=(0.0, 0.5), random_state=0).fit(X, y)
    assert est.stack_weight_ == 0.0 and est.direct_model_ is None
    assert "fewer than" in est.stack_selection_["reason"]
