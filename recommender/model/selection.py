"""Let the data choose the model's flexibility, by the policy value it would deliver.

Prediction error is the wrong yardstick for a recommender: a model can predict outcomes
well yet rank plans badly.  So each candidate plan basis is fitted on K − 1 folds, its
policy (the plan it would rank first, by ``mean − caution × epistemic sd``) is formed for
the held-out fold's patients, and the value of that policy is estimated there by a
doubly-robust score:

    ψᵢ(π) = m(xᵢ) + μ̂(xᵢ, π(xᵢ)) − m(xᵢ) + αᵢ (yᵢ − μ̂(xᵢ, pᵢ))

with the *most flexible* candidate as the common referee μ̂ (fitted without the fold) and
the Riesz representer ``αᵢ = 1 + Z(xᵢ, pᵢ)ᵀ γ`` of the policy value in the referee's basis
(automatic debiasing, as in :mod:`recommender.model.evaluation`).  Candidates are compared
by the paired difference of their scores, so shared noise cancels.  The first (most rigid)
candidate is kept unless another beats it by more than ``SELECTION_Z`` standard errors —
with thin data the present model stays.

The same contest then sets how much a *direct* outcome model (gradient boosting on patient
and plan together, :func:`stack_contest`) is stacked into the ranking: it re-ranks the
chosen effect model's shortlist, and a weight above zero must again win on cross-fitted
doubly-robust value.  The ridge's smooth per-patient curves miss tree-shaped interactions
that boosting sees; boosting alone is confounded and ranks thousands of plans too slowly,
so it only ever chooses among the plans the orthogonal model already ranks highest.
"""

from __future__ import annotations

import numpy as np

# Below this many followed-up rows the rigid basis is kept without a contest (too little to tell).
MIN_ROWS_FOR_SELECTION = 3000
# A more flexible candidate must beat the rigid one by this many standard errors.  Half a
# standard error: with this much data the rigid model's policy was the best of the
# candidates on none of the simulated clinics, so a lead that is more likely than not
# real is enough (a full one kept the rigid model where an adaptive one was better).
SELECTION_Z = 0.5
# Held-out rows scored per fold (a random subset: bounds the cost of ranking all plans).
SELECTION_ROWS_PER_FOLD = 800
# The representer's ridge, as a multiple of the referee's own ridge penalty.
RIESZ_PENALTY = 3.0


def select_basis(est, fits: list[dict], folds, psi, P, r, w, plans: np.ndarray,
                 caution: float, random_state) -> tuple[int, dict]:
    """Index of the chosen candidate in ``fits`` and a JSON-ready record of the contest."""
    kinds = [f"{f['name'][0]}+{f['name'][1]}" for f in fits]
    record: dict = {"candidates": kinds, "chosen": kinds[0]}
    if len(fits) == 1:
        record["reason"] = "one candidate"
        return 0, record
    if len(r) < MIN_ROWS_FOR_SELECTION:
        record["reason"] = f"fewer than {MIN_ROWS_FOR_SELECTION} rows: the rigid basis is kept"
        return 0, record
    rng = np.random.default_rng(random_state)
    scores = [[] for _ in fits]  # per candidate: DR score of its gain over history, per row
    weights = []
    referee = max(fits, key=lambda f: (f["basis"].n_features, f["name"][1]))  # most flexible
    n = len(r)
    for k, test in enumerate(folds):
        rows = test if len(test) <= SELECTION_ROWS_PER_FOLD else np.sort(
            rng.choice(test, SELECTION_ROWS_PER_FOLD, replace=False))
        inflate = n / max(n - len(test), 1)  # fold models saw fewer rows
        chosen = [_policy(est, f, f["fold_coefs"][k], f["coef_cov_"] * inflate, psi[rows],
                          f["e_oof"][rows], plans, caution) for f in fits]
        for c, idx in enumerate(chosen):
            scores[c].append(_dr_gain(est, referee, k, psi[rows], referee["e_oof"][rows], P[rows],
                                      plans[idx], r[rows], w[rows]))
        weights.append(w[rows])
    wts = np.concatenate(weights)
    gains = [np.concatenate(s) for s in scores]
    record["policy_gain"] = {kind: _wmean(g, wts) for kind, g in zip(kinds, gains)}
    best, best_margin = 0, 0.0
    record["margin"] = {}
    for c in range(1, len(fits)):
        diff = gains[c] - gains[0]
        mean, se = _wmean(diff, wts), _wse(diff, wts)
        record["margin"][kinds[c]] = {"gain": mean, "se": se}
        if mean > SELECTION_Z * se and mean > best_margin:
            best, best_margin = c, mean
    record["chosen"] = kinds[best]
    record["reason"] = ("cross-fitted doubly-robust policy value" if best else
                        "no candidate clearly beat the rigid basis")
    return best, record


