"""A *foreign* clinic: outcomes and therapists' choices with no functional form in common
with :mod:`recommender.devtools.simulator`'s standard process.

Why: a recommender tuned to one simulator can look good only because its basis happens
to fit that simulator's formulas.  This world is drawn at random (from a fixed world
seed, so a training and a test cohort share it):

* every plan component acts through a random **unimodal piecewise-linear curve**
  (a random spline: rising steps up to a random peak, falling after), whose amplitude
  and optimum shift come from **small random trees over patient traits** — so some
  subgroups gain, some are harmed, and the best dose moves with the patient;
* massage intensity acts through a random per-leaf table (which intensity suits whom);
* a few random pairwise interactions and a load threshold with a 1.5-power penalty;
* the baseline course and the noise scale are random trees too, with heavy tails;
* therapists are a panel with personal styles, patients reach them by case mix, and
  each component is chosen by an ordinal rule on style + a random tree of traits.

Documented in ``docs/simulator.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from recommender.contract.columns import (
    ACTIVITY_LEVELS,
    PAIN_CAUSES,
    REGIONS,
    SEXES,
    TOLERANCES,
)

# Patient traits the random trees split on: (name, kind, low, high) — numeric thresholds
# are drawn between low and high; categorical splits take a random subset of the codes.
_TRAITS = (
    ("age", "num", 30, 75),
    ("pain_score", "num", 3, 8),
    ("log_duration", "num", 1.5, 3.5),
    ("anxiety_score", "num", 1, 4),
    ("depression_score", "num", 1, 4),
    ("sleep_quality", "num", 3, 8),
    ("bmi", "num", 22, 32),
    ("tolerance", "num", 1.5, 2.5),
    ("activity", "num", 0.5, 2.5),
    ("sex", "cat", 0, len(SEXES)),
    ("region", "cat", 0, len(REGIONS)),
    ("cause", "cat", 0, len(PAIN_CAUSES)),
)
TREE_DEPTH = 3
N_THERAPISTS = 15
COUNT_COMPONENTS = (0, 2, 3)  # massage sessions, training sessions, exercise days
# Ranges of the components as the contract allows them (curves are defined over these).
COMPONENT_RANGE = {0: (0, 4), 2: (0, 4), 3: (0, 7), 4: (15, 60), 5: (1, 26)}
KNOTS = 6
AMPLITUDE = {0: 1.1, 2: 1.2, 3: 1.0, 4: 0.35, 5: 0.5}
CONTRAINDICATED_HARM = 1.1
TAIL_SHARE, TAIL_SCALE = 0.12, 2.5


def traits(truth: pd.DataFrame) -> np.ndarray:
    """The patient traits as a numeric matrix (categoricals as integer codes)."""
    code = {
        "sex": {v: i for i, v in enumerate(SEXES)},
        "region": {v: i for i, v in enumerate(REGIONS)},
        "cause": {v: i for i, v in enumerate(PAIN_CAUSES)},
    }
    cols = {
        "age": truth["age"].to_numpy(float),
        "pain_score": truth["pain_score"].to_numpy(float),
        "log_duration": np.log1p(truth["pain_duration_months"].to_numpy(float)),
        "anxiety_score": truth["anxiety_score"].to_numpy(float),
        "depression_score": truth["depression_score"].to_numpy(float),
        "sleep_quality": truth["sleep_quality"].to_numpy(float),
        "bmi": truth["bmi"].to_numpy(float),
        "tolerance": truth["pain_tolerance"].map({t: i + 1 for i, t in enumerate(TOLERANCES)})
        .to_numpy(float),
        "activity": truth["activity_level"].map({a: i for i, a in enumerate(ACTIVITY_LEVELS)})
        .to_numpy(float),
        "sex": truth["sex"].map(code["sex"]).to_numpy(float),
        "region": truth["pain_region"].map(code["region"]).to_numpy(float),
        "cause": truth["pain_cause"].map(code["cause"]).to_numpy(float),
    }
    return np.column_stack([cols[name] for name, *_ in _TRAITS])


@dataclass(frozen=True)
class RandomTree:
    """A complete binary tree of random splits with a value vector per leaf."""

    features: np.ndarray  # (n_internal,)
    thresholds: np.ndarray  # numeric threshold, or a bit mask of categorical codes going left
    categorical: np.ndarray  # (n_internal,) bool
    leaves: np.ndarray  # (2**depth, d)

    @classmethod
    def draw(cls, rng: np.random.Generator, leaf_values, depth: int = TREE_DEPTH) -> "RandomTree":
        n_internal = 2**depth - 1
        feats = rng.integers(0, len(_TRAITS), n_internal)
        thr = np.empty(n_internal)
        cat = np.zeros(n_internal, dtype=bool)
        for i, f in enumerate(feats):
            _, kind, lo, hi = _TRAITS[f]
            if kind == "num":
                thr[i] = rng.uniform(lo, hi)
            else:
                cat[i] = True
                thr[i] = float(rng.integers(1, 2**hi - 1))  # a non-trivial subset of codes
        leaves = np.asarray([leaf_values(rng) for _ in range(2**depth)], dtype=float)
        return cls(feats, thr, cat, leaves.reshape(2**depth, -1))

    def leaf_index(self, T: np.ndarray) -> np.ndarray:
        node = np.zeros(len(T), dtype=int)
        n_internal = len(self.features)
        while True:
            inside = node < n_internal
            if not inside.any():
                break
            f = self.features[node[inside]]
            x = T[np.flatnonzero(inside), f]
            thr = self.thresholds[node[inside]]
            is_cat = self.categorical[node[inside]]
            left_cat = (thr.astype(np.int64) >> x.astype(np.int64)) & 1 == 1
            left = np.where(is_cat, left_cat, x <= thr)
            node[inside] = 2 * node[inside] + np.where(left, 1, 2)
        return node - n_internal

    def __call__(self, T: np.ndarray) -> np.ndarray:
        return self.leaves[self.leaf_index(T)]


def _unimodal_curve(rng: np.random.Generator) -> np.ndarray:
    """Values at KNOTS equally spaced knots over [0, 1]: 0 at the first, rising by random
    steps to a random peak (value 1), falling by random steps after it (maybe below 0)."""
    peak = int(rng.integers(1, KNOTS))
    up = rng.gamma(1.5, 1.0, peak)
    values = np.concatenate([[0.0], np.cumsum(up)]) / up.sum()
    down = rng.gamma(1.2, 0.25, KNOTS - 1 - peak)
    return np.concatenate([values, 1.0 - np.cumsum(down)])


@dataclass(frozen=True)
class World:
    """Everything random about the foreign clinic, fixed by the world seed."""

    baseline: RandomTree
    noise: RandomTree
    curves: dict  # component -> knot values over its range
    amplitude: dict  # component -> tree of amplitudes (some leaves negative: harmed subgroups)
    shift: dict  # component -> tree of optimum shifts (share of the range)
    intensity: RandomTree  # leaf: value of gentle, moderate, firm
    pairs: tuple  # ((a, b), tree of interaction strengths)
    load_limit: RandomTree
    style: np.ndarray  # (N_THERAPISTS, 6) therapists' habits (latent units)
    affinity: np.ndarray  # (N_THERAPISTS, regions + causes) case mix
    habit: dict  # component -> tree of how therapists adjust to the patient


@lru_cache(maxsize=4)
def world(seed: int) -> World:
    rng = np.random.default_rng(seed)
    comps = (0, 2, 3, 4, 5)
    return World(
        baseline=RandomTree.draw(rng, lambda r: r.normal(0.9, 0.6), depth=4),
        noise=RandomTree.draw(rng, lambda r: r.uniform(0.9, 1.7)),
        curves={c: _unimodal_curve(rng) for c in comps},
        amplitude={c: RandomTree.draw(
            rng, lambda r, c=c: AMPLITUDE[c] * r.choice([-0.6, 0.4, 1.0, 1.5], p=[0.12, 0.2, 0.4, 0.28]))
            for c in comps},
        shift={c: RandomTree.draw(rng, lambda r: r.uniform(-0.3, 0.3)) for c in comps},
        intensity=RandomTree.draw(rng, lambda r: r.normal(0.0, 0.45, 3)),
        pairs=tuple(((a, b), RandomTree.draw(rng, lambda r: r.normal(0.0, 0.35), depth=2))
                    for a, b in ((0, 2), (0, 3), (2, 3))),
        load_limit=RandomTree.draw(rng, lambda r: r.uniform(4, 10), depth=2),
        style=rng.normal(0.0, 0.6, (N_THERAPISTS, 6)),
        affinity=rng.normal(0.0, 1.2, (N_THERAPISTS, len(REGIONS) + len(PAIN_CAUSES))),
        habit={c: RandomTree.draw(rng, lambda r: r.normal(0.0, 0.7)) for c in range(6)},
    )


def _curve(knots: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Piecewise-linear interpolation at x ∈ [0, 1] (clamped outside)."""
    return np.interp(x, np.linspace(0.0, 1.0, KNOTS), knots)


