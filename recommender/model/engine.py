"""``TreatmentRecommender``: from a clinic's history to a safe, explained plan per patient.

It wraps :class:`~recommender.estimator.PlanEffectRegressor` with what a clinic
needs around it:

* **loss to follow-up** — inverse-probability-of-observation weights from a
  model of who was followed up (intake, plan and adherence, which carries
  information about how the patient was doing);
* **evidence** — how many past episodes had a similar plan (support) and how far
  the plan is from what similar patients were given (overlap); plans with
  limited evidence are never recommended;
* **caution** — plans are ranked by a lower confidence bound, and a plan other
  than the guideline is chosen only when it is expected to beat the guideline
  (on a thin history by more than ¾ of its uncertainty); failing that, the
  guideline plan with the one component changed that does (graceful fallback
  when data is thin); how cautious depends on the history's size;
* **safety** — the contraindication gate masks plans before ranking and every
  returned plan is re-checked (:func:`recommender.gate.assert_allowed`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from threadpoolctl import ThreadpoolController

from recommender.model.estimator import PlanEffectRegressor
from recommender.model.features import PatientFeaturizer
from recommender.safety import gate
from recommender.safety.plans import (
    EXERCISE,
    INTENSITY_LEVEL,
    M_LEVEL,
    M_SESSIONS,
    MINUTES,
    PLAN_SPACE,
    TRAINING,
    WEEKS,
    Plan,
    encode_frame,
    guideline_plan_for,
)

EVIDENCE_LEVELS = ("limited", "moderate", "strong")
PAIR_MODIFIERS = ("pain_tolerance=low", "pain_tolerance=high", "age",
                  "activity_level=sedentary", "activity_level=active")
MIN_TRAINING_ROWS = 50
# Loss to follow-up: below this many losses every followed-up episode weighs 1.
MIN_LOST_FOR_FOLLOWUP_MODEL = 20
# P(followed up) is floored here before inverting, so no episode weighs more than 20.
MIN_FOLLOWUP_PROBABILITY = 0.05
# Evidence: a plan has moderate support with this many similar past episodes (or this share
# of the history, whichever is more), strong support with the second pair ...
MIN_SUPPORT_EPISODES, MIN_SUPPORT_SHARE = 10, 0.001
STRONG_SUPPORT_EPISODES, STRONG_SUPPORT_SHARE = 50, 0.005
# ... and lies within these quantiles of the overlap distance of the plans actually given.
MODERATE_OVERLAP_QUANTILE, STRONG_OVERLAP_QUANTILE = 0.99, 0.90
MODERATE = EVIDENCE_LEVELS.index("moderate")
STRONG = EVIDENCE_LEVELS.index("strong")
# Larger than any score difference: limited-evidence plans rank after every supported one.
UNSUPPORTED_RANK_PENALTY = 1e6
# Secondary outcome models are fitted only with this much data (events of each class).
MIN_SECONDARY_EVENTS = 20
MIN_SECONDARY_VALUES = 100
# Support counts are computed in blocks of plans to bound memory.
SUPPORT_BLOCK = 512
PAIN_SCALE_MAX = 10  # NRS 0–10: a reduction lies between pain − 10 and pain
# Caution and switch threshold by the history's size, each pair chosen over every simulated
# clinic of its size class together by policy value (docs/benchmarks-seeds.md, ten histories
# of each clinic up to 5,000 episodes and three of each larger one, the one-standard-error
# rule with harm as the tie-break): below
# LARGE_HISTORY followed-up episodes plans rank by mean − 3 sd and leave the guideline plan
# (or change one component of it, ``_one_change``) for a gain above 0.75 sd; from there by
# mean − 2 sd, for any expected gain.  A thin history's posterior understates its error
# (docs/engine-experiments.md, the winner's curse), a large one's less: at caution 2 every
# 20,000-episode clinic gained and every clinic of 8,000 episodes or fewer lost.  Our clinics
# have either ≤ 6,100 or ≥ 16,300 followed-up episodes: the threshold is their geometric
# middle, not a measured optimum.
LARGE_HISTORY = 10_000
THIN_SETTING = (3.0, 0.75)  # (caution, switch_z)
LARGE_SETTING = (2.0, 0.0)
# The present rigid model first (kept when data is thin), then adaptive and hinged ones.
DEFAULT_CANDIDATES = (("quadratic", 0), ("quadratic", 2), ("spline", 2), ("spline", 3))
# Stacking weights of the direct (boosted) outcome model, the effect model alone first.
DEFAULT_STACK_WEIGHTS = (0.0, 0.25, 0.5)


_THREADPOOLS = ThreadpoolController()


def single_threaded():
    """One-patient calls are latency-bound: thread start-up costs more than it saves."""
    return _THREADPOOLS.limit(limits=1)


def setting_for(followed_up: int) -> tuple[float, float]:
    """(caution, switch_z) of the ranking for a history with this many followed-up episodes."""
    return LARGE_SETTING if followed_up >= LARGE_HISTORY else THIN_SETTING


def clip_to_scale(reduction: np.ndarray, pain: np.ndarray) -> np.ndarray:
    """A pain reduction can take pain neither below 0 nor above the top of the scale."""
    return np.clip(reduction, pain - PAIN_SCALE_MAX, pain)


def inverse_probability_weights(p_followed: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """observed / P(followed up), with the probability floored at MIN_FOLLOWUP_PROBABILITY."""
    return np.where(observed, 1.0 / np.clip(p_followed, MIN_FOLLOWUP_PROBABILITY, 1.0), 0.0)


def improvement_threshold(pain_score: np.ndarray | float) -> np.ndarray:
    """A clinically important improvement: ≥ 2 points or ≥ 30 % (whichever is reached first)."""
    return np.minimum(2.0, 0.3 * np.asarray(pain_score, dtype=float))


@dataclass(frozen=True)
class PlanPrediction:
    """What the model expects of one plan for one patient."""

    plan: Plan
    predicted_reduction: float
    interval_low: float
    interval_high: float
    prob_improvement: float
    evidence_level: str
    support: int
    adherence: float | None = None
    adverse_event_risk: float | None = None
    blocked_by: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.blocked_by


@dataclass(frozen=True)
class Recommendation:
    """The recommended plan for one patient, its alternatives and the reasons."""

    episode_id: str
    best: PlanPrediction
    alternatives: tuple[PlanPrediction, ...]
    gate: gate.GateDecision
    explanation: str
    fallback: bool
    ruleset_version: str = gate.RULESET_VERSION

    def ranked(self) -> list[PlanPrediction]:
        return [self.best, *self.alternatives]


@dataclass
class TrainingSummary:
    rows: int = 0
    followed_up: int = 0
    lost_to_followup: int = 0
    contraindicated_history: int = 0
    off_grid_plans: int = 0
    notes: list[str] = field(default_factory=list)


class TreatmentRecommender(BaseEstimator):
    """Learn plan outcomes from contract training rows; recommend gated plans.

    Follows scikit-learn's conventions (``fit`` returns self, learned attributes end
    in ``_``) but takes contract frames, not arrays: the array-level estimator is
    :class:`PlanEffectRegressor`.

    Parameters
    ----------
    caution : float or None
        Plans are ranked by ``mean − caution × epistemic sd``; None (the default): by the
        history's size (:func:`setting_for`, learned as ``caution_``).
    switch_z : float or None
        Leave the guideline plan only when the expected gain exceeds
        ``switch_z`` standard deviations of its uncertainty (the best plan's, else
        that of the best plan changing one component of the guideline); None (the
        default): by the history's size (learned as ``switch_z_``).
    coverage : float
        Coverage of the reported prediction intervals.
    n_alternatives : int
        Ranked alternatives returned with each recommendation.
    candidates : tuple of (str, int)
        Candidate effect models (dose–response basis, adaptive-ridge rounds), the present
        rigid model first; the data choose among them by cross-fitted policy value
        (see ``estimator_.selection_``).
    stack_weights : tuple of float
        Weights of a direct boosted outcome model stacked into the ranking of the effect
        model's shortlist, no stacking first; chosen by cross-fitted policy value
        (see ``estimator_.stack_selection_``).
    random_state : int
    """

    def __init__(self, caution: float | None = None, switch_z: float | None = None,
                 coverage: float = 0.9,
                 n_alternatives: int = 4,
                 candidates: tuple[tuple[str, int], ...] = DEFAULT_CANDIDATES,
                 stack_weights: tuple[float, ...] = DEFAULT_STACK_WEIGHTS,
                 random_state: int = 0) -> None:
        self.caution = caution
        self.switch_z = switch_z
        self.coverage = coverage
        self.n_alternatives = n_alternatives
        self.candidates = candidates
        self.stack_weights = stack_weights
        self.random_state = random_state

    # ------------------------------------------------------------------ fit

    def fit(self, episodes: pd.DataFrame, progress=None) -> "TreatmentRecommender":
        """Fit on typed contract training rows (as returned by the reader)."""
        step = progress or (lambda fraction, message: None)
        summary = TrainingSummary(rows=len(episodes))
        observed = episodes["followup_pain_score"].notna().to_numpy()
        summary.followed_up = int(observed.sum())
        summary.lost_to_followup = int((~observed).sum())
        if summary.followed_up < MIN_TRAINING_ROWS:
            raise ValueError(
                f"only {summary.followed_up} episode(s) have a follow-up pain score; "
                f"at least {MIN_TRAINING_ROWS} are needed to train"
            )
        caution, switch_z = setting_for(summary.followed_up)
        self.caution_ = caution if self.caution is None else float(self.caution)
        self.switch_z_ = switch_z if self.switch_z is None else float(self.switch_z)
        plans = encode_frame(episodes)
        summary.contraindicated_history = int(gate.violations(episodes, plans).sum())
        summary.off_grid_plans = int(sum(PLAN_SPACE.index_of(Plan.from_encoded(p)) is None
                                         for p in np.unique(plans, axis=0)))

        step(0.05, "features")
        self.featurizer_ = PatientFeaturizer.fit(episodes)
        Xp = self.featurizer_.transform(episodes)
        step(0.1, "follow-up model")
        weights = self._observation_weights(episodes, Xp, plans, observed, summary)

        step(0.2, "outcome model")
        y = (episodes["pain_score"] - episodes["followup_pain_score"]).to_numpy(float)
        mods = tuple(self.featurizer_.index(n) for n in PAIR_MODIFIERS)
        self._fit_support(plans)
        supported = PLAN_SPACE.matrix[self.grid_support_ >= self.min_support_]
        self.estimator_ = PlanEffectRegressor(
            pair_modifiers=mods, coverage=self.coverage,
            candidates=tuple((str(k), int(r)) for k, r in self.candidates),
            selection_caution=self.caution_, random_state=self.random_state,
            stack_weights=tuple(float(v) for v in self.stack_weights),
        ).fit(np.hstack([Xp, plans])[observed], y[observed], sample_weight=weights[observed],
              groups=episodes["patient_id"].to_numpy()[observed],
              policy_plans=supported if len(supported) else None)

        step(0.75, "evidence and secondary outcomes")
        self._fit_overlap(Xp, plans)
        self.adherence_model_ = self._fit_secondary(episodes, Xp, plans, "adherence", summary)
        self.adverse_model_ = self._fit_secondary(episodes, Xp, plans, "adverse_event", summary)
        self.summary_ = summary
        step(1.0, "done")
        return self

    @property
    def ranking_caution(self) -> float:
        """The caution recommendations use: the parameter when set (also after fitting, as the
        benchmarks' sweep does), else the one learned from the history's size."""
        return float(self.caution) if self.caution is not None else self.caution_

    @property
    def ranking_switch_z(self) -> float:
        """The switch threshold recommendations use (as :attr:`ranking_caution`)."""
        return float(self.switch_z) if self.switch_z is not None else self.switch_z_

    def _observation_weights(self, episodes, Xp, plans, observed, summary) -> np.ndarray:
        """1 / P(followed up | intake, plan, adherence), clipped, for followed-up rows."""
        if summary.lost_to_followup < MIN_LOST_FOR_FOLLOWUP_MODEL:
            self.followup_model_ = None
            return np.ones(len(episodes))
        self.followup_uses_adherence_ = bool(
            "adherence" in episodes and episodes["adherence"].notna().any())
        F = self.followup_features(episodes, Xp, plans)
        model = HistGradientBoostingClassifier(max_iter=100, max_depth=3, min_samples_leaf=50,
                                               random_state=self.random_state).fit(F, observed)
        p = model.predict_proba(F)[:, 1]
        w = inverse_probability_weights(p, observed)
        w[observed] /= w[observed].mean()
        self.followup_model_ = model
        summary.notes.append(
            f"{summary.lost_to_followup} episode(s) lost to follow-up: followed-up episodes are "
            f"reweighted by 1/P(followed up | intake, plan, adherence) "
            f"(weights {w[observed].min():.2f}–{w[observed].max():.2f})"
        )
        return w

    def followup_features(self, episodes: pd.DataFrame, Xp: np.ndarray, plans: np.ndarray) -> np.ndarray:
        """Inputs of the follow-up model: intake, plan and (when recorded) adherence."""
        if not self.followup_uses_adherence_:
            return np.hstack([Xp, plans])
        adherence = (pd.to_numeric(episodes["adherence"], errors="coerce").to_numpy(float)
                     if "adherence" in episodes else np.full(len(episodes), np.nan))
        return np.column_stack([Xp, plans, adherence])

    def _fit_support(self, plans: np.ndarray) -> None:
        """How many past episodes had a plan similar to each grid plan."""
        uniq, counts = np.unique(plans, axis=0, return_counts=True)
        self.history_plans_, self.history_counts_ = uniq, counts
        n = len(plans)
        self.min_support_ = int(max(MIN_SUPPORT_EPISODES, MIN_SUPPORT_SHARE * n))
        self.strong_support_ = int(max(STRONG_SUPPORT_EPISODES, STRONG_SUPPORT_SHARE * n))
        self.grid_support_ = self.support(PLAN_SPACE.matrix)

    def _fit_overlap(self, Xp: np.ndarray, plans: np.ndarray) -> None:
        """How far plans given in the past were from what similar patients usually got."""
        u_obs = self._plan_units(plans)
        e_u = self._expected_units(Xp)
        resid = u_obs - e_u
        cov = np.cov(resid, rowvar=False) + 1e-3 * np.eye(resid.shape[1])
        self.overlap_precision_ = np.linalg.inv(cov)
        d2 = np.einsum("ni,ij,nj->n", resid, self.overlap_precision_, resid)
        self.overlap_q90_, self.overlap_q99_ = np.quantile(
            d2, [STRONG_OVERLAP_QUANTILE, MODERATE_OVERLAP_QUANTILE])

    def support(self, plans: np.ndarray) -> np.ndarray:
        """Past episodes with a similar plan: massage on/off the same, intensity and
        each count within one step, minutes within 15, weeks within 4."""
        plans = np.atleast_2d(plans)
        h, c = self.history_plans_, self.history_counts_
        out = np.empty(len(plans), dtype=int)
        for start in range(0, len(plans), SUPPORT_BLOCK):
            p = plans[start:start + SUPPORT_BLOCK, None, :]
            near = (
                ((p[..., M_SESSIONS] > 0) == (h[None, :, M_SESSIONS] > 0))
                & (np.abs(p[..., M_SESSIONS] - h[None, :, M_SESSIONS]) <= 1)
                & (np.abs(p[..., M_LEVEL] - h[None, :, M_LEVEL]) <= 1)
                & (np.abs(p[..., TRAINING] - h[None, :, TRAINING]) <= 1)
                & (np.abs(p[..., EXERCISE] - h[None, :, EXERCISE]) <= 1)
                & (np.abs(p[..., MINUTES] - h[None, :, MINUTES]) <= 15)
                & (np.abs(p[..., WEEKS] - h[None, :, WEEKS]) <= 4)
            )
            out[start:start + SUPPORT_BLOCK] = near @ c
        return out

    def _plan_units(self, plans: np.ndarray) -> np.ndarray:
        est = self.estimator_
        return (plans - est.plan_center_) / est.plan_half_range_

    def _expected_units(self, Xp: np.ndarray) -> np.ndarray:
        est = self.estimator_
        return est.expected_plan_basis(Xp)[:, : est.n_plan_columns_]

    def _overlap_d2(self, Xp: np.ndarray, plans: np.ndarray, paired: bool = False) -> np.ndarray:
        """Mahalanobis distance² of each plan from what similar patients got.

        (n, k) for every patient × every plan, or (n,) when ``paired`` (row i's own plan)."""
        S = self.overlap_precision_
        u = self._plan_units(plans)
        e = self._expected_units(Xp)
        if paired:
            d = u - e
            return np.einsum("ni,ij,nj->n", d, S, d)
        return (np.einsum("ki,ij,kj->k", u, S, u)[None, :] - 2 * (e @ S) @ u.T
                + np.einsum("ni,ij,nj->n", e, S, e)[:, None])

    def _evidence(self, support: np.ndarray, d2: np.ndarray) -> np.ndarray:
        """0 limited, 1 moderate, 2 strong."""
        level = np.zeros(np.broadcast(support, d2).shape, dtype=int)
        level[(support >= self.min_support_) & (d2 <= self.overlap_q99_)] = MODERATE
        level[(support >= self.strong_support_) & (d2 <= self.overlap_q90_)] = STRONG
        return level

    def _fit_secondary(self, episodes, Xp, plans, column, summary):
        if column not in episodes:
            return None
        values = episodes[column]
        known = values.notna().to_numpy()
        F = np.hstack([Xp, plans])[known]
        if column == "adverse_event":
            yv = values[known].astype(bool).to_numpy()
            if yv.sum() < MIN_SECONDARY_EVENTS or (~yv).sum() < MIN_SECONDARY_EVENTS:
                summary.notes.append("too few adverse events recorded to model their risk")
                return None
            return HistGradientBoostingClassifier(max_iter=100, max_depth=3, min_samples_leaf=50,
                                                  random_state=self.random_state).fit(F, yv)
        if known.sum() < MIN_SECONDARY_VALUES:
            summary.notes.append(f"too few {column} values recorded to model it")
            return None
        return HistGradientBoostingRegressor(max_iter=100, max_depth=3, min_samples_leaf=50,
                                             random_state=self.random_state).fit(
            F, values[known].to_numpy(float))

    # ------------------------------------------------------------------ recommend

    def recommend(self, intake: dict, max_massage_level: int | None = None) -> Recommendation:
        """Best allowed plan and ranked alternatives for one patient.

        ``max_massage_level`` lowers the gate's massage limit further (the discomfort rule
        of a review); it can never raise it."""
        caps = None if max_massage_level is None else np.array([max_massage_level], dtype=float)
        with single_threaded():
            return self.recommend_frame(pd.DataFrame([intake]), max_massage_levels=caps)[0]

    def recommend_frame(self, intakes: pd.DataFrame, chunk: int = 500,
                        max_massage_levels: np.ndarray | None = None) -> list[Recommendation]:
        """Recommendations for every row of a (typed) intake frame, vectorised in chunks
        (memory stays bounded however large the file)."""
        intakes = intakes.reset_index(drop=True)
        caps = (np.full(len(intakes), float(gate.NO_LIMIT)) if max_massage_levels is None
                else np.asarray(max_massage_levels, dtype=float))
        out: list[Recommendation] = []
        for start in range(0, len(intakes), chunk):
            out += self._recommend_chunk(intakes.iloc[start:start + chunk].reset_index(drop=True),
                                         caps[start:start + chunk])
        return out

    def _recommend_chunk(self, intakes: pd.DataFrame, caps: np.ndarray) -> list[Recommendation]:
        decisions = gate.evaluate_frame(intakes)
        levels = np.minimum(gate.max_levels(decisions), caps)
        Xp = self.featurizer_.transform(intakes)
        grid = PLAN_SPACE.matrix
        mean, sd, model_sd = self.estimator_.score_grid(Xp, grid)
        pain = intakes["pain_score"].to_numpy(float)
        mean = clip_to_scale(mean, pain[:, None])
        allowed = gate.allowed_matrix(levels, grid)
        evidence = self._evidence(self.grid_support_[None, :], self._overlap_d2(Xp, grid))
        candidates = allowed & (evidence >= MODERATE)
        caution, switch_z = self.ranking_caution, self.ranking_switch_z
        score = mean - caution * model_sd
        # the choice: the effect model's score, or the stacked one on its shortlist
        choice, stacked_mean = self.estimator_.stacked_scores(Xp, grid, mean, model_sd,
                                                              caution, candidates)

        guide_plans = np.array([guideline_plan_for(level > 0, int(level)).encode() for level in levels])
        guide = np.array([PLAN_SPACE.index_of(Plan.from_encoded(p)) for p in guide_plans])
        rows = np.arange(len(intakes))
        has_candidate = candidates.any(axis=1)
        best = np.where(has_candidate, choice.argmax(axis=1), guide)
        guide_mean = clip_to_scale(self.estimator_.stacked_mean_of(Xp, grid[guide], mean[rows, guide]),
                                   pain)
        gain = clip_to_scale(stacked_mean[rows, best], pain) - guide_mean
        _, gain_sd = self.estimator_.difference(Xp, grid[best], grid[guide])
        fallback = (best == guide) | (gain <= switch_z * gain_sd) | ~has_candidate
        best = np.where(fallback, guide, best)
        changed = self._one_change(Xp, pain, guide, guide_mean, mean, model_sd,
                                   candidates & fallback[:, None], caution, switch_z)
        best = np.where(changed >= 0, changed, best)
        fallback &= changed < 0

        # alternatives: supported plans first; limited-evidence ones only if too few are supported
        ranked_score = np.where(allowed, score - UNSUPPORTED_RANK_PENALTY * ~candidates, -np.inf)
        ranked_score[rows, best] = np.inf
        k = min(1 + self.n_alternatives, len(grid))
        # the k best per patient, then sorted: a full sort of every plan costs far more
        top = np.argpartition(-ranked_score, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(top, np.argsort(-np.take_along_axis(ranked_score, top, axis=1),
                                                   axis=1, kind="stable"), axis=1)
        chosen = grid[order.reshape(-1)]
        Xrep = np.repeat(Xp, k, axis=0)
        details = self._details(Xrep, np.repeat(pain, k), chosen,
                                mean[np.repeat(rows, k), order.reshape(-1)],
                                sd[np.repeat(rows, k), order.reshape(-1)],
                                evidence[np.repeat(rows, k), order.reshape(-1)],
                                self.grid_support_[order.reshape(-1)])
        explanations = self._explain(Xp, grid[best], guide_plans, fallback, decisions)

        out = []
        for i, intake in enumerate(intakes.to_dict("records")):
            preds = details[i * k:(i + 1) * k]
            for p in preds:  # the gate, once more, on exactly what leaves this function
                gate.assert_allowed(intake, p.plan)
                if not gate.permits(p.plan.massage_sessions_per_week,
                                    INTENSITY_LEVEL[p.plan.massage_intensity], levels[i]):
                    raise gate.GateViolation(f"plan '{p.plan.describe()}' exceeds the massage limit")
            out.append(Recommendation(
                episode_id=str(intake.get("episode_id", "")),
                best=preds[0], alternatives=tuple(preds[1:]), gate=decisions[i],
                explanation=explanations[i], fallback=bool(fallback[i]),
            ))
        return out

    def _one_change(self, Xp, pain, guide, guide_mean, mean, model_sd, eligible,
                    caution: float, switch_z: float) -> np.ndarray:
        """For patients left on the guideline plan: the best plan that changes one component
        of it (massage, training, exercise, minutes or weeks) by more than ``switch_z`` sds
        of its own gain; −1 where none does.

        The full personalised plan is judged on every component at once, so on thin or
        confounded data it is rarely clear of its uncertainty; one change from the guideline
        rests on that component's main effect and often is.  Ranked like every plan (by
        ``mean − caution × sd``), stacked where the model stacks."""
        out = np.full(len(Xp), -1)
        rows = np.flatnonzero(eligible.any(axis=1))
        if not len(rows):
            return out
        near = eligible[rows] & self._one_change_mask(guide[rows])
        cols = np.flatnonzero(near.any(axis=0))
        near = near[:, cols]
        if not len(cols):
            return out
        grid, est = PLAN_SPACE.matrix, self.estimator_
        _, gain_sd = est.difference_to(Xp[rows], grid, grid[guide[rows]], columns=cols)
        r, c = np.nonzero(near)  # the (patient, plan) pairs to test
        m = clip_to_scale(est.stacked_mean_of(Xp[rows[r]], grid[cols[c]], mean[rows[r], cols[c]]),
                          pain[rows[r]])
        ok = m - guide_mean[rows[r]] > switch_z * gain_sd[r, c]
        score = np.full(near.shape, -np.inf)
        score[r[ok], c[ok]] = (m - caution * model_sd[rows[r], cols[c]])[ok]
        found = np.isfinite(score).any(axis=1)
        out[rows[found]] = cols[score[found].argmax(axis=1)]
        return out

    def _one_change_mask(self, guide: np.ndarray) -> np.ndarray:
        """(n, k): which grid plans differ from each patient's guideline plan in exactly one
        component (massage sessions and intensity count as one)."""
        grid = PLAN_SPACE.matrix
        masks = {}
        for g in np.unique(guide):
            differs = [(grid[:, cols] != grid[g, cols]).any(axis=1) for _, cols in self._COMPONENTS]
            masks[g] = np.sum(differs, axis=0) == 1
        return np.array([masks[g] for g in guide])

    def _details(self, Xp, pain, plans, mean, sd, evidence, support) -> list[PlanPrediction]:
        lo_q, hi_q = self.estimator_.normalised_quantiles(self.coverage)
        low = clip_to_scale(mean + lo_q * sd, pain)
        high = clip_to_scale(mean + hi_q * sd, pain)
        prob = self.estimator_.prob_at_least(mean, sd, improvement_threshold(pain))
        F = np.hstack([Xp, plans])
        adh = (np.clip(self.adherence_model_.predict(F), 0, 1) if self.adherence_model_ is not None
               else [None] * len(F))
        risk = (self.adverse_model_.predict_proba(F)[:, 1] if self.adverse_model_ is not None
                else [None] * len(F))
        return [
            PlanPrediction(
                plan=Plan.from_encoded(plans[j]), predicted_reduction=float(mean[j]),
                interval_low=float(low[j]), interval_high=float(high[j]),
                prob_improvement=float(prob[j]), evidence_level=EVIDENCE_LEVELS[int(evidence[j])],
                support=int(support[j]),
                adherence=None if adh[j] is None else float(adh[j]),
                adverse_event_risk=None if risk[j] is None else float(risk[j]),
            )
            for j in range(len(plans))
        ]

    def predict_plans(self, intake: dict, plans: list[Plan]) -> list[PlanPrediction]:
        """Predictions for plans a therapist is tuning (any contract-valid plan).

        Forbidden plans are still predicted so the screen can explain them, but
        carry the rule ids that block them in ``blocked_by``.
        """
        with single_threaded():
            return self._predict_plans(intake, plans)

    def _predict_plans(self, intake: dict, plans: list[Plan]) -> list[PlanPrediction]:
        frame = pd.DataFrame([intake])
        decision = gate.evaluate(intake)
        Xp = self.featurizer_.transform(frame)
        encoded = np.array([p.encode() for p in plans])
        Xrep = np.repeat(Xp, len(plans), axis=0)
        mean, sd, _ = self.estimator_.predict_parts(np.hstack([Xrep, encoded]))
        pain = np.full(len(plans), float(intake["pain_score"]))
        mean = clip_to_scale(mean, pain)
        support = self.support(encoded)
        evidence = self._evidence(support, self._overlap_d2(Xrep, encoded, paired=True))
        preds = self._details(Xrep, pain, encoded, mean, sd, evidence, support)
        return [
            PlanPrediction(**{**p.__dict__, "blocked_by": tuple(r.rule_id for r in
                                                                decision.forbidding_reasons(p.plan))})
            for p in preds
        ]

    def predict_paired(self, intakes: pd.DataFrame, plans: np.ndarray) -> dict[str, np.ndarray]:
        """Mean and interval for each row's own plan (e.g. the plans therapists gave)."""
        Xp = self.featurizer_.transform(intakes)
        mean, sd, _ = self.estimator_.predict_parts(np.hstack([Xp, plans]))
        pain = intakes["pain_score"].to_numpy(float)
        lo_q, hi_q = self.estimator_.normalised_quantiles(self.coverage)
        return {
            "mean": clip_to_scale(mean, pain),
            "low": clip_to_scale(mean + lo_q * sd, pain),
            "high": clip_to_scale(mean + hi_q * sd, pain),
        }

    # ------------------------------------------------------------------ explain

    _COMPONENTS = (("massage", (M_SESSIONS, M_LEVEL)), ("muscle training", (TRAINING,)),
                   ("own exercise", (EXERCISE,)), ("session length", (MINUTES,)),
                   ("programme length", (WEEKS,)))

    def _explain(self, Xp, best, guide, fallback, decisions) -> list[str]:
        """One plain-language line per patient: what drove the choice, and safety."""
        n = len(best)
        swaps = []
        for _, cols in self._COMPONENTS:
            swapped = best.copy()
            swapped[:, cols] = guide[:, cols]
            swaps.append(swapped)
        gains, _ = self.estimator_.difference(np.tile(Xp, (len(swaps), 1)),
                                              np.tile(best, (len(swaps), 1)), np.vstack(swaps),
                                              with_sd=False)
        gains = gains.reshape(len(swaps), n)
        lines = []
        for i in range(n):
            plan = Plan.from_encoded(best[i])
            changed = [c for c, (_, cols) in enumerate(self._COMPONENTS)
                       if (best[i, list(cols)] != guide[i, list(cols)]).any()]
            if fallback[i]:
                text = ("Guideline plan: this clinic's history does not show another plan to be "
                        "reliably better for this patient")
            elif len(changed) == 1:
                c = changed[0]
                text = (f"Guideline plan with one change: {self._component_text(plan, self._COMPONENTS[c][0])} "
                        f"is expected to add {gains[c, i]:+.1f} points over the guideline's choice")
            else:
                c = int(np.argmax(gains[:, i]))
                name = self._COMPONENTS[c][0]
                text = (f"Personalised: {self._component_text(plan, name)} is expected to add "
                        f"{gains[c, i]:+.1f} points over the guideline's choice")
            blocked = [r for r in decisions[i].reasons if r.effect is not gate.Effect.AVOID_REGION]
            if blocked:
                text += "; " + " ".join(r.message for r in blocked).rstrip(".")
            avoid = decisions[i].avoid_regions
            if avoid:
                text += "; avoid " + ", ".join(a.replace("_", " ") for a in avoid)
            lines.append(text + ".")
        return lines

    @staticmethod
    def _component_text(plan: Plan, name: str) -> str:
        if name == "massage":
            return (f"{plan.massage_intensity} massage {plan.massage_sessions_per_week}×/week"
                    if plan.has_massage else "leaving out massage")
        if name == "muscle training":
            return f"muscle training {plan.muscle_training_sessions_per_week}×/week"
        if name == "own exercise":
            return f"own exercise {plan.exercise_days_per_week} days/week"
        if name == "session length":
            return f"{plan.session_minutes}-minute sessions"
        return f"a {plan.programme_weeks}-week programme"


def recommendations_frame(recs: list[Recommendation]) -> pd.DataFrame:
    """The contract recommendation file: episode_id, plan columns, then our own columns."""
    rows = []
    for r in recs:
        b = r.best
        rows.append({
            "episode_id": r.episode_id,
            **b.plan.as_dict(),
            "predicted_reduction": round(b.predicted_reduction, 2),
            "interval_low": round(b.interval_low, 2),
            "interval_high": round(b.interval_high, 2),
            "prob_improvement": round(b.prob_improvement, 3),
            "evidence_level": b.evidence_level,
            "gate_rule_ids": ";".join(r.gate.rule_ids),
            "ruleset_version": r.ruleset_version,
            "explanation": r.explanation,
            "predicted_adherence": None if b.adherence is None else round(b.adherence, 2),
            "adverse_event_risk": None if b.adverse_event_risk is None else round(b.adverse_event_risk, 3),
        })
    return pd.DataFrame(rows)


