"""The episode data contract (version 1.1) as data; ``docs/data-contract.md`` is generated from it.

Every reader and writer of episode data takes its column names, types and
ranges from here, so the contract is written down once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

CONTRACT_VERSION = "1.1"

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
    IDENTIFIER = "identifier"


# Identifiers (contract 1.1): 1–64 characters from a safe set, no spaces or control characters.
IDENTIFIER_MAX_LENGTH = 64
IDENTIFIER_PATTERN = r"[A-Za-z0-9._:/-]{1,64}"


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
    label: str = ""  # what a therapist reads on screen
    meaning: str = ""  # what the contract document says of it
    unit: str = ""

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
        elif self.type is Type.IDENTIFIER:
            text = (f"1 to {IDENTIFIER_MAX_LENGTH} characters: letters, digits and - _ . : / "
                    "(no spaces)")
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
    Column("episode_id", Type.IDENTIFIER, True, label="Episode id",
           meaning="one course of treatment"),
    Column("patient_id", Type.IDENTIFIER, True, label="Patient id",
           meaning="a patient may have several episodes"),
    Column("intake_date", Type.DATE, False, label="Intake date"),
)
INTAKE = (
    Column("age", Type.INTEGER, True, 18, 100, label="Age", unit="years", meaning="years"),
    Column("sex", Type.CATEGORY, True, choices=SEXES, label="Sex"),
    Column("pain_region", Type.CATEGORY, True, choices=REGIONS, label="Pain region",
           meaning="primary location of the pain; massage in a plan targets this region"),
    Column("pain_cause", Type.CATEGORY, True, choices=PAIN_CAUSES, label="Cause",
           meaning="therapist's assessment of the cause"),
    Column("pain_duration_months", Type.NUMBER, True, 0, 1200, label="Pain duration", unit="months",
           meaning="how long the pain has lasted (chronic: ≥ 3)"),
    Column("pain_score", Type.INTEGER, True, 0, 10, label="Pain score (0–10)",
           meaning="numeric rating scale (NRS) at intake, 10 worst"),
    Column("pain_tolerance", Type.CATEGORY, True, choices=TOLERANCES, label="Pain tolerance",
           meaning="how much discomfort the patient tolerates in treatment"),
    Column("activity_level", Type.CATEGORY, True, choices=ACTIVITY_LEVELS, label="Activity level",
           meaning="habitual activity"),
    Column("grip_strength_kg", Type.NUMBER, False, 0, 100, label="Grip strength", unit="kg",
           meaning="dynamometer, dominant hand"),
    Column("sleep_quality", Type.INTEGER, False, 0, 10, label="Sleep quality (0–10)", meaning="10 best"),
    Column("anxiety_score", Type.INTEGER, False, 0, 6, label="Anxiety (GAD-2, 0–6)", meaning="GAD-2"),
    Column("depression_score", Type.INTEGER, False, 0, 6, label="Depression (PHQ-2, 0–6)",
           meaning="PHQ-2"),
    Column("bmi", Type.NUMBER, False, 12, 70, label="BMI"),
)
CONTRAINDICATIONS = (
    Column("heart_condition", Type.BOOLEAN, True, label="Heart condition", meaning="any heart problem"),
    Column("infectious_disease", Type.BOOLEAN, True, label="Infectious disease",
           meaning="a current infectious disease"),
    Column("phlebitis", Type.BOOLEAN, True, label="Phlebitis / thrombophlebitis",
           meaning="phlebitis or thrombophlebitis"),
    Column("inflamed_skin_regions", Type.REGION_LIST, True, allow_empty=True,
           label="Inflamed skin (regions)", meaning="regions where the skin is inflamed"),
    Column("infected_regions", Type.REGION_LIST, True, allow_empty=True, label="Infected (regions)",
           meaning="regions with an infection"),
)
# The project's own optional contraindication columns (the contract allows
# them; a file without them stays valid).  See recommender.safety.gate for the rules.
EXTRA_CONTRAINDICATIONS = (
    Column("fever", Type.BOOLEAN, False, label="Fever", meaning="a current fever"),
    Column("deep_vein_thrombosis", Type.BOOLEAN, False, label="Deep-vein thrombosis",
           meaning="a known deep-vein thrombosis"),
    Column("anticoagulant_therapy", Type.BOOLEAN, False, label="Takes anticoagulants",
           meaning="on anticoagulant therapy (no firm massage)"),
    Column("recent_fracture_regions", Type.REGION_LIST, False, label="Recent fracture (regions)",
           meaning="regions with a recent, unhealed fracture"),
)
PLAN = (
    Column("massage_sessions_per_week", Type.INTEGER, True, 0, 4, label="Massage sessions a week",
           meaning="pain massage sessions a week, on `pain_region`"),
    Column("massage_intensity", Type.CATEGORY, True, choices=INTENSITIES, label="Massage intensity",
           meaning="`none` exactly when sessions are 0"),
    Column("muscle_training_sessions_per_week", Type.INTEGER, True, 0, 4,
           label="Muscle training sessions a week",
           meaning="supervised muscle (strength/endurance) training sessions a week"),
    Column("exercise_days_per_week", Type.INTEGER, True, 0, 7, label="Own exercise days a week",
           meaning="days a week of the patient's own therapeutic exercise"),
    Column("session_minutes", Type.INTEGER, True, 15, 60, label="Minutes per session",
           meaning="minutes per session or exercise day (30 is the usual)"),
    Column("programme_weeks", Type.INTEGER, True, 1, 26, label="Programme weeks",
           meaning="length of the programme"),
)
OUTCOME = (
    Column("followup_pain_score", Type.NUMBER, True, 0, 10, allow_empty=True,
           label="Follow-up pain score (0–10)",
           meaning="NRS at the end of the programme; empty when the patient was lost to follow-up"),
    Column("followup_grip_strength_kg", Type.NUMBER, False, 0, 100, label="Follow-up grip strength",
           unit="kg"),
    Column("followup_sleep_quality", Type.INTEGER, False, 0, 10, label="Follow-up sleep quality (0–10)"),
    Column("followup_anxiety_score", Type.INTEGER, False, 0, 6, label="Follow-up anxiety (GAD-2)"),
    Column("followup_depression_score", Type.INTEGER, False, 0, 6, label="Follow-up depression (PHQ-2)"),
    Column("adherence", Type.NUMBER, False, 0, 1, label="Adherence (share of planned sessions)",
           meaning="fraction of planned sessions completed"),
    Column("adverse_event", Type.BOOLEAN, False, label="Adverse event",
           meaning="any harm attributed to treatment"),
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