def stack_contest(est, fit: dict, fits: list[dict], folds, Xp, psi, P, r, m_oof, w,
                  plans: np.ndarray, caution: float, direct_models: list, weights: tuple[float, ...],
                  shortlist: int, random_state) -> tuple[float, dict]:
    """Stacking weight of the direct model (the first of ``weights`` — no stacking — unless
    another beats it by ``SELECTION_Z`` standard errors) and a record of the contest.

    ``direct_models[k]`` was fitted without fold k; ``m_oof`` is the out-of-fold baseline,
    so the effect model's held-out mean ``m(x) + contrast`` is on the direct model's scale."""
    record: dict = {"weights": list(map(float, weights)), "chosen": float(weights[0])}
    if len(weights) == 1:
        record["reason"] = "one weight"
        return float(weights[0]), record
    if len(r) < MIN_ROWS_FOR_SELECTION:
        record["reason"] = f"fewer than {MIN_ROWS_FOR_SELECTION} rows: no stacking"
        return float(weights[0]), record
    rng = np.random.default_rng(random_state)
    referee = max(fits, key=lambda f: (f["basis"].n_features, f["name"][1]))
    scores = [[] for _ in weights]
    wts = []
    n = len(r)
    for k, test in enumerate(folds):
        rows = test if len(test) <= SELECTION_ROWS_PER_FOLD else np.sort(
            rng.choice(test, SELECTION_ROWS_PER_FOLD, replace=False))
        inflate = n / max(n - len(test), 1)
        contrast, sd = est.grid_moments(fit["basis"], fit["fold_coefs"][k], fit["coef_cov_"] * inflate,
                                        psi[rows], fit["e_oof"][rows], plans)
        mean = m_oof[rows, None] + contrast
        top = shortlist_of(mean - caution * sd, shortlist)
        direct = est.direct_on(direct_models[k], Xp[rows], plans, top)
        h_obs = direct_models[k].predict(np.hstack([Xp[rows], P[rows]])) - m_oof[rows]
        for c, lam in enumerate(weights):
            blend = stacked(np.take_along_axis(mean, top, 1), direct, lam)
            pick = top[np.arange(len(rows)), np.argmax(blend - caution * np.take_along_axis(sd, top, 1),
                                                       axis=1)]
            h_pol = direct_models[k].predict(np.hstack([Xp[rows], plans[pick]])) - m_oof[rows]
            scores[c].append(_dr_gain(est, referee, k, psi[rows], referee["e_oof"][rows], P[rows],
                                      plans[pick], r[rows], w[rows],
                                      direct=(h_obs, h_pol)))
        wts.append(w[rows])
    wts = np.concatenate(wts)
    gains = [np.concatenate(s) for s in scores]
    record["policy_gain"] = {str(lam): _wmean(g, wts) for lam, g in zip(weights, gains)}
    best, best_margin = 0, 0.0
    record["margin"] = {}
    for c in range(1, len(weights)):
        diff = gains[c] - gains[0]
        mean_d, se = _wmean(diff, wts), _wse(diff, wts)
        record["margin"][str(weights[c])] = {"gain": mean_d, "se": se}
        if mean_d > SELECTION_Z * se and mean_d > best_margin:
            best, best_margin = c, mean_d
    record["chosen"] = float(weights[best])
    record["reason"] = ("cross-fitted doubly-robust policy value" if best else
                        "stacking did not clearly beat the effect model alone")
    return float(weights[best]), record


def shortlist_of(score: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's ``k`` highest scores (n, k), unordered."""
    k = min(k, score.shape[1])
    return np.argpartition(-score, k - 1, axis=1)[:, :k]


def stacked(effect_mean: np.ndarray, direct: np.ndarray, weight: float) -> np.ndarray:
    """(1 − weight) × the effect model's mean + weight × the direct model's."""
    return effect_mean if weight == 0 else (1 - weight) * effect_mean + weight * direct


def _policy(est, fit: dict, coef, cov, psi, e, plans, caution) -> np.ndarray:
    """Index into ``plans`` of each patient's best plan by mean − caution × epistemic sd."""
    mean, sd = est.grid_moments(fit["basis"], coef, cov, psi, e, plans)
    return np.argmax(mean - caution * sd, axis=1)


def _dr_gain(est, referee: dict, k: int, psi, e, P_obs, P_pol, r, w, direct=None) -> np.ndarray:
    """Per-row DR score of E[y(π)] − E[y], with the referee's fold-k model and representer.

    ``r`` is y − m(x) and ``e`` the referee's e(x), both out of fold, so the baseline
    cancels from the contrast.  ``direct`` = (outcome − m(x) under the observed plans, under
    π) of a direct model, which then replaces the referee as the outcome model (the
    representer stays the referee's).  The stacking contest needs it: the effect model as
    referee scores its own policy with the fold model that chose it and never let stacking
    win where it helped (the foreign clinic); an even mix of the two was as timid."""
    basis, coef = referee["basis"], referee["fold_coefs"][k]
    Z_obs = est.effect_design(basis(P_obs) - e, psi, basis)
    Z_pol = est.effect_design(basis(P_pol) - e, psi, basis)
    target = (w[:, None] * Z_pol).sum(axis=0) / w.sum()
    G = referee["fold_grams"][k]
    gamma = np.linalg.solve(G + RIESZ_PENALTY * np.diag(referee["ridge_"]), target)
    mu_obs, mu_pol = (Z_obs @ coef, Z_pol @ coef) if direct is None else direct
    return mu_pol - mu_obs + (Z_obs @ gamma) * (r - mu_obs)


def _wmean(x: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * x) / np.sum(w))


def _wse(x: np.ndarray, w: np.ndarray) -> float:
    m = _wmean(x, w)
    return float(np.sqrt(np.sum(w**2 * (x - m) ** 2)) / np.sum(w))
