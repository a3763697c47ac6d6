"""A simulated clinic: patients, therapists' historical choices, and outcomes.

The data-generating process is documented in ``docs/simulator.md``.  Because
it is ours, it also knows the *true* expected pain reduction of any plan for
any patient, which tests and benchmarks use as the oracle.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit
from scipy.stats import norm

from recommender.contract.columns import (
    ACTIVITY_LEVELS,
    INTAKE_COLUMNS,
    PAIN_CAUSES,
    REGIONS,
    TOLERANCES,
    Kind,
    columns_for,
)
from recommender.devtools import foreign
from recommender.safety import gate
from recommender.safety.plans import (
    EXERCISE,
    M_LEVEL,
    M_SESSIONS,
    PLAN_SPACE,
    TRAINING,
    encoded_to_frame,
)


@dataclass(frozen=True)
class Scenario:
    """Knobs of one simulated clinic."""

    name: str
    description: str
    default_episodes: int
    confounding: float = 1.0  # how strongly therapists' choices follow the patient
    exploration: float = 0.9  # spread of therapists' choices around their habit
    rule_breaking: float = 0.10  # chance a contraindicated patient still got massage
    noise_sd: float = 1.3  # outcome noise (NRS points) at pain score 5
    loss_rate: float = 0.10  # approximate share lost to follow-up
    hand_focus: bool = False  # mostly hand and wrist pain
    moving_optimum: bool = False  # the best training and exercise doses move with the patient
    reversal: bool = False  # effects saturate, then reverse beyond a threshold dose
    subgroup_harm: bool = False  # firm massage in fibromyalgia, training in nerve pain or a flare
    tail_share: float = 0.0  # share of outcomes drawn with TAIL_SCALE × the noise (heavy tails)
    missing_rate: float = 0.0  # every optional measurement is blank at least this often
    extra_column: bool = False  # the file carries a column the contract does not know
    loss_outcome: float = 0.45  # how strongly loss to follow-up depends on the outcome
    foreign: bool = False  # outcomes and choices from recommender.devtools.foreign instead
    world_seed: int = 0  # the foreign world (fixed, so training and test cohorts share it)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("large_clinic", "A large typical multi-therapist clinic.", 20_000),
        Scenario(
            "small_confounded",
            "A small clinic whose therapists follow strong, narrow habits.",
            1_500,
            confounding=2.0,
            exploration=0.45,
            rule_breaking=0.15,
        ),
        Scenario(
            "hand_clinic",
            "A hand-therapy clinic: mostly hand and wrist pain, osteoarthritis.",
            3_000,
            hand_focus=True,
        ),
        Scenario(
            "tiny_clinic",
            "A clinic just starting to record: the standard process, few episodes.",
            400,
        ),
        Scenario(
            "moving_optimum",
            "The best training and exercise doses move with activity, pain and tolerance.",
            20_000,
            moving_optimum=True,
        ),
        Scenario(
            "threshold_reversal",
            "Every component saturates, then reverses beyond a threshold dose.",
            20_000,
            reversal=True,
        ),
        Scenario(
            "subgroup_harm",
            "Firm massage harms fibromyalgia; training harms nerve pain and acute flares.",
            20_000,
            subgroup_harm=True,
        ),
        Scenario(
            "heavy_noise",
            "Noisier outcomes with heavy tails (a sixth of outcomes at 3× the noise).",
            20_000,
            noise_sd=1.8,
            tail_share=0.15,
        ),
        Scenario(
            "messy_clinic",
            "A quarter of optional fields blank, an extra column, outcome-dependent loss to "
            "follow-up, moving optima and harmed subgroups.",
            8_000,
            moving_optimum=True,
            subgroup_harm=True,
            missing_rate=0.25,
            extra_column=True,
            loss_rate=0.18,
            loss_outcome=0.8,
        ),
        Scenario(
            "foreign_clinic",
            "A random world with no functional form in common with the others "
            "(recommender.devtools.foreign).",
            20_000,
            foreign=True,
            world_seed=20261127,
            tail_share=foreign.TAIL_SHARE,
        ),
    )
}
TAIL_SCALE = 3.0
EXTRA_COLUMN = "referral_source"

_REGION_P = dict(zip(REGIONS, (0.16, 0.14, 0.08, 0.28, 0.08, 0.12, 0.08, 0.06)))
_MASSAGE_CAUSE = dict(zip(PAIN_CAUSES, (1.3, 1.0, 0.8, 0.5, 1.25, 1.15, 1.05, 0.95)))
_MASSAGE_REGION = dict(zip(REGIONS, (1.2, 1.05, 1.15, 1.0, 0.8, 0.8, 1.5, 0.9)))
_TRAIN_CAUSE = dict(zip(PAIN_CAUSES, (1.1, 1.45, 1.35, 0.85, 1.25, 0.7, 1.4, 1.0)))
_TRAIN_REGION = dict(zip(REGIONS, (1.0, 1.1, 1.0, 1.2, 1.3, 1.3, 0.7, 1.1)))
_EXERCISE_ACTIVITY = dict(zip(ACTIVITY_LEVELS, (1.4, 1.2, 1.0, 0.7)))
_MOVING_EXERCISE_ACTIVITY = dict(zip(ACTIVITY_LEVELS, (1.2, 1.1, 1.0, 0.95)))
AMP_MASSAGE, AMP_TRAINING, AMP_EXERCISE = 1.0, 1.1, 0.8
FLARE_PAIN, FLARE_MONTHS = 8, 6  # an acute flare: severe pain of recent onset


@dataclass
class SimulatedCohort:
    """Episodes as a clinic would hand them over, plus the hidden truth."""

    scenario: Scenario
    seed: int
    episodes: pd.DataFrame  # contract columns (missing values as a clinic would have)
    truth: pd.DataFrame  # complete patient features used by the outcome model

    def intakes(self) -> pd.DataFrame:
        """The intake columns only (no plan, no outcome)."""
        return self.episodes[[c for c in INTAKE_COLUMNS if c in self.episodes]].copy()

    def expected_reduction(self, plans: np.ndarray, paired: bool = False) -> np.ndarray:
        """True expected pain reduction.

        ``paired``: ``plans`` has one encoded row per patient; returns shape (n,).
        Otherwise ``plans`` is a grid (k, 6) evaluated for every patient: (n, k).
        """
        return expected_reduction(self.truth, plans, self.scenario, paired=paired)

    def oracle(self, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """The best allowed grid plan per patient (indices into PLAN_SPACE) and its value."""
        levels = gate.max_levels(gate.evaluate_frame(self.intakes()))
        grid = PLAN_SPACE.matrix
        best_idx = np.empty(len(self.truth), dtype=int)
        best_val = np.empty(len(self.truth))
        for start in range(0, len(self.truth), chunk):
            sl = slice(start, start + chunk)
            values = expected_reduction(self.truth.iloc[sl], grid, self.scenario)
            allowed = gate.allowed_matrix(levels[sl], grid)
            values = np.where(allowed, values, -np.inf)
            best_idx[sl] = values.argmax(axis=1)
            best_val[sl] = values.max(axis=1)
        return best_idx, best_val

    def followup_probability(self) -> np.ndarray:
        """The true P(followed up) of each episode. It depends on the outcome itself (loss to
        follow-up is not at random), so no model of the observed data can recover it."""
        return self.truth["_p_followed_up"].to_numpy(dtype=float)

    def sample_outcomes(self, plans: np.ndarray, seed: int) -> np.ndarray:
        """Observed pain reductions if each patient had received ``plans`` (paired)."""
        rng = np.random.default_rng(seed)
        mu = _mean(self.truth, plans, self.scenario, paired=True)[:, 0]
        eps = _draw_noise(self.truth, self.scenario, rng)
        pain = self.truth["pain_score"].to_numpy(float)
        follow = np.clip(np.round(pain - mu - eps, 1), 0, 10)
        return pain - follow


# --------------------------------------------------------------------------- outcome model


def _col(truth: pd.DataFrame, name: str) -> np.ndarray:
    return truth[name].to_numpy(dtype=float)[:, None]


def _map(truth: pd.DataFrame, name: str, table: dict[str, float]) -> np.ndarray:
    return truth[name].map(table).to_numpy(dtype=float)[:, None]


def _plan_cols(plans: np.ndarray, paired: bool) -> tuple[np.ndarray, ...]:
    p = np.asarray(plans, dtype=float)
    cols = [p[:, j] for j in range(6)]
    return tuple(c[:, None] if paired else c[None, :] for c in cols)


def _mean(truth: pd.DataFrame, plans: np.ndarray, sc: Scenario, paired: bool = False) -> np.ndarray:
    """Mean of the unclipped reduction (before the 0–10 floor and ceiling)."""
    if sc.foreign:
        return foreign.raw_mean(truth, plans, foreign.world(sc.world_seed), paired)
    return _raw_mean(truth, plans, sc, paired)


def _raw_mean(truth: pd.DataFrame, plans: np.ndarray, sc: Scenario, paired: bool = False) -> np.ndarray:
    """The standard process (docs/simulator.md), with the scenario's twists."""
    s, lvl, t, e, mins, w = _plan_cols(plans, paired)
    age = _col(truth, "age")
    pain = _col(truth, "pain_score")
    tol = _map(truth, "pain_tolerance", {"low": 1.0, "medium": 2.0, "high": 3.0})
    anxiety = _col(truth, "anxiety_score")
    sleep = _col(truth, "sleep_quality")
    depression = _col(truth, "depression_score")
    fibro = (truth["pain_cause"] == "fibromyalgia").to_numpy()[:, None]
    contra = truth["_massage_level_allowed"].to_numpy(dtype=float)[:, None]

    # Massage: saturating in sessions; intensity should match tolerance, and
    # too firm hurts more than too gentle (treatment should not need enduring pain).
    amp_m = (
        AMP_MASSAGE
        * _map(truth, "pain_cause", _MASSAGE_CAUSE)
        * _map(truth, "pain_region", _MASSAGE_REGION)
        * (1 + 0.08 * anxiety)
        * (1 + 0.04 * (7 - sleep))
    )
    dose_m = (1 - np.exp(-s / 1.6)) / (1 - np.exp(-4 / 1.6))
    gap = lvl - tol
    fit_m = 1 - 0.25 * np.abs(gap) - 0.35 * np.maximum(gap, 0)
    massage = np.where(lvl > contra, -1.2 * dose_m, amp_m * dose_m * fit_m)  # unsafe massage harms

    # Muscle training: rises to an optimum then overload; lower optimum for
    # low tolerance and fibromyalgia.
    t_opt = np.where((tol == 1) | fibro, 2.0, 3.0)
    amp_t = (
        AMP_TRAINING
        * _map(truth, "pain_cause", _TRAIN_CAUSE)
        * _map(truth, "pain_region", _TRAIN_REGION)
        * np.clip(1 - 0.006 * (age - 50), 0.6, 1.2)
    )
    training = amp_t * (t / t_opt) * np.exp(1 - t / t_opt)

    # Own exercise: the less active gain more; optimum 3–4 days.
    e_opt = np.where(_map(truth, "activity_level", {"sedentary": 0, "light": 0,
                                                     "moderate": 1, "active": 1}) > 0, 4.0, 3.0)
    amp_e = AMP_EXERCISE * _map(truth, "activity_level", _EXERCISE_ACTIVITY) * (
        1 + 0.05 * depression
    ) * np.where(fibro, 1.2, 1.0)
    exercise = amp_e * (e / e_opt) * np.exp(1 - e / e_opt)
    act = _map(truth, "activity_level", dict(zip(ACTIVITY_LEVELS, (0.0, 1.0, 2.0, 3.0))))
    duration = _col(truth, "pain_duration_months")
    if sc.moving_optimum:
        # The best dose follows the patient: the active and those in less pain do more.
        t_opt = np.clip(3 + 0.5 * (tol - 2) - 0.3 * (pain - 6), 1, 4.5)
        training = amp_t * (t / t_opt) * np.exp(1 - t / t_opt)
        e_opt = np.clip(1.5 + 1.3 * act - 0.3 * (pain - 6), 1, 7)
        amp_e = AMP_EXERCISE * _map(truth, "activity_level", _MOVING_EXERCISE_ACTIVITY) * (
            1 + 0.05 * depression) * np.where(fibro, 1.2, 1.0)
        exercise = amp_e * (e / e_opt) * np.exp(1 - e / e_opt)
    if sc.reversal:
        # Saturation then reversal: gains stop at a threshold dose and turn into losses.
        dose_m = np.minimum(s, 2) / 2 - 0.45 * np.maximum(s - 2, 0)
        massage = np.where(lvl > contra, -1.2 * np.minimum(s, 4) / 4, amp_m * dose_m * fit_m)
        training = amp_t * (np.minimum(t, 2) / 2 - 0.5 * np.maximum(t - 3, 0))
        exercise = amp_e * (np.minimum(e, 3) / 3 - 0.35 * np.maximum(e - 5, 0))
    if sc.subgroup_harm:
        # A component that helps most patients harms one subgroup.
        nerve = (truth["pain_cause"] == "nerve").to_numpy()[:, None]
        flare = (pain >= FLARE_PAIN) & (duration < FLARE_MONTHS)
        firm_fibro = fibro & (lvl == 3) & (lvl <= contra)
        massage = np.where(firm_fibro, -0.8 * dose_m, np.where(fibro & (lvl == 2), 0.5 * massage, massage))
        training = np.where(nerve, 0.4 * np.minimum(t, 1) - 0.45 * np.maximum(t - 1, 0), training)
        training = training - np.where(flare, 0.35 * np.maximum(t - 1, 0), 0)
        exercise = exercise - np.where(flare, 0.25 * np.maximum(e - 3, 0), 0)

    synergy = 0.2 * ((s > 0) & (t > 0))
    m0 = np.where(tol == 1, 25.0, np.where(tol == 3, 35.0, 30.0))
    minutes_f = np.exp(-np.log(mins / m0) ** 2 / 0.72)
    weeks_f = (1 - np.exp(-w / 5)) / (1 - np.exp(-8 / 5)) * (1 - 0.015 * np.maximum(w - 8, 0))
    load = s + t + e
    load_max = np.where(tol == 1, 5.0, np.where(tol == 3, 9.0, 7.0)) - (age > 70)
    if sc.moving_optimum:
        load_max = load_max + act  # the already active tolerate more
    overload = 0.08 * np.maximum(load - load_max, 0) ** 2

    natural = 0.2 + 0.15 * (pain - 6) - 0.15 * np.log1p(_col(truth, "pain_duration_months") / 12)
    treatment = (massage + training + exercise + synergy) * minutes_f * weeks_f
    return natural + _col(truth, "_resilience") + treatment - overload