def raw_mean(truth: pd.DataFrame, plans: np.ndarray, w: World, paired: bool) -> np.ndarray:
    """Unclipped mean reduction, (n, 1) when ``paired`` else (n, k)."""
    T = traits(truth)
    P = np.asarray(plans, dtype=float)
    cols = [P[:, j][:, None] if paired else P[:, j][None, :] for j in range(6)]
    treatment = 0.0
    dose = {}
    for c, curve in w.curves.items():
        lo, hi = COMPONENT_RANGE[c]
        shift = w.shift[c](T)  # (n, 1)
        x = (cols[c] - lo) / (hi - lo) - shift
        ref = (0.0 if c in COUNT_COMPONENTS else (30.0 if c == 4 else 8.0) - lo) / (hi - lo) - shift
        dose[c] = _curve(curve, x) - _curve(curve, ref)
        treatment = treatment + w.amplitude[c](T) * dose[c]
    level = cols[1].astype(int)
    table = np.column_stack([np.zeros(len(T)), w.intensity(T)])  # (n, 4): none, gentle, …
    fit = np.take_along_axis(table, np.broadcast_to(level, np.broadcast_shapes(level.shape, (len(T), 1))), 1)
    massage_on = cols[0] > 0
    treatment = treatment + fit * massage_on
    for (a, b), tree in w.pairs:
        treatment = treatment + tree(T) * (cols[a] > 0) * (cols[b] > 0)
    load = cols[0] + cols[2] + cols[3]
    treatment = treatment - 0.12 * np.maximum(load - w.load_limit(T), 0) ** 1.5
    allowed = truth["_massage_level_allowed"].to_numpy(float)[:, None]
    unsafe = massage_on & (cols[1] > allowed)
    treatment = np.where(unsafe, -CONTRAINDICATED_HARM * np.sqrt(cols[0] / 4), treatment)
    return w.baseline(T) + 0.3 * truth["_resilience"].to_numpy(float)[:, None] + treatment


