"""A FHIR CarePlan (R4B) for an accepted plan, validated with ``fhir.resources``.

R4B's ``CarePlan.activity.detail`` carries a plain-language description and a
schedule (times a week, minutes, programme length), which is what a receiving
system needs; R5 removed ``detail``.  The resource ``id`` follows FHIR's id rule
(``[A-Za-z0-9\\-.]{1,64}``), so it is derived from the episode id by hashing; the
clinic's own ids travel unchanged in ``identifier``.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from fhir.resources.R4B.careplan import CarePlan

from recommender.safety.gate import GateDecision
from recommender.safety.plans import Plan

UCUM = "http://unitsofmeasure.org"
EPISODE_SYSTEM = "urn:pain-plan-recommender:episode-id"
PATIENT_SYSTEM = "urn:pain-plan-recommender:patient-id"


def fhir_id(prefix: str, clinic_id: str) -> str:
    """A valid FHIR resource id for a clinic identifier (any characters in, [a-z0-9-] out)."""
    return f"{prefix}-{hashlib.sha256(clinic_id.encode()).hexdigest()[:32]}"


def _activity(description: str, per_week: int, minutes: int, weeks: int) -> dict:
    return {"detail": {
        "kind": "ServiceRequest",
        "status": "scheduled",
        "description": description,
        "scheduledTiming": {"repeat": {
            "frequency": per_week, "period": 1, "periodUnit": "wk",
            "duration": minutes, "durationUnit": "min",
            "boundsDuration": {"value": weeks, "unit": "wk", "system": UCUM, "code": "wk"},
        }},
    }}


def care_plan(episode_id: str, patient_id: str, plan: Plan, decision: GateDecision,
              created: dt.date | None = None) -> CarePlan:
    """The accepted plan as a validated CarePlan resource."""
    activities = []
    if plan.has_massage:
        activities.append(_activity(f"{plan.massage_intensity.capitalize()} pain massage of the "
                                    "pain region", plan.massage_sessions_per_week,
                                    plan.session_minutes, plan.programme_weeks))
    if plan.muscle_training_sessions_per_week:
        activities.append(_activity("Supervised muscle training", plan.muscle_training_sessions_per_week,
                                    plan.session_minutes, plan.programme_weeks))
    if plan.exercise_days_per_week:
        activities.append(_activity("Own therapeutic exercise at home", plan.exercise_days_per_week,
                                    plan.session_minutes, plan.programme_weeks))
    notes = [{"text": "Tell your therapist if anything is uncomfortable; the plan is adjusted."}]
    notes += [{"text": r.message} for r in decision.reasons]
    day = (created or dt.date.today()).isoformat()
    resource = {
        "resourceType": "CarePlan",
        "id": fhir_id("careplan", episode_id),
        "identifier": [{"system": EPISODE_SYSTEM, "value": episode_id}],
        "status": "active",
        "intent": "plan",
        "title": "Chronic pain treatment plan",
        "description": plan.describe(),
        "subject": {"identifier": {"system": PATIENT_SYSTEM, "value": patient_id}, "display": patient_id},
        "created": day,
        "period": {"start": day},
        "activity": activities,
        "note": notes,
    }
    return CarePlan.model_validate(resource)


def care_plan_json(*args, **kwargs) -> str:
    return care_plan(*args, **kwargs).model_dump_json(indent=2)
