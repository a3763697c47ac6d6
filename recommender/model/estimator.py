"""``PlanEffectRegressor``: outcome of a patient under a plan, learned from confounded history.

An R-learner (Nie & Wager 2021) with a dose–response basis chosen by the data:

    y = m(x) + (φ(p) − e(x))ᵀ B ψ(x) + ε

* ``m(x) = E[y | x]`` — gradient boosting, cross-fitted;
* ``e(x) = E[φ(p) | x]`` — what therapists usually gave such a patient (a
  generalised propensity mean), cross-fitted, so the effect estimate is
  orthogonal to how plans were chosen (confounding on observed intake);
* ``φ(p)`` — a dose–response basis of the plan (:mod:`recommender.model.plan_basis`):
  components, squares, on/off and pairwise products, optionally with hinges at
  inner dose levels;
* candidates — bases × rounds of *adaptive ridge* (penalties reweighted by how much
  each patient feature and plan term mattered in a first fit) — compete on the
  cross-fitted doubly-robust value of the plans they would recommend
  (:mod:`recommender.model.selection`); the first (the present rigid model) is kept
  unless another is clearly better;
* ``ψ(x)`` — standardised patient features, so every effect varies by patient;
* optionally a *direct* outcome model (gradient boosting on patient and plan) is stacked
  into the ranking of the chosen model's shortlist, with a weight that must win the same
  cross-fitted policy-value contest (:func:`recommender.model.selection.stack_contest`).

``B`` is a ridge solution with the penalty chosen by cross-validation; its
posterior covariance gives each prediction an epistemic variance, which widens
intervals for plans far from the evidence.  Intervals are cross-validated conformal
(CV+ style) on out-of-fold residuals, normalised by a learned noise scale.

The last ``n_plan_columns`` columns of ``X`` are the plan; the others the patient.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.model_selection import GroupKFold, KFold
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from recommender.model.plan_basis import PlanBasis
from recommender.model.selection import (
    MIN_ROWS_FOR_SELECTION,
    select_basis,
    shortlist_of,
    stack_contest,
    stacked,
)

_QUANTILE_GRID = np.linspace(0.0, 1.0, 201)
# Rows per block when the effect design is built on the fly (bounds memory at 200k rows).
DESIGN_BLOCK = 8192
# Penalise interactions, barely the average plan effects (ψ = 1 columns).
MAIN_EFFECT_PENALTY = 0.01
# Range of the adaptive (reweighted) ridge's penalty multipliers.
ADAPTIVE_CLIP = (0.05, 20.0)


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: np.ndarray) -> np.ndarray:
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cum = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(qs, cum, v)


def conformal_levels(coverage: float, n: float) -> tuple[float, float]:
    """Quantile levels at which :func:`_weighted_quantiles` of n exchangeable residuals give a
    central interval of ``coverage``: the split-conformal order statistics
    ((n + 1)(1 ∓ α)/2-th, interpolated) as levels of its midpoint convention; the plain
    levels as n grows."""
    tail = (1 - coverage) / 2
    if not np.isfinite(n):
        return tail, 1 - tail
    return (max(0.0, (tail * (n + 1) - 0.5) / n), min(1.0, ((1 - tail) * (n + 1) - 0.5) / n))


class PlanEffectRegressor(RegressorMixin, BaseEstimator):
    """Predict an outcome from patient features and a plan, robust to confounded plan choice.

    Parameters
    ----------
    n_plan_columns : int
        How many trailing columns of ``X`` describe the plan.
    pair_modifiers : tuple of int
        Patient columns (indices into the patient part) that modify the
        pairwise plan interactions; all patient columns modify main effects.
    alphas : tuple of float
        Ridge penalties (per effective sample) tried by cross-validation.  The grid reaches
        far above what large histories choose: a few hundred episodes need a penalty of
        30–1000, and a grid that stopped at 10 forced the thinnest clinics to personalise
        on under-shrunk interactions.
    n_folds : int
        Folds for cross-fitting the nuisance models and choosing the penalty.
    coverage : float
        Default coverage of :meth:`predict_interval`.
    nuisance_max_iter : int
        Boosting iterations of the baseline-outcome model.
    candidates : tuple of (str, int)
        Candidate effect models as (plan basis, rounds of adaptive ridge): ``"quadratic"``
        or ``"spline"`` (:mod:`recommender.model.plan_basis`); each adaptive round refits
        the ridge with penalties divided by how strongly a first fit says each patient
        feature modifies effects and each plan term matters, so real effect modifiers
        escape the shrinkage that noise needs.  The first is the fallback; with more than
        one, the data choose by cross-fitted policy value.
    selection_caution : float
        The policy scored during selection ranks plans by ``mean − selection_caution ×
        epistemic sd`` (as the recommender does).
    stack_weights : tuple of float
        Weights of the direct model in the stacked ranking mean, ``(1 − λ) × effect model +
        λ × direct model``, tried by cross-fitted policy value; the first (normally 0, the
        effect model alone) is kept unless another is clearly better.
    stack_shortlist : int
        How many of the effect model's best plans per patient the stacked mean re-ranks.
    random_state : int or None
    """

    def __init__(
        self,
        n_plan_columns: int = 6,
        pair_modifiers: tuple[int, ...] = (),
        alphas: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0),
        n_folds: int = 3,
        coverage: float = 0.9,
        nuisance_max_iter: int = 150,
        candidates: tuple[tuple[str, int], ...] = (("quadratic", 0),),
        selection_caution: float = 1.0,
        stack_weights: tuple[float, ...] = (0.0,),
        stack_shortlist: int = 20,
        random_state: int | None = None,
    ) -> None:
        self.n_plan_columns = n_plan_columns
        self.pair_modifiers = pair_modifiers
        self.alphas = alphas
        self.n_folds = n_folds
        self.coverage = coverage
        self.nuisance_max_iter = nuisance_max_iter
        self.candidates = candidates
        self.selection_caution = selection_caution
        self.stack_weights = stack_weights
        self.stack_shortlist = stack_shortlist
        self.random_state = random_state

    # ------------------------------------------------------------------ bases

    def _split(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = self.n_plan_columns
        return X[:, :-k], X[:, -k:]

    def patient_basis(self, Xp: np.ndarray) -> np.ndarray:
        """ψ(x): an intercept and the standardised patient features (n, 1 + d_x).

        Every plan effect is a linear function of ψ, so effects vary by patient."""
        z = (Xp - self.x_mean_) / self.x_scale_
        return np.column_stack([np.ones(len(z)), z])

    def _policy_basis(self, psi: np.ndarray) -> np.ndarray:
        """Patient basis for e(x): ψ plus squares and cubes of its non-binary columns,
        so saturating or clipped prescribing habits are followed."""
        z = psi[:, 1:][:, self.numeric_columns_]
        return np.hstack([psi, z**2, z**3])

    def _expected_phi(self, psi: np.ndarray) -> np.ndarray:
        return self._policy_basis(psi) @ self.policy_coef_

    def expected_plan_basis(self, X_patients) -> np.ndarray:
        """e(x): the plan basis therapists' habits would give these patients (n, d_phi)."""
        return self._expected_phi(self.patient_basis(np.asarray(X_patients, dtype=float)))

    def plan_basis(self, P: np.ndarray) -> np.ndarray:
        """φ(p): the chosen dose–response basis of each plan (n, d_phi)."""
        return self.phi_(np.asarray(P, dtype=float))

    def effect_design(self, D: np.ndarray, psi: np.ndarray, basis: PlanBasis | None = None) -> np.ndarray:
        """The effect regressors Z for plan-basis rows ``D`` (usually φ(p) − e(x)) and ψ:
        main plan terms × all of ψ, pair terms × (1, modifiers).  ``Z @ coef_`` is the
        plan's effect; evaluation reuses Z for its debiasing (Riesz) correction."""
        n_main = (basis or self.phi_).n_main
        main = np.einsum("ni,nj->nij", D[:, :n_main], psi).reshape(len(D), -1)
        small = psi[:, self.pair_psi_idx_]
        pair = np.einsum("ni,nj->nij", D[:, n_main:], small).reshape(len(D), -1)
        return np.hstack([main, pair])

    def _is_main_effect(self, basis: PlanBasis) -> np.ndarray:
        """Which compact regressors are plan terms × the intercept of ψ."""
        d_psi = len(self.x_mean_) + 1
        n_pair = basis.n_features - basis.n_main
        main = np.zeros((basis.n_main, d_psi), dtype=bool)
        main[:, 0] = True
        pair = np.zeros((n_pair, len(self.pair_psi_idx_)), dtype=bool)
        pair[:, 0] = True
        return np.concatenate([main.ravel(), pair.ravel()])

    def _full_positions(self, basis: PlanBasis, d_psi: int) -> np.ndarray:
        """Where the compact coefficients sit on the full φ × ψ grid."""
        grid = np.arange(basis.n_features * d_psi).reshape(basis.n_features, d_psi)
        return np.concatenate([grid[:basis.n_main].ravel(),
                               grid[basis.n_main:][:, self.pair_psi_idx_].ravel()])

    # ------------------------------------------------------------------ fit

    def fit(self, X, y, sample_weight=None, groups=None, policy_plans=None) -> "PlanEffectRegressor":
        """Cross-fit nuisances, solve the ridge R-learner for each candidate basis, keep the
        one with the best cross-fitted policy value, calibrate intervals.

        ``policy_plans``: the plans a recommendation may choose from (for scoring the
        candidates' policies); default the distinct plans of the training data."""
        X, y = validate_data(self, X, y, y_numeric=True)
        k = self.n_plan_columns
        if X.shape[1] <= k:
            raise ValueError(
                f"X has {X.shape[1]} feature(s) but needs at least one patient column "
                f"besides the {k} plan column(s)"
            )
        if X.shape[0] < 2 * max(self.n_folds, 2):
            raise ValueError(f"n_samples={X.shape[0]} is too few to cross-fit {self.n_folds} folds")
        if not self.candidates:
            raise ValueError("candidates must name at least one (basis, rounds) pair")
        w = _check_sample_weight(sample_weight, X)
        y = y.astype(float)
        self.n_plan_columns_ = k
        Xp, P = self._split(X)
        self.x_mean_ = Xp.mean(axis=0)
        scale = Xp.std(axis=0)
        self.x_scale_ = np.where(scale > 1e-12, scale, 1.0)
        self.numeric_columns_ = np.array([len(np.unique(Xp[:200_000, j])) > 2
                                          for j in range(Xp.shape[1])], dtype=bool)
        mods = np.asarray(self.pair_modifiers, dtype=int)
        self.pair_psi_idx_ = np.concatenate([[0], mods + 1]).astype(int)

        psi = self.patient_basis(Xp)
        splitter = GroupKFold(self.n_folds) if groups is not None else KFold(
            self.n_folds, shuffle=True, random_state=self.random_state)
        folds = [test for _, test in splitter.split(X, y, groups)]

        m_oof = self._cross_fit_baseline(folds, Xp, y, w)
        fits = []
        for kind in dict.fromkeys(kind for kind, _ in self.candidates):
            rounds = [int(r) for k, r in self.candidates if k == kind]
            fits += self._fit_candidates(PlanBasis.fit(P, kind), rounds, folds, psi, P, y - m_oof, w)
        order = {(k, int(r)): i for i, (k, r) in enumerate(self.candidates)}
        fits.sort(key=lambda f: order[f["name"]])
        plans = np.unique(P, axis=0) if policy_plans is None else np.asarray(policy_plans, float)
        chosen, self.selection_ = select_basis(self, fits, folds, psi, P, y - m_oof, w, plans,
                                               self.selection_caution, self.random_state)
        fit = fits[chosen]
        self.basis_ = fit["basis"].kind
        self.adaptive_rounds_ = fit["name"][1]
        self.phi_ = fit["basis"]
        self.plan_low_, self.plan_center_ = self.phi_.low, self.phi_.center
        self.plan_half_range_ = self.phi_.half_range
        for name in ("policy_coef_", "alpha_", "coef_", "coef_cov_", "gram_", "ridge_"):
            setattr(self, name, fit[name])
        self.baseline_model_ = self._fit_baseline(Xp, y, w)
        self._fit_stack(fit, fits, folds, Xp, psi, P, y, m_oof, w, plans)
        resid = fit["resid"]
        self._calibrate(folds, Xp, psi, fit["e_oof"], P, resid, w)
        self.oof_residual_ = resid
        self._grid_cache = None
        return self

    def _fit_stack(self, fit, fits, folds, Xp, psi, P, y, m_oof, w, plans) -> None:
        """Stacking weight of the direct model by cross-fitted policy value; the direct model
        itself (on all rows) only when the weight is above zero."""
        weights = tuple(float(v) for v in self.stack_weights) or (0.0,)
        contest = len(weights) > 1 and len(y) >= MIN_ROWS_FOR_SELECTION
        direct = []
        if contest:
            n = len(y)
            for test in folds:
                train = np.setdiff1d(np.arange(n), test)
                direct.append(self._fit_direct(Xp[train], P[train], y[train], w[train]))
        self.stack_weight_, self.stack_selection_ = stack_contest(
            self, fit, fits, folds, Xp, psi, P, y - m_oof, m_oof, w, plans, self.selection_caution,
            direct, weights, self.stack_shortlist, self.random_state)
        self.direct_model_ = (self._fit_direct(Xp, P, y, w) if self.stack_weight_ > 0 else None)

    def _fit_direct(self, Xp, P, y, w) -> HistGradientBoostingRegressor:
        """Outcome from patient and plan together: sees tree-shaped interactions the ridge's
        smooth curves miss, but is not orthogonalised, so it only re-ranks a shortlist."""
        return HistGradientBoostingRegressor(
            max_iter=300, learning_rate=0.08, random_state=self.random_state,
        ).fit(np.hstack([Xp, P]), y, sample_weight=w)

    @staticmethod
    def direct_on(model, Xp: np.ndarray, plans: np.ndarray, top: np.ndarray) -> np.ndarray:
        """A direct model's outcome for each patient under each of its shortlisted plans (n, k)."""
        n, k = top.shape
        X = np.hstack([np.repeat(Xp, k, axis=0), plans[top.reshape(-1)]])
        return model.predict(X).reshape(n, k)

    def stacked_scores(self, X_patients, plans: np.ndarray, mean: np.ndarray, model_sd: np.ndarray,
                       caution: float, eligible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ranking score ``stacked mean − caution × epistemic sd`` on each patient's shortlist
        of eligible plans (−inf elsewhere), and the stacked mean (n, k plans).

        Without stacking it is the effect model's score on every eligible plan."""
        check_is_fitted(self)
        score = np.where(eligible, mean - caution * model_sd, -np.inf)
        if getattr(self, "direct_model_", None) is None or self.stack_weight_ == 0:
            return score, mean
        top = shortlist_of(score, self.stack_shortlist)
        rows = np.arange(len(score))[:, None]
        blend = stacked(mean[rows, top],
                        self.direct_on(self.direct_model_, np.asarray(X_patients, float), plans, top),
                        self.stack_weight_)
        out_mean = mean.copy()
        out_mean[rows, top] = blend
        out = np.full_like(score, -np.inf)
        out[rows, top] = np.where(np.isfinite(score[rows, top]), blend - caution * model_sd[rows, top],
                                  -np.inf)
        return out, out_mean

    def stacked_mean_of(self, X_patients, plans_chosen: np.ndarray, mean: np.ndarray) -> np.ndarray:
        """Stacked mean of one plan per patient (paired rows), e.g. the guideline plan."""
        if getattr(self, "direct_model_", None) is None or self.stack_weight_ == 0:
            return mean
        direct = self.direct_model_.predict(np.hstack([np.asarray(X_patients, float), plans_chosen]))
        return stacked(mean, direct, self.stack_weight_)

    def _cross_fit_baseline(self, folds, Xp, y, w) -> np.ndarray:
        """Out-of-fold m(x), so each row's residual comes from a model that never saw it."""
        n = len(y)
        m_oof = np.empty(n)
        for test in folds:
            train = np.setdiff1d(np.arange(n), test)
            m_oof[test] = self._fit_baseline(Xp[train], y[train], w[train]).predict(Xp[test])
        return m_oof

    def _fit_policy(self, psi, phi, w) -> np.ndarray:
        """e(x): weighted ridge of the plan basis on a polynomial patient basis."""
        basis = self._policy_basis(psi)
        A = (basis.T * w) @ basis + 1e-3 * w.sum() * np.eye(basis.shape[1])
        A[0, 0] -= 1e-3 * w.sum()  # intercept unpenalised
        return np.linalg.solve(A, (basis.T * w) @ phi)

    def design_blocks(self, D: np.ndarray, psi: np.ndarray, rows: np.ndarray, basis: PlanBasis):
        """Yield (row indices, Z) in blocks, so the full design never sits in memory."""
        for start in range(0, len(rows), DESIGN_BLOCK):
            r = rows[start:start + DESIGN_BLOCK]
            yield r, self.effect_design(D[r], psi[r], basis)

    def _fit_candidates(self, basis: PlanBasis, rounds: list[int], folds, psi, P, r, w) -> list[dict]:
        """The R-learner with one plan basis, at each requested number of adaptive-ridge
        rounds: out-of-fold e(x), fold Gram matrices (built once), the ridge penalty by
        K-fold CV (in closed form from the Grams), coefficients per fold (for selection)
        and for all rows, posterior covariance and out-of-fold residuals."""
        n = len(r)
        phi = basis(P)
        e_oof = np.empty_like(phi)
        for t in folds:
            train = np.setdiff1d(np.arange(n), t)
            e_oof[t] = self._policy_basis(psi[t]) @ self._fit_policy(psi[train], phi[train], w[train])
        D = phi - e_oof
        grams, rhs, rr = [], [], []
        for t in folds:
            G = b = None
            for rows, Z in self.design_blocks(D, psi, t, basis):
                Gz, bz = (Z.T * w[rows]) @ Z, (Z.T * w[rows]) @ r[rows]
                G, b = (Gz, bz) if G is None else (G + Gz, b + bz)
            grams.append(G)
            rhs.append(b)
            rr.append(float(np.sum(w[t] * r[t] ** 2)))
        G, b = sum(grams), sum(rhs)
        variance = np.maximum(np.diag(G) / w.sum(), 1e-8)
        scale_diag = variance * np.where(self._is_main_effect(basis), MAIN_EFFECT_PENALTY, 1.0)
        policy_coef = self._fit_policy(psi, phi, w)

        def fold_coefs(alpha: float, scale: np.ndarray) -> list[np.ndarray]:
            return [self._solve(G - Gk, b - bk, alpha * (w.sum() - w[t].sum()) * scale)
                    for t, Gk, bk in zip(folds, grams, rhs)]

        def cv_error(alpha: float, scale: np.ndarray) -> float:  # Σ w (r − Z c)² held out
            return sum(s - 2 * c @ bk + c @ Gk @ c
                       for c, s, Gk, bk in zip(fold_coefs(alpha, scale), rr, grams, rhs))

        out = []
        alpha = self.alphas[0]  # replaced by the CV choice of round 0 before any use
        for step in range(max(rounds) + 1):
            if step:
                # Adaptive penalty: effect modifiers and plan terms that matter are shrunk less.
                first = self._solve(G, b, alpha * w.sum() * scale_diag)
                scale_diag = scale_diag * self._adaptive_multiplier(basis, first, variance)
            errors = {a: cv_error(a, scale_diag) for a in self.alphas}
            alpha = min(errors, key=errors.get)
            if step not in rounds:
                continue
            coefs = fold_coefs(alpha, scale_diag)
            ridge = alpha * w.sum() * scale_diag
            factor = cho_factor(G + np.diag(ridge))
            resid = np.empty(n)
            for t, c in zip(folds, coefs):
                for rows, Z in self.design_blocks(D, psi, t, basis):
                    resid[rows] = r[rows] - Z @ c
            s2 = float(np.sum(w * resid**2) / w.sum())
            out.append({
                "name": (basis.kind, step), "basis": basis, "alpha_": alpha,
                "coef_": cho_solve(factor, b), "fold_coefs": coefs, "e_oof": e_oof,
                "resid": resid, "policy_coef_": policy_coef,
                # Gram and penalty per unit weight: reused to debias policy-value estimates.
                "gram_": G / w.sum(), "ridge_": ridge / w.sum(),
                "fold_grams": [(G - Gk) / (w.sum() - w[t].sum()) for t, Gk in zip(folds, grams)],
                # Posterior covariance under the ridge's Gaussian prior: with little data it
                # stays wide (the prior's uncertainty), where a sandwich would look falsely sure.
                "coef_cov_": s2 * cho_solve(factor, np.eye(len(b))),
            })
        return out

    def _adaptive_multiplier(self, basis: PlanBasis, coef: np.ndarray, variance: np.ndarray) -> np.ndarray:
        """Per-coefficient penalty multipliers from a first fit: 1 / (strength of its patient
        feature × strength of its plan term), normalised to a median of 1."""
        z = np.abs(coef) * np.sqrt(variance)  # each regressor's contribution, in outcome units
        d_psi = len(self.x_mean_) + 1
        main = z[: basis.n_main * d_psi].reshape(basis.n_main, d_psi)
        pair = z[basis.n_main * d_psi:].reshape(-1, len(self.pair_psi_idx_))
        col = np.sqrt(np.mean(main**2, axis=0)) + 1e-12  # per patient feature
        row = np.sqrt(np.concatenate([np.mean(main[:, 1:] ** 2, axis=1),
                                      np.mean(pair[:, 1:] ** 2, axis=1) if pair.shape[1] > 1
                                      else np.mean(pair**2, axis=1)])) + 1e-12  # per plan term
        col, row = np.median(col) / col, np.median(row) / row
        mult = np.concatenate([(row[: basis.n_main, None] * col[None, :]).ravel(),
                               (row[basis.n_main:, None] * col[None, self.pair_psi_idx_]).ravel()])
        mult = np.where(self._is_main_effect(basis), 1.0, mult)  # average effects stay as they are
        return np.clip(mult, ADAPTIVE_CLIP[0], ADAPTIVE_CLIP[1])

    def _calibrate(self, folds, Xp, psi, e_oof, P, resid, w) -> None:
        """Noise scale (cross-fitted, so calibration never sees in-sample scales) and the
        conformal quantiles of normalised out-of-fold residuals."""
        n = len(resid)
        noise_oof = np.empty(n)
        for t in folds:
            train = np.setdiff1d(np.arange(n), t)
            noise_oof[t] = self._fit_noise(Xp[train], resid[train], w[train]).predict(Xp[t])
        self.noise_model_ = self._fit_noise(Xp, resid, w)
        self.noise_floor_ = max(float(np.sqrt(np.sum(w * resid**2) / w.sum())) * 0.25, 1e-6)
        noise_sd = np.maximum(noise_oof * np.sqrt(np.pi / 2), self.noise_floor_)
        model_var = np.empty(n)
        D = self.plan_basis(P) - e_oof
        for rows, Z in self.design_blocks(D, psi, np.arange(n), self.phi_):
            model_var[rows] = ((Z @ self.coef_cov_) * Z).sum(axis=1)
        sd = self._total_sd(noise_sd, model_var)
        self.residual_quantiles_ = _weighted_quantiles(resid / sd, w, _QUANTILE_GRID)
        # Kish's effective size of the (follow-up weighted) calibration set
        self.calibration_size_ = float(w.sum() ** 2 / np.sum(w**2))

    def _fit_baseline(self, Xp, y, w) -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(
            max_iter=self.nuisance_max_iter, learning_rate=0.08, min_samples_leaf=40,
            l2_regularization=1.0, early_stopping=False, random_state=self.random_state,
        ).fit(Xp, y, sample_weight=w)

    def _fit_noise(self, Xp, resid, w) -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(
            max_iter=60, max_depth=3, min_samples_leaf=max(20, len(resid) // 50),
            learning_rate=0.1, random_state=self.random_state,
        ).fit(Xp, np.abs(resid), sample_weight=w)

    @staticmethod
    def _solve(G: np.ndarray, b: np.ndarray, ridge: np.ndarray) -> np.ndarray:
        return cho_solve(cho_factor(G + np.diag(ridge)), b)

    def _noise_sd(self, Xp: np.ndarray) -> np.ndarray:
        # E|r| = σ·sqrt(2/π) for a normal residual
        return np.maximum(self.noise_model_.predict(Xp) * np.sqrt(np.pi / 2), self.noise_floor_)

    @staticmethod
    def _total_sd(noise_sd: np.ndarray, model_var: np.ndarray) -> np.ndarray:
        return np.sqrt(noise_sd**2 + np.maximum(model_var, 0))

    # ------------------------------------------------------------------ predict

    def predict_parts(self, X) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean outcome, total predictive sd and epistemic variance of each row of ``X``
        (what :meth:`predict` and :meth:`predict_interval` are built from)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        Xp, P = self._split(X)
        psi = self.patient_basis(Xp)
        Z = self.effect_design(self.plan_basis(P) - self._expected_phi(psi), psi)
        mean = self.baseline_model_.predict(Xp) + Z @ self.coef_
        model_var = ((Z @ self.coef_cov_) * Z).sum(axis=1)
        return mean, self._total_sd(self._noise_sd(Xp), model_var), model_var

    def predict(self, X) -> np.ndarray:
        """Expected outcome of each row's patient under that row's plan."""
        return self.predict_parts(X)[0]

    def predict_interval(self, X, coverage: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Conformal interval (low, high) with the given coverage (default ``self.coverage``)."""
        mean, sd, _ = self.predict_parts(X)
        lo_q, hi_q = self.normalised_quantiles(coverage)
        return mean + lo_q * sd, mean + hi_q * sd

    def normalised_quantiles(self, coverage: float | None = None) -> tuple[float, float]:
        """Lower and upper normalised residual quantiles of a central interval.

        At the split-conformal levels for the calibration set's effective size
        (:func:`conformal_levels`): at the plain levels an interval from n residuals covers
        about 0.9/(n + 1) too little at 90 % (two points at n = 40)."""
        c = self.coverage if coverage is None else coverage
        n = getattr(self, "calibration_size_", np.inf)  # models saved before it was recorded
        levels = conformal_levels(c, n)
        q = np.interp(levels, _QUANTILE_GRID, self.residual_quantiles_)
        return float(q[0]), float(q[1])

    def prob_at_least(self, mean: np.ndarray, sd: np.ndarray, threshold: np.ndarray) -> np.ndarray:
        """P(outcome ≥ threshold) under the calibrated residual distribution."""
        z = (np.asarray(threshold) - mean) / sd
        return 1.0 - np.interp(z, self.residual_quantiles_, _QUANTILE_GRID, left=0.0, right=1.0)

    def score_grid(self, X_patients, plans: np.ndarray):
        """Score every plan for every patient at once.

        Returns ``mean`` (n, k), ``sd`` total predictive sd (n, k) and
        ``model_sd`` epistemic sd (n, k).  Shared work is factored so a batch
        costs a few matrix products.
        """
        check_is_fitted(self)
        Xp = np.asarray(X_patients, dtype=float)
        psi = self.patient_basis(Xp)
        e = self._expected_phi(psi)
        contrast, model_var = self._moments(self._grid(plans), psi, e)
        mean = self.baseline_model_.predict(Xp)[:, None] + contrast
        sd = self._total_sd(self._noise_sd(Xp)[:, None], model_var)
        return mean, sd, np.sqrt(model_var)

    def grid_moments(self, basis: PlanBasis, coef: np.ndarray, cov: np.ndarray, psi: np.ndarray,
                     e: np.ndarray, plans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Effect of every plan relative to e(x) (n, k) and its epistemic sd, for any
        basis and coefficients (candidate models during selection)."""
        contrast, model_var = self._moments(self._grid_tables(basis, coef, cov, plans), psi, e)
        return contrast, np.sqrt(model_var)

    @staticmethod
    def _moments(tables: dict, psi: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Contrast and epistemic variance of every plan for every patient.

        Σᵢ = Σⱼₖ ψᵢⱼ ψᵢₖ C[(·, j), (·, k)] is the covariance of patient i's effect vector
        in φ-space; var = (φ − eᵢ)ᵀ Σᵢ (φ − eᵢ).  Both Σᵢ and ψψᵀ are symmetric, so only
        upper triangles are multiplied (off-diagonal terms counted twice): half the work."""
        d_phi, d_psi = e.shape[1], psi.shape[1]
        B = tables["coef_full"].reshape(d_phi, d_psi)
        v = psi @ B.T  # (n, d_phi): B ψ_i
        contrast = v @ tables["phi"].T - np.einsum("na,na->n", e, v)[:, None]
        j, k = tables["psi_upper"]
        pp = psi[:, j] * psi[:, k] * tables["psi_weight"]
        M = pp @ tables["cov_upper"].T  # (n, upper triangle of Σᵢ)
        a, b = tables["phi_upper"]
        Mr = np.empty((len(psi), d_phi, d_phi))
        Mr[:, a, b] = M
        Mr[:, b, a] = M
        Me = np.einsum("nab,nb->na", Mr, e)
        model_var = (M @ tables["phi_outer"].T - 2 * Me @ tables["phi"].T
                     + np.einsum("na,na->n", Me, e)[:, None])
        return contrast, np.maximum(model_var, 0)

    def difference(self, X_patients, plans_a: np.ndarray, plans_b: np.ndarray, with_sd: bool = True):
        """Expected outcome of plan a minus plan b, and its epistemic sd (paired rows).

        The baseline m(x) cancels, so no nuisance model is evaluated.  ``with_sd=False``
        skips the sd (``None``): it costs a product with the full coefficient covariance.
        """
        check_is_fitted(self)
        psi = self.patient_basis(np.asarray(X_patients, dtype=float))
        d = self.plan_basis(np.asarray(plans_a, float)) - self.plan_basis(np.asarray(plans_b, float))
        Z = self.effect_design(d, psi)
        if not with_sd:
            return Z @ self.coef_, None
        return Z @ self.coef_, np.sqrt(np.maximum(((Z @ self.coef_cov_) * Z).sum(axis=1), 0))

    def difference_to(self, X_patients, plans: np.ndarray, reference: np.ndarray,
                      columns: np.ndarray | None = None):
        """Every plan (k) minus each patient's own reference plan (n), and its epistemic sd:
        both (n, k).  The grid moments with φ(reference) in place of e(x), so testing many
        plans against one costs one grid pass, not a covariance product per pair.
        ``columns`` keeps only those plans, reusing the tables ``score_grid`` cached for
        ``plans`` (rebuilding them costs more than one patient's whole recommendation)."""
        check_is_fitted(self)
        psi = self.patient_basis(np.asarray(X_patients, dtype=float))
        tables = self._grid(np.asarray(plans, float))
        if columns is not None:
            tables = {**tables, "phi": tables["phi"][columns], "phi_outer": tables["phi_outer"][columns]}
        contrast, var = self._moments(tables, psi, self.plan_basis(np.asarray(reference, float)))
        return contrast, np.sqrt(var)

    def _grid(self, plans: np.ndarray) -> dict:
        key = (plans.shape, hash(np.ascontiguousarray(plans, dtype=float).tobytes()))
        if getattr(self, "_grid_cache", None) and self._grid_cache["key"] == key:
            return self._grid_cache
        self._grid_cache = {"key": key, **self._grid_tables(self.phi_, self.coef_, self.coef_cov_, plans)}
        return self._grid_cache

    def _grid_tables(self, basis: PlanBasis, coef: np.ndarray, cov: np.ndarray, plans: np.ndarray) -> dict:
        """Coefficients and covariance laid out on the full φ × ψ grid, and the plans' φ."""
        d_phi, d_psi = basis.n_features, len(self.x_mean_) + 1
        pos = self._full_positions(basis, d_psi)
        coef_full = np.zeros(d_phi * d_psi)
        coef_full[pos] = coef
        cov_full = np.zeros((d_phi * d_psi, d_phi * d_psi))
        cov_full[np.ix_(pos, pos)] = cov
        cov_t = cov_full.reshape(d_phi, d_psi, d_phi, d_psi).transpose(0, 2, 1, 3)
        a, b = np.triu_indices(d_phi)
        j, k = np.triu_indices(d_psi)
        phi = basis(np.asarray(plans, dtype=float))
        pairs = cov_t[a, b]  # (upper of φ-pairs, d_psi, d_psi)
        return {
            "coef_full": coef_full,
            # symmetrised over (j, k), as ψⱼψₖ is: (upper of φ-pairs, upper of ψ-pairs)
            "cov_upper": 0.5 * (pairs[:, j, k] + pairs[:, k, j]),
            "phi_upper": (a, b),
            "psi_upper": (j, k),
            "psi_weight": np.where(j == k, 1.0, 2.0),
            "phi": phi,
            "phi_outer": phi[:, a] * phi[:, b] * np.where(a == b, 1.0, 2.0),
        }

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_grid_cache"] = None  # derived; rebuilt on first use
        return state

    def __setstate__(self, state):
        if "coef_" in state and "phi_" not in state:  # saved before plan bases were pluggable
            state["phi_"] = PlanBasis("quadratic", state["plan_low_"], state["plan_center_"],
                                      state["plan_half_range_"],
                                      tuple(np.empty(0) for _ in state["plan_low_"]))
            state["basis_"], state["adaptive_rounds_"] = "quadratic", 0
        state.setdefault("stack_weight_", 0.0)  # saved before stacking existed
        state.setdefault("direct_model_", None)
        self.__dict__.update(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
