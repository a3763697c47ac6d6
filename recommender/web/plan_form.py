"""Logic behind the therapist's screens: intake form values, plan controls and their locks.

The page scripts only lay these out; what is allowed, and why, is decided here.
"""

from __future__ import annotations

from dataclasses import dataclass

from recommender.contract.columns import (
    CONTRAINDICATIONS,
    EXTRA_CONTRAINDICATIONS,
    IDENTITY,
    INTAKE,
    REGIONS,
    Column,
    Type,
)
from recommender.contract.validation import RowError
from recommender.safety.gate import Effect, GateDecision
from recommender.safety.plans import (
    EXERCISE_DAYS,
    INTENSITY_LEVEL,
    MASSAGE_SESSIONS,
    TRAINING_SESSIONS,
    Plan,
)
from recommender.safety.tolerance import DiscomfortCap
from recommender.web.wording import plain

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


def plan_controls(decision: GateDecision, cap: DiscomfortCap | None = None) -> PlanControls:
    """Only what the gate and the discomfort cap allow is selectable; the reasons are shown
    beside the lock."""
    blocked = [r.message for r in decision.reasons if r.effect is not Effect.AVOID_REGION]
    intensities = decision.allowed_intensities()
    if cap is not None:
        blocked.append(cap.message)
        intensities = tuple(i for i in intensities if INTENSITY_LEVEL[i] <= cap.max_level)
    if not decision.massage_allowed or not intensities:
        return PlanControls((0,), ("none",), " ".join(blocked))
    return PlanControls(MASSAGE_SESSIONS, intensities, " ".join(blocked))


def permitted(plan: Plan, decision: GateDecision, cap: DiscomfortCap | None = None) -> bool:
    """Whether the gate and the discomfort cap allow ``plan`` for the patient now."""
    return not decision.forbidding_reasons(plan) and (cap is None or cap.permits(plan))


def contraindicated_plan_warning(plan: Plan, decision: GateDecision, ended: bool = False) -> str | None:
    """What to say when an accepted plan's massage is no longer allowed (a finding since it
    was accepted), or None while it is.  An ended programme's plan cannot be replaced any more,
    so it is not asked for."""
    blocked = decision.forbidding_reasons(plan)
    if not blocked:
        return None
    then = (" The programme has ended;" if ended
            else " No massage until the plan is reviewed and replaced;")
    return ("The accepted plan's massage is now contraindicated: " + " ".join(r.message for r in blocked)
            + then + " the handout and the FHIR export show it as stopped.")


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


# A yes/no question starts unanswered: a ticked-off checkbox read as an assessed "no", so an
# intake saved without looking at the heart, infection and phlebitis questions let massage
# through.  A required one left unanswered is refused by the contract's validation.
YES_NO = ("No", "Yes")


def answer(choice: str | None) -> bool | None:
    """A yes/no radio's choice as the contract value (None: not answered / not recorded)."""
    return None if choice is None else choice == "Yes"


# Required region lists (inflamed skin, infection): an empty cell means "none found", so the
# form asks "any?" first, unanswered, and an empty list alone no longer reads as assessed.
ASKED_REGION_LISTS = tuple(c.name for c in CONTRAINDICATIONS if c.type is Type.REGION_LIST and c.required)


def region_answer_errors(answers: dict[str, bool | None], values: dict) -> list[RowError]:
    """The "any?" questions of the required region lists against the regions chosen."""
    errors = []
    for column in ASKED_REGION_LISTS:
        said, regions = answers.get(column), values.get(column) or []
        if said is None:
            errors.append(RowError(1, column, "", "an answer: any such region, yes or no"))
        elif said and not regions:
            errors.append(RowError(1, column, "", "the regions (you answered yes)"))
        elif not said and regions:
            errors.append(RowError(1, column, ";".join(sorted(regions)),
                                   "no regions (you answered no)"))
    return errors


# Values a new intake form starts with (UI choices, not contract rules).
FORM_DEFAULTS = {"age": 50, "pain_duration_months": 6.0, "pain_score": 6}


def _field(column: Column) -> tuple[str, str, str, tuple]:
    """(column, label, widget kind, options) of one contract column, from the contract alone."""
    label = column.label + (f" ({column.unit})" if column.unit else "")
    if not column.required and column.type in (Type.INTEGER, Type.NUMBER):
        label += " (optional)"
    if column.type is Type.IDENTIFIER:
        return column.name, label, "text", ()
    if column.type is Type.CATEGORY:
        return column.name, label, "choice", column.choices
    if column.type is Type.BOOLEAN:
        return column.name, label, "bool", ()
    if column.type is Type.REGION_LIST:
        return column.name, label, "regions", REGIONS
    integer = column.type is Type.INTEGER
    cast = int if integer else float
    bounds = (cast(column.low), cast(column.high))
    if column.required:
        return column.name, label, "int" if integer else "float", (*bounds, FORM_DEFAULTS[column.name])
    return column.name, label, "optint" if integer else "optfloat", bounds


INTAKE_FIELDS: tuple[tuple[str, str, str, tuple], ...] = tuple(
    _field(c) for c in IDENTITY + INTAKE + CONTRAINDICATIONS + EXTRA_CONTRAINDICATIONS
    if c.name != "intake_date"
)


def errors_by_column(errors) -> dict[str, str]:
    """Validation errors keyed by column, worded for display beside the field."""
    return {e.column: f"{plain(repr(e.value))} is not valid: expected {e.expected}" for e in errors}


def intake_refusal(reason: str, errors) -> dict[str, str]:
    """What to show beside the intake form's fields: each field's errors, else the refusal's
    reason beside the episode id (it may quote an id, which can hold ``https://…``)."""
    return errors_by_column(errors) or {"episode_id": plain(reason)}


def intake_summary(intake: dict, decision: GateDecision) -> list[tuple[str, str]]:
    """The intake facts a therapist checks beside the plan, as (label, text) pairs."""
    def words(value) -> str:
        return str(value).replace("_", " ") if value not in (None, "") else "not recorded"

    blocked = [r.message for r in decision.reasons if r.effect is not Effect.AVOID_REGION]
    avoid = ", ".join(r.replace("_", " ") for r in decision.avoid_regions)
    return [
        ("Pain", f"{intake.get('pain_score')}/10 for {intake.get('pain_duration_months')} months"),
        ("Region", words(intake.get("pain_region"))),
        ("Cause", words(intake.get("pain_cause"))),
        ("Tolerance", words(intake.get("pain_tolerance"))),
        ("Activity", words(intake.get("activity_level"))),
        ("Contraindications", " ".join(blocked) + (f" Avoid: {avoid}." if avoid else "")
         if blocked or avoid else "none recorded"),
    ]


def plan_lines(plan: Plan) -> list[str]:
    """A plan as short plain-language lines (one per component)."""
    from recommender.outputs.handout import days_a_week, times_a_week

    lines = [f"Massage: {plan.massage_intensity}, {times_a_week(plan.massage_sessions_per_week)}"
             if plan.has_massage else "Massage: none"]
    lines.append("Muscle training: " + (times_a_week(plan.muscle_training_sessions_per_week)
                                        if plan.muscle_training_sessions_per_week else "none"))
    lines.append("Own exercise: " + (days_a_week(plan.exercise_days_per_week)
                                     if plan.exercise_days_per_week else "none"))
    lines.append(f"{plan.session_minutes} minutes per session, for {plan.programme_weeks} weeks")
    return lines
