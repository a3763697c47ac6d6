"""Logic behind the therapist's screens: intake form values, plan controls and their locks.

The page scripts only lay these out; what is allowed, and why, is decided here.
"""

from __future__ import annotations

from dataclasses import dataclass

from recommender.contract.columns import INTENSITIES
from recommender.safety.gate import Effect, GateDecision
from recommender.safety.plans import (
    EXERCISE_DAYS,
    MASSAGE_SESSIONS,
    TRAINING_SESSIONS,
    Plan,
)

SESSION_MINUTES_CHOICES = (15, 20, 30, 45, 60)
PROGRAMME_WEEKS_CHOICES = (2, 4, 6, 8, 10, 12, 16, 26)


@dataclass(frozen=True)
class PlanControls:
    """Options a therapist may pick for each component, and why others are locked."""

    massage_sessions: tuple[int, ...]
    intensities: tuple[str, ...]
    locked_reason: str  # empty when nothing is locked
    training_sessions: tuple[int, ...] = TRAINING_SESSIONS
    exercise_days: tuple[int, ...] = EXERCISE_DAYS
    minutes: tuple[int, ...] = SESSION_MINUTES_CHOICES
    weeks: tuple[int, ...] = PROGRAMME_WEEKS_CHOICES


def plan_controls(decision: GateDecision) -> PlanControls:
    """Only what the gate allows is selectable; the reason is shown beside the lock."""
    blocked = [r.message for r in decision.reasons if r.effect is not Effect.AVOID_REGION]
    if not decision.massage_allowed:
        return PlanControls((0,), ("none",), " ".join(blocked))
    allowed = tuple(INTENSITIES[1:decision.max_massage_level + 1])
    return PlanControls(MASSAGE_SESSIONS, allowed, " ".join(blocked))


def build_plan(massage_sessions: int, intensity: str, training: int, exercise: int, minutes: int,
               weeks: int) -> Plan:
    """A plan from control values (sessions 0 forces intensity 'none', and vice versa)."""
    if massage_sessions == 0 or intensity == "none":
        return Plan(0, "none", training, exercise, minutes, weeks)
    return Plan(massage_sessions, intensity, training, exercise, minutes, weeks)


def differs(a: Plan, b: Plan) -> list[str]:
    return [k for k, v in a.as_dict().items() if b.as_dict()[k] != v]


def form_to_intake(values: dict) -> dict:
    """Intake form widget values to contract cell values (strings the reader validates)."""
    out = {}
    for key, value in values.items():
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, (list, tuple, set, frozenset)):
            out[key] = ";".join(sorted(value))
        elif value is None:
            out[key] = ""
        else:
            out[key] = value
    return out


# Intake form fields: (column, label, kind, options) — kinds: text, int, float, choice, bool, regions.
from recommender.contract.columns import (  # noqa: E402
    ACTIVITY_LEVELS,
    PAIN_CAUSES,
    REGIONS,
    SEXES,
    TOLERANCES,
)

INTAKE_FIELDS: tuple[tuple[str, str, str, tuple], ...] = (
    ("episode_id", "Episode id", "text", ()),
    ("patient_id", "Patient id", "text", ()),
    ("age", "Age (years)", "int", (18, 100, 50)),
    ("sex", "Sex", "choice", SEXES),
    ("pain_region", "Pain region", "choice", REGIONS),
    ("pain_cause", "Cause (assessment)", "choice", PAIN_CAUSES),
    ("pain_duration_months", "Pain duration (months)", "float", (0.0, 600.0, 6.0)),
    ("pain_score", "Pain score NRS 0–10", "int", (0, 10, 6)),
    ("pain_tolerance", "Pain tolerance", "choice", TOLERANCES),
    ("activity_level", "Activity level", "choice", ACTIVITY_LEVELS),
    ("sleep_quality", "Sleep quality 0–10 (optional)", "optint", (0, 10)),
    ("anxiety_score", "Anxiety GAD-2 0–6 (optional)", "optint", (0, 6)),
    ("depression_score", "Depression PHQ-2 0–6 (optional)", "optint", (0, 6)),
    ("grip_strength_kg", "Grip strength kg (optional)", "optfloat", (0.0, 100.0)),
    ("bmi", "BMI (optional)", "optfloat", (12.0, 70.0)),
    ("heart_condition", "Heart condition", "bool", ()),
    ("infectious_disease", "Infectious disease", "bool", ()),
    ("phlebitis", "Phlebitis / thrombophlebitis", "bool", ()),
    ("fever", "Fever", "bool", ()),
    ("deep_vein_thrombosis", "Deep-vein thrombosis", "bool", ()),
    ("anticoagulant_therapy", "Takes anticoagulants", "bool", ()),
    ("inflamed_skin_regions", "Inflamed skin (regions)", "regions", REGIONS),
    ("infected_regions", "Infected (regions)", "regions", REGIONS),
    ("recent_fracture_regions", "Recent fracture (regions)", "regions", REGIONS),
)


def errors_by_column(errors) -> dict[str, str]:
    """Validation errors keyed by column, worded for display beside the field."""
    return {e.column: f"'{e.value}' is not valid: expected {e.expected}" for e in errors}
