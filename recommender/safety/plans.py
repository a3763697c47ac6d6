"""The space of treatment plans the recommender chooses from.

Granularity (6,240 plans): every contract-valid combination of

* massage: 0 sessions (intensity ``none``) or 1–4 sessions × gentle/moderate/firm (13 options)
* muscle-training sessions a week: 0–4 (5)
* own-exercise days a week: 0–7 (8)
* session minutes: 20, 30, 45 (3) — 30 is the usual; 20 for a gentle start, 45 for longer work
* programme weeks: 4, 6, 8, 12 (4) — a short block to a full quarter

Plans are encoded as a float matrix with one column per plan component
(intensity as its level 0–3), so scoring many plans is one matrix product.
"""

from __future__ import annotations

import itertools
import numbers
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from recommender.contract.columns import INTENSITIES, PLAN, PLAN_COLUMNS

MASSAGE_SESSIONS = (0, 1, 2, 3, 4)
TRAINING_SESSIONS = (0, 1, 2, 3, 4)
EXERCISE_DAYS = (0, 1, 2, 3, 4, 5, 6, 7)
SESSION_MINUTES = (20, 30, 45)
PROGRAMME_WEEKS = (4, 6, 8, 12)

# Column order of the numeric encoding.
ENCODING = ("massage_sessions", "massage_level", "training_sessions", "exercise_days",
            "minutes", "weeks")
M_SESSIONS, M_LEVEL, TRAINING, EXERCISE, MINUTES, WEEKS = range(6)

INTENSITY_LEVEL = {name: level for level, name in enumerate(INTENSITIES)}


@dataclass(frozen=True)
class Plan:
    """One treatment plan in contract terms."""

    massage_sessions_per_week: int
    massage_intensity: str
    muscle_training_sessions_per_week: int
    exercise_days_per_week: int
    session_minutes: int
    programme_weeks: int

    def __post_init__(self) -> None:
        """Only contract-valid plans exist: every door (page, CLI, job, service call) builds a
        Plan, so none can store one a training export would later refuse."""
        for column in PLAN:
            value = getattr(self, column.name)
            if column.choices:
                ok = isinstance(value, str) and value in column.choices
            else:
                ok = (isinstance(value, numbers.Integral) and not isinstance(value, bool)
                      and column.low <= value <= column.high)
            if not ok:
                raise ValueError(f"plan column {column.name!r}: {value!r} — expected "
                                 f"{column.expected()}")
        if (self.massage_sessions_per_week == 0) != (self.massage_intensity == "none"):
            raise ValueError("massage_intensity must be 'none' exactly when sessions are 0")

    @property
    def has_massage(self) -> bool:
        return self.massage_sessions_per_week > 0

    def as_dict(self) -> dict[str, object]:
        return {c: getattr(self, c) for c in PLAN_COLUMNS}

    def key(self) -> str:
        """A short, stable text key of the plan (e.g. ``2moderate-2-3-30-8``)."""
        massage = f"{self.massage_sessions_per_week}{self.massage_intensity}" if self.has_massage else "0"
        return (f"{massage}-{self.muscle_training_sessions_per_week}-{self.exercise_days_per_week}"
                f"-{self.session_minutes}-{self.programme_weeks}")

    def encode(self) -> np.ndarray:
        return np.array(
            [
                self.massage_sessions_per_week,
                INTENSITY_LEVEL[self.massage_intensity],
                self.muscle_training_sessions_per_week,
                self.exercise_days_per_week,
                self.session_minutes,
                self.programme_weeks,
            ],
            dtype=float,
        )

    @classmethod
    def from_encoded(cls, row: np.ndarray) -> "Plan":
        return cls(
            int(row[M_SESSIONS]),
            INTENSITIES[int(row[M_LEVEL])],
            int(row[TRAINING]),
            int(row[EXERCISE]),
            int(row[MINUTES]),
            int(row[WEEKS]),
        )

    def describe(self) -> str:
        """One plain-language line, as a therapist would say it."""
        parts = []
        if self.has_massage:
            parts.append(
                f"{self.massage_intensity} massage {self.massage_sessions_per_week}×/week"
            )
        else:
            parts.append("no massage")
        parts.append(f"muscle training {self.muscle_training_sessions_per_week}×/week")
        parts.append(f"own exercise {self.exercise_days_per_week} days/week")
        return (
            ", ".join(parts)
            + f"; {self.session_minutes} min per session, for {self.programme_weeks} weeks"
        )


