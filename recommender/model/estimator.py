"""``PlanEffectRegressor``: outcome of a patient under a plan, learned from confounded history.

An R-learner (Nie & Wager 2021) with a second-order dose–response basis:

    y = m(x) + (φ(p) − e(x))ᵀ B ψ(x) + ε

* ``m(x) = E[y | x]`` — gradient boosting, cross-fitted;
* ``e(x) = E[φ(p) | x]`` — what therapists usually gave such a patient (a
  generalised propensity mean), cross-fitted, so the effect estimate is
  orthogonal to how plans were chosen (confounding on observed intake);
* ``φ(p)`` — plan components, their squares, on/off indicators and pairwise
  products (diminishing returns, optima and overload without a fixed shape);
* ``ψ(x)`` — standardised patient features, so every effect varies by patient.

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

_QUANTILE_GRID = np.linspace(0.0, 1.0, 201)


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: np.ndarray) -> np.ndarray:
    order = np.argsort(values)
    v, w = values[order], weights[order]
    cum = (np.cumsum(w) - 0.5 * w) / w.sum()
    return np.interp(qs, cum, v)


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
        Ridge penalties (per effective sample) tried by cross-validation.
    n_folds : int
        Folds for cross-fitting the nuisance models and choosing the penalty.
    coverage : float
        Default coverage of :meth:`predict_interval`.
    nuisance_max_iter : int
        Boosting iterations of the baseline-outcome model.
    random_state : int or None
    """

    def __init__(
        self,
        n_plan_columns: int = 6,
        pair_modifiers: tuple[int, ...] = (),
        alphas: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0),
        n_folds: int = 3,
        coverage: float = 0.9,
        nuisance_max_iter: int = 150,
        random_state: int | None = None,
    ) -> None:
        self.n_plan_columns = n_plan_columns
        self.pair_modifiers = pair_modifiers
        self.alphas = alphas
        self.n_folds = n_folds
        self.coverage = coverage
        self.nuisance_max_iter = nuisance_max_iter
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
        """φ(p): plan components scaled to [-1, 1], their squares, on/off indicators and
        pairwise products — the second-order dose–response basis (n, d_phi)."""
        u = (P - self.plan_center_) / self.plan_half_range_
        on = (P > self.plan_low_).astype(float)
        a, b = np.triu_indices(P.shape[1], 1)
        return np.column_stack([u, u**2, on, u[:, a] * u[:, b]])

    def effect_design(self, D: np.ndarray, psi: np.ndarray) -> np.ndarray:
        """The effect regressors Z for plan-basis rows ``D`` (usually φ(p) − e(x)) and ψ:
        main plan terms × all of ψ, pair terms × (1, modifiers).  ``Z @ coef_`` is the
        plan's effect; evaluation reuses Z for its debiasing (Riesz) correction."""
        n_main = 3 * self.n_plan_columns_
        main = np.einsum("ni,nj->nij", D[:, :n_main], psi).reshape(len(D), -1)
        small = psi[:, self.pair_psi_idx_]
        pair = np.einsum("ni,nj->nij", D[:, n_main:], small).reshape(len(D), -1)
        return np.hstack([main, pair])

    def _is_main_effect(self) -> np.ndarray:
        """Which compact regressors are plan terms × the intercept of ψ."""
        d_psi = len(self.x_mean_) + 1
        n_main = 3 * self.n_plan_columns_
        n_pair = self.n_plan_columns_ * (self.n_plan_columns_ - 1) // 2
        main = np.zeros((n_main, d_psi), dtype=bool)
        main[:, 0] = True
        pair = np.zeros((n_pair, len(self.pair_psi_idx_)), dtype=bool)
        pair[:, 0] = True
        return np.concatenate([main.ravel(), pair.ravel()])

    def _full_positions(self, d_phi: int, d_psi: int) -> np.ndarray:
        n_main = 3 * self.n_plan_columns_
        grid = np.arange(d_phi * d_psi).reshape(d_phi, d_psi)
        return np.concatenate([grid[:n_main].ravel(), grid[n_main:][:, self.pair_psi_idx_].ravel()])

    # ------------------------------------------------------------------ fit

    def fit(self, X, y, sample_weight=None, groups=None) -> "PlanEffectRegressor":
        """Cross-fit nuisances, solve the ridge R-learner, calibrate intervals."""
        X, y = validate_data(self, X, y, y_numeric=True)
        k = self.n_plan_columns
        if X.shape[1] <= k:
            raise ValueError(
                f"X has {X.shape[1]} feature(s) but needs at least one patient column "
                f"besides the {k} plan column(s)"
            )
        if X.shape[0] < 2 * max(self.n_folds, 2):
            raise ValueError(f"n_samples={X.shape[0]} is too few to cross-fit {self.n_folds} folds")
        w = _check_sample_weight(sample_weight, X)
        y = y.astype(float)
        self.n_plan_columns_ = k
        Xp, P = self._split(X)
        self.x_mean_ = Xp.mean(axis=0)
        scale = Xp.std(axis=0)
        self.x_scale_ = np.where(scale > 1e-12, scale, 1.0)
        self.plan_low_ = P.min(axis=0)
        high = P.max(axis=0)
        self.plan_center_ = (self.plan_low_ + high) / 2
        half = (high - self.plan_low_) / 2
        self.plan_half_range_ = np.where(half > 1e-12, half, 1.0)
        self.numeric_columns_ = np.array([len(np.unique(Xp[:200_000, j])) > 2
                                          for j in range(Xp.shape[1])], dtype=bool)
        mods = np.asarray(self.pair_modifiers, dtype=int)
        self.pair_psi_idx_ = np.concatenate([[0], mods + 1]).astype(int)

        psi, phi = self.patient_basis(Xp), self.plan_basis(P)
        splitter = GroupKFold(self.n_folds) if groups is not None else KFold(
            self.n_folds, shuffle=True, random_state=self.random_state)
        folds = [test for _, test in splitter.split(X, y, groups)]

        m_oof, e_oof = self._cross_fit_nuisances(folds, Xp, psi, phi, y, w)
        Z = self.effect_design(phi - e_oof, psi)
        resid = self._fit_effects(folds, Z, y - m_oof, w)
        self.baseline_model_, self.policy_coef_ = self._fit_nuisance(Xp, psi, phi, y, w)
        self._calibrate(folds, Xp, Z, resid, w)
        self.oof_residual_ = resid
        self._grid_cache = None
        return self

    def _cross_fit_nuisances(self, folds, Xp, psi, phi, y, w):
        """Out-of-fold m(x) and e(x), so each row's residuals come from models that never saw it."""
        n = len(y)
        m_oof, e_oof = np.empty(n), np.empty_like(phi)
        for test in folds:
            train = np.setdiff1d(np.arange(n), test)
            m_model, e_coef = self._fit_nuisance(Xp[train], psi[train], phi[train], y[train], w[train])
            m_oof[test] = m_model.predict(Xp[test])
            e_oof[test] = self._policy_basis(psi[test]) @ e_coef
        return m_oof, e_oof

    def _fit_effects(self, folds, Z, r, w) -> np.ndarray:
        """Ridge of the residual outcome on the residual plan design; penalty by K-fold CV.

        Sets ``coef_``, ``alpha_``, the Gram matrices and ``coef_cov_``; returns the
        out-of-fold residuals of the full model.
        """
        grams = [(Z[t].T * w[t]) @ Z[t] for t in folds]
        rhs = [(Z[t].T * w[t]) @ r[t] for t in folds]
        G, b = sum(grams), sum(rhs)
        # Penalise interactions, barely the average plan effects (ψ = 1 columns).
        scale_diag = np.maximum(np.diag(G) / w.sum(), 1e-8) * np.where(self._is_main_effect(), 0.01, 1.0)

        def held_out(alpha: float):
            for t, Gk, bk in zip(folds, grams, rhs):
                coef = self._solve(G - Gk, b - bk, alpha * (w.sum() - w[t].sum()) * scale_diag)
                yield t, r[t] - Z[t] @ coef

        errors = {a: sum(float(np.sum(w[t] * e**2)) for t, e in held_out(a)) for a in self.alphas}
        self.alpha_ = min(errors, key=errors.get)
        ridge = self.alpha_ * w.sum() * scale_diag
        factor = cho_factor(G + np.diag(ridge))
        self.coef_ = cho_solve(factor, b)
        # Gram and penalty per unit weight: reused to debias policy-value estimates.
        self.gram_, self.ridge_ = G / w.sum(), ridge / w.sum()
        gram_inv = cho_solve(factor, np.eye(len(b)))
        resid = np.empty(len(r))
        for t, e in held_out(self.alpha_):
            resid[t] = e
        s2 = float(np.sum(w * resid**2) / w.sum())
        # Posterior covariance under the ridge's Gaussian prior: with little data it
        # stays wide (the prior's uncertainty), where a sandwich would look falsely sure.
        self.coef_cov_ = s2 * gram_inv
        return resid

    def _calibrate(self, folds, Xp, Z, resid, w) -> None:
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
        sd = self._total_sd(noise_sd, ((Z @ self.coef_cov_) * Z).sum(axis=1))
        self.residual_quantiles_ = _weighted_quantiles(resid / sd, w, _QUANTILE_GRID)

    def _fit_nuisance(self, Xp, psi, phi, y, w):
        baseline = HistGradientBoostingRegressor(
            max_iter=self.nuisance_max_iter, learning_rate=0.08, min_samples_leaf=40,
            l2_regularization=1.0, early_stopping=False, random_state=self.random_state,
        ).fit(Xp, y, sample_weight=w)
        # e(x): weighted ridge of the plan basis on a polynomial patient basis
        basis = self._policy_basis(psi)
        A = (basis.T * w) @ basis + 1e-3 * w.sum() * np.eye(basis.shape[1])
        A[0, 0] -= 1e-3 * w.sum()  # intercept unpenalised
        policy = np.linalg.solve(A, (basis.T * w) @ phi)
        return baseline, policy

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
        c = self.coverage if coverage is None else coverage
        q = np.interp([(1 - c) / 2, (1 + c) / 2], _QUANTILE_GRID, self.residual_quantiles_)
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
        d_phi, d_psi = self.policy_coef_.shape[1], psi.shape[1]
        cache = self._grid(plans, d_phi, d_psi)
        B = cache["coef_full"].reshape(d_phi, d_psi)
        v = psi @ B.T  # (n, d_phi): B ψ_i
        base = self.baseline_model_.predict(Xp) - np.einsum("na,na->n", e, v)
        mean = base[:, None] + v @ cache["phi"].T
        pp = np.einsum("nj,nk->njk", psi, psi).reshape(len(psi), -1)
        M = pp @ cache["cov_t"].T  # (n, d_phi²)
        Mr = M.reshape(len(psi), d_phi, d_phi)
        Me = np.einsum("nab,nb->na", Mr, e)
        model_var = M @ cache["phi_outer"].T - 2 * Me @ cache["phi"].T + np.einsum("na,na->n", Me, e)[:, None]
        model_var = np.maximum(model_var, 0)
        sd = self._total_sd(self._noise_sd(Xp)[:, None], model_var)
        return mean, sd, np.sqrt(model_var)

    def difference(self, X_patients, plans_a: np.ndarray, plans_b: np.ndarray):
        """Expected outcome of plan a minus plan b, and its epistemic sd (paired rows).

        The baseline m(x) cancels, so no nuisance model is evaluated.
        """
        check_is_fitted(self)
        psi = self.patient_basis(np.asarray(X_patients, dtype=float))
        d = self.plan_basis(np.asarray(plans_a, float)) - self.plan_basis(np.asarray(plans_b, float))
        Z = self.effect_design(d, psi)
        return Z @ self.coef_, np.sqrt(np.maximum(((Z @ self.coef_cov_) * Z).sum(axis=1), 0))

    def _grid(self, plans: np.ndarray, d_phi: int, d_psi: int) -> dict:
        key = (plans.shape, hash(np.ascontiguousarray(plans, dtype=float).tobytes()))
        if getattr(self, "_grid_cache", None) and self._grid_cache["key"] == key:
            return self._grid_cache
        pos = self._full_positions(d_phi, d_psi)
        coef_full = np.zeros(d_phi * d_psi)
        coef_full[pos] = self.coef_
        cov_full = np.zeros((d_phi * d_psi, d_phi * d_psi))
        cov_full[np.ix_(pos, pos)] = self.coef_cov_
        cov_t = cov_full.reshape(d_phi, d_psi, d_phi, d_psi).transpose(0, 2, 1, 3)
        phi = self.plan_basis(np.asarray(plans, dtype=float))
        self._grid_cache = {
            "key": key,
            "coef_full": coef_full,
            "cov_t": cov_t.reshape(d_phi * d_phi, d_psi * d_psi),
            "phi": phi,
            "phi_outer": np.einsum("ka,kb->kab", phi, phi).reshape(len(phi), -1),
        }
        return self._grid_cache

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_grid_cache"] = None  # derived; rebuilt on first use
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
