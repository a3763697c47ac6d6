"""Dose–response bases φ(p) of a plan, from rigid to flexible.

* ``quadratic`` — components scaled to [-1, 1], their squares, on/off indicators and
  pairwise products: optima, diminishing returns and overload, one smooth shape each.
* ``spline`` — the quadratic basis plus hinge functions ``(u − knot)+`` at the inner
  observed dose levels, so each component's curve can bend where the data says (a
  plateau, a reversal past a threshold, an optimum that moves with the patient once
  the hinges are multiplied by patient features).

Which one a clinic's data supports is chosen by cross-validated policy value
(:mod:`recommender.model.selection`), not fixed here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BASES = ("quadratic", "spline")
# u, u², on/off already determine a curve through 4 dose levels, so a component with m
# observed levels gets m − 4 hinges (a full piecewise curve), at most MAX_HINGES.
LEVELS_SATURATED_BY_QUADRATIC = 4
MAX_HINGES = 5
# Levels seen this rarely (share of rows) do not get a knot: too little data to bend there.
MIN_KNOT_SHARE = 0.01
_EPS = 1e-12


@dataclass(frozen=True)
class PlanBasis:
    """A fitted plan basis: scaling, knots and the layout of its columns."""

    kind: str
    low: np.ndarray
    center: np.ndarray
    half_range: np.ndarray
    knots: tuple[np.ndarray, ...]  # per plan column, hinge knots in [-1, 1] units

    @classmethod
    def fit(cls, P: np.ndarray, kind: str = "quadratic") -> "PlanBasis":
        if kind not in BASES:
            raise ValueError(f"basis must be one of {BASES}, got {kind!r}")
        low, high = P.min(axis=0), P.max(axis=0)
        center = (low + high) / 2
        half = np.where((high - low) / 2 > _EPS, (high - low) / 2, 1.0)
        knots = tuple(np.empty(0) for _ in range(P.shape[1]))
        if kind == "spline":
            knots = tuple(cls._knots(P[:, j], center[j], half[j]) for j in range(P.shape[1]))
        return cls(kind, low, center, half, knots)

    @staticmethod
    def _knots(column: np.ndarray, center: float, half: float) -> np.ndarray:
        values, counts = np.unique(column[:200_000], return_counts=True)
        n_hinges = min(len(values) - LEVELS_SATURATED_BY_QUADRATIC, MAX_HINGES)
        if n_hinges <= 0:
            return np.empty(0)
        inner = values[2:-1][counts[2:-1] >= MIN_KNOT_SHARE * counts.sum()]
        if len(inner) > n_hinges:  # evenly spread over the inner levels
            inner = inner[np.round(np.linspace(0, len(inner) - 1, n_hinges)).astype(int)]
        return (inner - center) / half

    @property
    def n_columns(self) -> int:
        return len(self.low)

    @property
    def n_main(self) -> int:
        """Columns describing single components (the rest are pairwise products)."""
        return 3 * self.n_columns + sum(len(k) for k in self.knots)

    @property
    def n_features(self) -> int:
        return self.n_main + self.n_columns * (self.n_columns - 1) // 2

    def __call__(self, P: np.ndarray) -> np.ndarray:
        """φ(P): (n, n_features)."""
        u = (P - self.center) / self.half_range
        on = (P > self.low).astype(float)
        hinges = [np.maximum(u[:, [j]] - k[None, :], 0.0) for j, k in enumerate(self.knots) if len(k)]
        a, b = np.triu_indices(P.shape[1], 1)
        return np.column_stack([u, u**2, on, *hinges, u[:, a] * u[:, b]])