def noise_sd(truth: pd.DataFrame, w: World, base_sd: float) -> np.ndarray:
    return base_sd / 1.3 * w.noise(traits(truth))[:, 0]


def historical_plans(truth: pd.DataFrame, rng: np.random.Generator, w: World,
                     exploration: float, rule_breaking: float) -> np.ndarray:
    """A panel of therapists with personal styles; case mix decides who sees whom."""
    n = len(truth)
    T = traits(truth)
    onehot = np.zeros((n, len(REGIONS) + len(PAIN_CAUSES)))
    onehot[np.arange(n), T[:, 10].astype(int)] = 1
    onehot[np.arange(n), len(REGIONS) + T[:, 11].astype(int)] = 1
    logits = onehot @ w.affinity.T
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    therapist = (probs.cumsum(axis=1) > rng.random(n)[:, None]).argmax(axis=1)

    def latent(c: int) -> np.ndarray:
        return w.style[therapist, c] + w.habit[c](T)[:, 0] + rng.normal(0, exploration, n)

    allowed = truth["_massage_level_allowed"].to_numpy(float)
    give = latent(0) > -0.2
    breaks = rng.random(n) < rule_breaking
    give &= (allowed > 0) | breaks
    sessions = np.where(give, np.clip(np.round(2 + 1.2 * latent(0)), 1, 4), 0)
    level = np.clip(np.round(2 + 1.0 * latent(1)), 1, 3)
    level = np.where(give & (allowed > 0) & ~breaks, np.minimum(level, np.maximum(allowed, 1)), level)
    level = np.where(sessions > 0, level, 0)
    training = np.clip(np.round(1.8 + 1.3 * latent(2)), 0, 4)
    exercise = np.clip(np.round(3 + 2.0 * latent(3)), 0, 7)
    minutes = np.asarray((20, 25, 30, 40, 45, 60))[np.clip(np.round(2.2 + 1.2 * latent(4)), 0, 5).astype(int)]
    weeks = np.asarray((3, 4, 6, 8, 10, 12, 16))[np.clip(np.round(3 + 1.5 * latent(5)), 0, 6).astype(int)]
    return np.column_stack([sessions, level, training, exercise, minutes, weeks]).astype(float)