GUIDELINE_PLAN = Plan(
    massage_sessions_per_week=2,
    massage_intensity="moderate",
    muscle_training_sessions_per_week=2,
    exercise_days_per_week=3,
    session_minutes=30,
    programme_weeks=8,
)
"""The clinical-basis default: massage where allowed, training twice a week,
own exercise 3 days (of 2–4), 30 minutes, for 8 weeks."""


def guideline_plan_for(massage_allowed: bool, max_level: int = 3) -> Plan:
    """The guideline plan with massage removed or softened where the gate requires."""
    if not massage_allowed or max_level < 1:
        return replace(GUIDELINE_PLAN, massage_sessions_per_week=0, massage_intensity="none")
    level = min(INTENSITY_LEVEL[GUIDELINE_PLAN.massage_intensity], max_level)
    return replace(GUIDELINE_PLAN, massage_intensity=INTENSITIES[level])


class PlanSpace:
    """The enumerated plan grid and its numeric encoding."""

    def __init__(self) -> None:
        massage = [(0, 0)] + [(s, lvl) for s in MASSAGE_SESSIONS[1:] for lvl in (1, 2, 3)]
        rows = [
            (m, lvl, t, e, mins, w)
            for (m, lvl), t, e, mins, w in itertools.product(
                massage, TRAINING_SESSIONS, EXERCISE_DAYS, SESSION_MINUTES, PROGRAMME_WEEKS
            )
        ]
        self.matrix: np.ndarray = np.array(rows, dtype=float)
        self.matrix.setflags(write=False)
        self._index = {tuple(r): i for i, r in enumerate(rows)}

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def plan(self, i: int) -> Plan:
        return Plan.from_encoded(self.matrix[i])

    def index_of(self, plan: Plan) -> int | None:
        """Position of ``plan`` in the grid, or None if it lies off the grid."""
        return self._index.get(tuple(plan.encode()))


def encode_frame(plans: pd.DataFrame) -> np.ndarray:
    """Numeric encoding of the plan columns of a contract frame."""
    level = plans["massage_intensity"].map(INTENSITY_LEVEL).to_numpy(dtype=float)
    return np.column_stack(
        [
            plans["massage_sessions_per_week"].to_numpy(dtype=float),
            level,
            plans["muscle_training_sessions_per_week"].to_numpy(dtype=float),
            plans["exercise_days_per_week"].to_numpy(dtype=float),
            plans["session_minutes"].to_numpy(dtype=float),
            plans["programme_weeks"].to_numpy(dtype=float),
        ]
    )


def encoded_to_frame(matrix: np.ndarray) -> pd.DataFrame:
    """Contract plan columns from the numeric encoding."""
    m = np.asarray(matrix)
    return pd.DataFrame(
        {
            "massage_sessions_per_week": m[:, M_SESSIONS].astype(int),
            "massage_intensity": np.asarray(INTENSITIES, dtype=object)[m[:, M_LEVEL].astype(int)],
            "muscle_training_sessions_per_week": m[:, TRAINING].astype(int),
            "exercise_days_per_week": m[:, EXERCISE].astype(int),
            "session_minutes": m[:, MINUTES].astype(int),
            "programme_weeks": m[:, WEEKS].astype(int),
        }
    )


PLAN_SPACE = PlanSpace()
