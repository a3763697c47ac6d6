"""The episode data contract (``shared/data-contract.md``, version 1) as data.

Every reader and writer of episode data takes its column names, types and
ranges from here, so the contract is written down once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

CONTRACT_VERSION = "1"

REGIONS: tuple[str, ...] = (
    "neck",
    "shoulder",
    "upper_back",
    "lower_back",
    "hip",
    "knee",
    "hand_wrist",
    "ankle_foot",
)
SEXES = ("F", "M", "X")
PAIN_CAUSES = (
    "strain",
    "osteoarthritis",
    "post_surgical",
    "nerve",
    "postural",
    "fibromyalgia",
    "sports_injury",
    "unknown",
)
TOLERANCES = ("low", "medium", "high")
ACTIVITY_LEVELS = ("sedentary", "light", "moderate", "active")
INTENSITIES = ("none", "gentle", "moderate", "firm")

TRUE_SPELLINGS = frozenset({"true", "1", "yes"})
FALSE_SPELLINGS = frozenset({"false", "0", "no"})


class Kind(str, Enum):
    """Which of the contract's file kinds a file is."""

    INTAKE = "intake"
    TRAINING = "training"


class Type(str, Enum):
    STRING = "string"
    DATE = "date"
    INTEGER = "integer"
    NUMBER = "number"
    CATEGORY = "category"
    BOOLEAN = "boolean"
    REGION_LIST = "region list"


@dataclass(frozen=True)
class Column:
    """One contract column: its type, range and whether a file must have it."""

    name: str
    type: Type
    required: bool
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    allow_empty: bool = False  # column required, but a cell may be empty

    def expected(self) -> str:
        """Plain description of a valid value, for error reports."""
        if self.type is Type.CATEGORY:
            text = "one of " + ", ".join(self.choices)
        elif self.type is Type.BOOLEAN:
            text = "true or false (also 1/0, yes/no)"
        elif self.type is Type.REGION_LIST:
            text = "region names joined by ';' (" + ", ".join(REGIONS) + ")"
        elif self.type is Type.DATE:
            text = "an ISO 8601 date (YYYY-MM-DD)"
        elif self.type in (Type.INTEGER, Type.NUMBER):
            word = "an integer" if self.type is Type.INTEGER else "a number"
            if self.low is not None and self.high is not None:
                text = f"{word} from {_fmt(self.low)} to {_fmt(self.high)}"
            elif self.low is not None:
                text = f"{word} ≥ {_fmt(self.low)}"
            else:
                text = word
        else:
            text = "a non-empty string"
        if self.allow_empty or not self.required:
            text += ", or empty"
        return text


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


IDENTITY = (
    Column("episode_id", Type.STRING, True),
    Column("patient_id", Type.STRING, True),
    Column("intake_date", Type.DATE, False),
)
INTAKE = (
    Column("age", Type.INTEGER, True, 18, 100),
    Column("sex", Type.CATEGORY, True, choices=SEXES),
    Column("pain_region", Type.CATEGORY, True, choices=REGIONS),
    Column("pain_cause", Type.CATEGORY, True, choices=PAIN_CAUSES),
    Column("pain_duration_months", Type.NUMBER, True, 0, None),
    Column("pain_score", Type.INTEGER, True, 0, 10),
    Column("pain_tolerance", Type.CATEGORY, True, choices=TOLERANCES),
    Column("activity_level", Type.CATEGORY, True, choices=ACTIVITY_LEVELS),
    Column("grip_strength_kg", Type.NUMBER, False, 0, 100),
    Column("sleep_quality", Type.INTEGER, False, 0, 10),
    Column("anxiety_score", Type.INTEGER, False, 0, 6),
    Column("depression_score", Type.INTEGER, False, 0, 6),
    Column("bmi", Type.NUMBER, False, 12, 70),
)
CONTRAINDICATIONS = (
    Column("heart_condition", Type.BOOLEAN, True),
    Column("infectious_disease", Type.BOOLEAN, True),
    Column("phlebitis", Type.BOOLEAN, True),
    Column("inflamed_skin_regions", Type.REGION_LIST, True, allow_empty=True),
    Column("infected_regions", Type.REGION_LIST, True, allow_empty=True),
)
# The project's own optional contraindication columns (the contract allows
# them; a file without them stays valid).  See recommender.gate for the rules.
EXTRA_CONTRAINDICATIONS = (
    Column("fever", Type.BOOLEAN, False),
    Column("deep_vein_thrombosis", Type.BOOLEAN, False),
    Column("anticoagulant_therapy", Type.BOOLEAN, False),
    Column("recent_fracture_regions", Type.REGION_LIST, False),
)
PLAN = (
    Column("massage_sessions_per_week", Type.INTEGER, True, 0, 4),
    Column("massage_intensity", Type.CATEGORY, True, choices=INTENSITIES),
    Column("muscle_training_sessions_per_week", Type.INTEGER, True, 0, 4),
    Column("exercise_days_per_week", Type.INTEGER, True, 0, 7),
    Column("session_minutes", Type.INTEGER, True, 15, 60),
    Column("programme_weeks", Type.INTEGER, True, 1, 26),
)
OUTCOME = (
    Column("followup_pain_score", Type.NUMBER, True, 0, 10, allow_empty=True),
    Column("followup_grip_strength_kg", Type.NUMBER, False, 0, 100),
    Column("followup_sleep_quality", Type.INTEGER, False, 0, 10),
    Column("followup_anxiety_score", Type.INTEGER, False, 0, 6),
    Column("followup_depression_score", Type.INTEGER, False, 0, 6),
    Column("adherence", Type.NUMBER, False, 0, 1),
    Column("adverse_event", Type.BOOLEAN, False),
)

PLAN_COLUMNS: tuple[str, ...] = tuple(c.name for c in PLAN)
INTAKE_COLUMNS: tuple[str, ...] = tuple(
    c.name for c in IDENTITY + INTAKE + CONTRAINDICATIONS + EXTRA_CONTRAINDICATIONS
)


def columns_for(kind: Kind) -> tuple[Column, ...]:
    """All known columns of a file of this kind, required and optional."""
    base = IDENTITY + INTAKE + CONTRAINDICATIONS + EXTRA_CONTRAINDICATIONS
    if kind is Kind.TRAINING:
        return base + PLAN + OUTCOME
    return base


def column_map(kind: Kind) -> dict[str, Column]:
    return {c.name: c for c in columns_for(kind)}