def _noise_sd(truth: pd.DataFrame, scenario: Scenario) -> np.ndarray:
    """Sd of the ordinary (non-tail) outcome noise."""
    if scenario.foreign:
        return foreign.noise_sd(truth, foreign.world(scenario.world_seed), scenario.noise_sd)
    pain = truth["pain_score"].to_numpy(dtype=float)
    anxiety = truth["anxiety_score"].to_numpy(dtype=float)
    return scenario.noise_sd * (0.75 + 0.05 * pain) * (1 + 0.05 * anxiety)


def _tail_scale(scenario: Scenario) -> float:
    return foreign.TAIL_SCALE if scenario.foreign else TAIL_SCALE


def _draw_noise(truth: pd.DataFrame, scenario: Scenario, rng: np.random.Generator) -> np.ndarray:
    """Outcome noise: normal, or a scale mixture (heavy tails) when the scenario says so."""
    sd = _noise_sd(truth, scenario)
    eps = sd * rng.standard_normal(len(sd))
    if scenario.tail_share > 0:
        tail = rng.random(len(sd)) < scenario.tail_share
        eps = np.where(tail, eps * _tail_scale(scenario), eps)
    return eps


def _clipped_mean(m: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """E[clip(Z, 0, 10)] for Z ~ N(m, sd²), in closed form."""
    a, b = (0 - m) / sd, (10 - m) / sd
    return 10 * norm.sf(b) + m * (norm.cdf(b) - norm.cdf(a)) + sd * (norm.pdf(a) - norm.pdf(b))


def expected_reduction(truth: pd.DataFrame, plans: np.ndarray, scenario: Scenario,
                       paired: bool = False) -> np.ndarray:
    """E[pain − follow-up], with the follow-up score floored at 0 and capped at 10."""
    mu = _mean(truth, plans, scenario, paired)
    sd = _noise_sd(truth, scenario)[:, None]
    pain = truth["pain_score"].to_numpy(dtype=float)[:, None]
    # follow-up Z = pain − mu − eps, eps normal (or a two-normal scale mixture).
    m = pain - mu
    clipped = _clipped_mean(m, sd)
    if scenario.tail_share > 0:
        clipped = ((1 - scenario.tail_share) * clipped
                   + scenario.tail_share * _clipped_mean(m, sd * _tail_scale(scenario)))
    out = pain - clipped
    return out[:, 0] if paired else out


# --------------------------------------------------------------------------- patients


def _choice(rng, options, p, n):
    p = np.asarray(p, dtype=float)
    return np.asarray(options, dtype=object)[rng.choice(len(options), size=n, p=p / p.sum())]


def _patients(n: int, rng: np.random.Generator, scenario: Scenario) -> pd.DataFrame:
    hand = scenario.hand_focus
    age = np.clip(np.round(rng.normal(54, 15, n)), 18, 100)
    sex = _choice(rng, ("F", "M", "X"), (0.56, 0.42, 0.02), n)
    region_p = np.array(list(_REGION_P.values()))
    if hand:
        region_p = np.where(np.array(REGIONS) == "hand_wrist", 3.0, region_p * 0.3)
    region = _choice(rng, REGIONS, region_p, n)

    cause = np.empty(n, dtype=object)
    for r in REGIONS:
        idx = np.flatnonzero(region == r)
        if not len(idx):
            continue
        base = np.array([0.22, 0.18, 0.08, 0.10, 0.14, 0.07, 0.11, 0.10])
        if r in ("knee", "hip", "hand_wrist"):
            base = base * np.array([0.6, 2.6, 1.2, 0.6, 0.3, 0.8, 1.0, 1.0])
        if r in ("neck", "upper_back"):
            base = base * np.array([1.0, 0.5, 0.5, 1.0, 2.2, 1.2, 0.5, 1.0])
        old = age[idx] > 60
        for mask, factor in ((old, np.array([0.8, 1.8, 1.2, 1.0, 0.8, 1.0, 0.4, 1.0])),
                             (~old, np.ones(8))):
            sub = idx[mask]
            cause[sub] = _choice(rng, PAIN_CAUSES, base * factor, len(sub))

    duration = np.round(np.clip(rng.lognormal(np.log(14), 0.8, n), 3, 240), 1)
    tolerance = _choice(rng, TOLERANCES, (0.3, 0.45, 0.25), n)
    activity = _choice(rng, ACTIVITY_LEVELS, (0.25, 0.35, 0.28, 0.12), n)
    severity = rng.normal(0, 1, n)
    pain = np.clip(np.round(6 + 1.5 * severity + rng.normal(0, 0.7, n)), 2, 10)
    anxiety = np.clip(np.round(1.8 + 0.6 * severity + rng.normal(0, 1.3, n)), 0, 6)
    depression = np.clip(np.round(1.5 + 0.5 * severity + 0.3 * anxiety + rng.normal(0, 1.2, n)), 0, 6)
    sleep = np.clip(np.round(6 - 0.8 * severity - 0.3 * anxiety + rng.normal(0, 1.4, n)), 0, 10)
    grip_base = np.where(sex == "M", 42, np.where(sex == "F", 27, 34)) - 0.25 * np.maximum(age - 40, 0)
    grip = np.clip(np.round(grip_base - 6 * (region == "hand_wrist") + rng.normal(0, 5, n), 1), 2, 100)
    bmi = np.clip(np.round(rng.normal(27, 4.5, n), 1), 15, 60)

    heart = rng.random(n) < expit(-3.6 + 0.05 * (age - 50))
    infectious = rng.random(n) < 0.03
    phlebitis = rng.random(n) < 0.025
    fever = infectious & (rng.random(n) < 0.4) | (rng.random(n) < 0.005)
    dvt = rng.random(n) < 0.01
    anticoag = (heart & (rng.random(n) < 0.5)) | dvt | (rng.random(n) < 0.02)
    inflamed = _region_lists(rng, region, n, 0.05, 0.35)
    infected = _region_lists(rng, region, n, 0.03, 0.3)
    fracture = _region_lists(rng, region, n, 0.015, 0.5)

    return pd.DataFrame(
        {
            "age": age.astype(int),
            "sex": sex,
            "pain_region": region,
            "pain_cause": cause,
            "pain_duration_months": duration,
            "pain_score": pain.astype(int),
            "pain_tolerance": tolerance,
            "activity_level": activity,
            "grip_strength_kg": grip,
            "sleep_quality": sleep.astype(int),
            "anxiety_score": anxiety.astype(int),
            "depression_score": depression.astype(int),
            "bmi": bmi,
            "heart_condition": heart,
            "infectious_disease": infectious,
            "phlebitis": phlebitis,
            "inflamed_skin_regions": inflamed,
            "infected_regions": infected,
            "fever": fever,
            "deep_vein_thrombosis": dvt,
            "anticoagulant_therapy": anticoag,
            "recent_fracture_regions": fracture,
            "_resilience": rng.normal(0, 0.4, n),
        }
    )


def _region_lists(rng, pain_region, n, rate, p_pain_region) -> list[frozenset]:
    has = rng.random(n) < rate
    at_pain = rng.random(n) < p_pain_region
    other = rng.choice(REGIONS, size=n)
    return [
        frozenset({pain_region[i] if at_pain[i] else other[i]}) if has[i] else frozenset()
        for i in range(n)
    ]


# --------------------------------------------------------------------------- therapists


def _historical_plans(p: pd.DataFrame, rng: np.random.Generator, sc: Scenario) -> np.ndarray:
    """What therapists chose: sensible habits that depend on the patient (confounding)."""
    n = len(p)
    k, sd = sc.confounding, sc.exploration
    pain = p["pain_score"].to_numpy(float)
    anxiety = p["anxiety_score"].to_numpy(float)
    age = p["age"].to_numpy(float)
    cause, region = p["pain_cause"].to_numpy(), p["pain_region"].to_numpy()
    soft = np.isin(cause, ("strain", "postural", "fibromyalgia"))
    tol = p["pain_tolerance"].map({"low": 1, "medium": 2, "high": 3}).to_numpy(float)
    act = p["activity_level"].map(dict(zip(ACTIVITY_LEVELS, range(4)))).to_numpy(float)

    z = 0.3 + k * (0.3 * (pain - 6) + 0.2 * anxiety + 0.6 * soft - 0.6 * (cause == "nerve")
                   + 0.5 * (region == "hand_wrist"))
    give = rng.random(n) < expit(z + rng.normal(0, sd, n))
    allowed_level = p["_massage_level_allowed"].to_numpy(float)
    breaks = rng.random(n) < sc.rule_breaking
    give &= (allowed_level > 0) | breaks
    sessions = np.where(give, np.clip(np.round(1.5 + k * 0.35 * (pain - 6) + rng.normal(0, sd, n)), 1, 4), 0)
    # Therapists pick intensity more by pain score than by tolerance.
    w_tol = 0.5 / k
    level = np.clip(np.round(w_tol * tol + (1 - w_tol) * (1 + (pain - 4) / 3)
                             + rng.normal(0, sd * 0.6, n)), 1, 3)
    level = np.where(give & (allowed_level > 0) & ~breaks, np.minimum(level, np.maximum(allowed_level, 1)), level)
    level = np.where(sessions > 0, level, 0)

    big_muscle = np.isin(cause, ("osteoarthritis", "sports_injury", "post_surgical"))
    training = np.clip(np.round(1.8 + k * (0.6 * big_muscle - 0.6 * (cause == "fibromyalgia")
                                           - 0.02 * (age - 55)) + rng.normal(0, sd * 1.1, n)), 0, 4)
    exercise = np.clip(np.round(1.8 + k * 0.6 * (act - 1) + rng.normal(0, sd * 1.3, n)), 0, 7)
    minutes = np.asarray((20, 30, 45, 60))[
        np.clip(np.round(1 + 0.4 * (tol - 2) + rng.normal(0, sd * 0.7, n)), 0, 3).astype(int)
    ]
    weeks = np.asarray((4, 6, 8, 10, 12, 16))[
        np.clip(np.round(2 + k * 0.25 * (pain - 6) + rng.normal(0, sd * 1.2, n)), 0, 5).astype(int)
    ]
    return np.column_stack([sessions, level, training, exercise, minutes, weeks]).astype(float)


# --------------------------------------------------------------------------- assembly


def simulate(n_episodes: int | None = None, seed: int = 0,
             scenario: str | Scenario = "large_clinic") -> SimulatedCohort:
    """Simulate a clinic's history: deterministic for a given seed and scenario."""
    sc = SCENARIOS[scenario] if isinstance(scenario, str) else scenario
    n = sc.default_episodes if n_episodes is None else int(n_episodes)
    if n < 1:
        raise ValueError("n_episodes must be at least 1")
    rng = np.random.default_rng(seed)
    truth = _patients(n, rng, sc)
    ids, patients, first = _identities(n, rng, seed)
    for col in ("age", "sex"):  # a returning patient keeps their age and sex
        truth[col] = truth[col].to_numpy()[first]
    levels = gate.max_levels(gate.evaluate_frame(truth))
    truth["_massage_level_allowed"] = levels

    if sc.foreign:
        plans = foreign.historical_plans(truth, rng, foreign.world(sc.world_seed),
                                         sc.exploration, sc.rule_breaking)
    else:
        plans = _historical_plans(truth, rng, sc)
    mu = _mean(truth, plans, sc, paired=True)[:, 0]
    sd = _noise_sd(truth, sc)
    eps = sd * rng.standard_normal(n)
    if sc.tail_share > 0:
        eps = np.where(rng.random(n) < sc.tail_share, eps * _tail_scale(sc), eps)
    pain = truth["pain_score"].to_numpy(float)
    follow = np.clip(np.round(pain - mu - eps, 1), 0, 10)
    reduction = pain - follow

    tol = truth["pain_tolerance"].map({"low": 1, "medium": 2, "high": 3}).to_numpy(float)
    over = np.maximum(plans[:, M_LEVEL] - tol, 0)
    load = plans[:, M_SESSIONS] + plans[:, TRAINING] + plans[:, EXERCISE]
    adherence = np.round(expit(1.6 - 0.2 * np.maximum(load - 6, 0) - 0.5 * over
                               + 0.35 * eps / sd + rng.normal(0, 0.5, n)), 2)
    unsafe = plans[:, M_LEVEL] > levels
    adverse = rng.random(n) < (0.01 + 0.05 * over + 0.12 * unsafe + 0.01 * np.maximum(load - 8, 0))
    p_lost = expit(np.log(sc.loss_rate / (1 - sc.loss_rate)) - sc.loss_outcome * (reduction - 2)
                   - 1.5 * (adherence - 0.8) - 0.01 * (truth["age"].to_numpy() - 54))
    lost = rng.random(n) < p_lost
    truth["_p_followed_up"] = 1 - p_lost  # hidden: depends on the outcome itself

    episodes = truth.drop(columns=[c for c in truth if c.startswith("_")]).copy()
    episodes = pd.concat([encoded_to_frame(plans), episodes], axis=1)
    episodes["followup_pain_score"] = np.where(lost, np.nan, follow)
    region = truth["pain_region"].to_numpy()
    grip_gain = reduction * np.where(region == "hand_wrist", 1.2, 0.25) + rng.normal(0, 2, n)
    episodes["followup_grip_strength_kg"] = np.where(
        lost, np.nan, np.clip(np.round(truth["grip_strength_kg"] + grip_gain, 1), 0, 100))
    episodes["followup_sleep_quality"] = np.where(lost, np.nan, np.clip(np.round(
        truth["sleep_quality"] + 0.35 * reduction + rng.normal(0, 1, n)), 0, 10))
    episodes["followup_anxiety_score"] = np.where(lost, np.nan, np.clip(np.round(
        truth["anxiety_score"] - 0.2 * reduction - 0.3 * (plans[:, M_SESSIONS] > 0)
        + rng.normal(0, 0.8, n)), 0, 6))
    episodes["followup_depression_score"] = np.where(lost, np.nan, np.clip(np.round(
        truth["depression_score"] - 0.2 * reduction + rng.normal(0, 0.8, n)), 0, 6))
    episodes["adherence"] = adherence
    episodes["adverse_event"] = adverse

    _blank_optional(episodes, rng, region, sc.missing_rate)
    start = dt.date(2023, 6, 1)
    offsets = np.sort(rng.integers(0, 3 * 365, n))
    episodes.insert(0, "intake_date", [start + dt.timedelta(days=int(d)) for d in offsets])
    episodes.insert(0, "patient_id", patients)
    episodes.insert(0, "episode_id", ids)
    truth.insert(0, "episode_id", ids)
    episodes = episodes[[c.name for c in columns_for(Kind.TRAINING)]]  # contract order
    if sc.extra_column:
        episodes[EXTRA_COLUMN] = _choice(rng, ("self", "gp", "specialist"), (0.3, 0.5, 0.2), n)
    return SimulatedCohort(sc, seed, episodes.reset_index(drop=True), truth.reset_index(drop=True))


def _blank_optional(ep: pd.DataFrame, rng: np.random.Generator, region: np.ndarray,
                    floor: float = 0.0) -> None:
    """Optional fields go missing as they do in clinic records (each at least ``floor``)."""
    n = len(ep)
    grip_missing = rng.random(n) < np.maximum(np.where(region == "hand_wrist", 0.1, 0.6), floor)
    ep.loc[grip_missing, ["grip_strength_kg", "followup_grip_strength_kg"]] = np.nan
    for col, rate in (("sleep_quality", 0.15), ("anxiety_score", 0.2),
                      ("depression_score", 0.2), ("bmi", 0.12)):
        ep.loc[rng.random(n) < max(rate, floor), col] = np.nan
    ep["adherence"] = ep["adherence"].where(rng.random(n) > max(0.05, floor))
    ep["adverse_event"] = ep["adverse_event"].astype(object).where(rng.random(n) > max(0.03, floor), None)
    if floor > 0:
        for col in ("followup_sleep_quality", "followup_anxiety_score", "followup_depression_score"):
            ep.loc[rng.random(n) < floor, col] = np.nan


def _identities(n: int, rng: np.random.Generator, seed: int):
    """Episode ids, patient ids, and each episode's patient's first episode.

    About one episode in ten is a returning patient."""
    repeat = rng.random(n) < 0.1
    first = np.arange(n)
    for i in np.flatnonzero(repeat):
        if i > 0:
            first[i] = first[rng.integers(0, i)]
    return ([f"S{seed}-E{i + 1:06d}" for i in range(n)],
            [f"S{seed}-P{p + 1:06d}" for p in first], first)
