"""A FHIR CarePlan (R4B) for an accepted plan, and the patient's pain scores as
Observations linked to it, validated with ``fhir.resources``.

R4B's ``CarePlan.activity.detail`` carries a plain-language description and a
schedule (times a week, minutes, programme length), which is what a receiving
system needs; R5 removed ``detail``.  The resource ``id`` follows FHIR's id rule
(``[A-Za-z0-9\\-.]{1,64}``), so it is derived from the episode id by hashing; the
clinic's own ids travel unchanged in ``identifier``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import replace

from typing import NamedTuple

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.observation import Observation

from recommender.safety.gate import GateDecision
from recommender.safety.plans import Plan
from recommender.safety.tolerance import DiscomfortCap, capped_intensity

UCUM = "http://unitsofmeasure.org"
EPISODE_SYSTEM = "urn:pain-plan-recommender:episode-id"
PATIENT_SYSTEM = "urn:pain-plan-recommender:patient-id"
SCORE_SYSTEM = "urn:pain-plan-recommender:pain-score"
LOINC = "http://loinc.org"
PAIN_SEVERITY_NRS = ("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported")
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"


class PainScore(NamedTuple):
    """One pain score to report: when, the score, and the clinic's id of its record."""

    day: dt.date
    score: float  # NRS 0–10; a follow-up may record a half point
    source: str  # e.g. "intake" or "visit:12"


def fhir_id(prefix: str, clinic_id: str) -> str:
    """A valid FHIR resource id for a clinic identifier (any characters in, [a-z0-9-] out)."""
    return f"{prefix}-{hashlib.sha256(clinic_id.encode()).hexdigest()[:32]}"


def _activity(description: str, per_week: int, minutes: int, weeks: int, ended: bool = False) -> dict:
    return {"detail": {
        "kind": "ServiceRequest",
        "status": "completed" if ended else "scheduled",
        "description": description,
        "scheduledTiming": {"repeat": {
            "frequency": per_week, "period": 1, "periodUnit": "wk",
            "duration": minutes, "durationUnit": "min",
            "boundsDuration": {"value": weeks, "unit": "wk", "system": UCUM, "code": "wk"},
        }},
    }}


def _stopped_activity(description: str, reason: str) -> dict:
    """An activity that must not happen: status ``stopped``, the reason, and no schedule, so a
    receiving system cannot book it."""
    return {"detail": {"kind": "ServiceRequest", "status": "stopped", "description": description,
                       "statusReason": {"text": reason}}}


def _as_given_now(plan: Plan, stopped: bool, intensity: str) -> Plan:
    """The plan as it may be given now: without massage when it is stopped, at the capped
    intensity when the cap lowered it (so the summary never describes massage that is not)."""
    if plan.has_massage and (stopped or intensity == "none"):
        return replace(plan, massage_sessions_per_week=0, massage_intensity="none")
    return replace(plan, massage_intensity=intensity)


def care_plan(episode_id: str, patient_id: str, plan: Plan, decision: GateDecision,
              created: dt.date | None = None, cap: DiscomfortCap | None = None,
              ended: bool = False) -> CarePlan:
    """The accepted plan as a validated CarePlan resource, under the rules *now*: massage the
    gate forbids (a contraindication found since) is sent as stopped, never scheduled, and
    massage firmer than the discomfort cap is scheduled at the cap.  Once the programme has
    ended (follow-up or end-of-programme visit) the plan and its activities are completed."""
    activities = []
    stopped = decision.forbidding_reasons(plan)
    intensity = capped_intensity(plan, cap)
    if plan.has_massage and stopped:
        activities.append(_stopped_activity("Pain massage (stopped: contraindicated)",
                                            " ".join(r.message for r in stopped)))
    elif plan.has_massage and intensity == "none":
        activities.append(_stopped_activity("Pain massage (stopped: discomfort)", cap.message))
    elif plan.has_massage:
        activities.append(_activity(f"{intensity.capitalize()} pain massage of the pain region",
                                    plan.massage_sessions_per_week, plan.session_minutes,
                                    plan.programme_weeks, ended))
    if plan.muscle_training_sessions_per_week:
        activities.append(_activity("Supervised muscle training", plan.muscle_training_sessions_per_week,
                                    plan.session_minutes, plan.programme_weeks, ended))
    if plan.exercise_days_per_week:
        activities.append(_activity("Own therapeutic exercise at home", plan.exercise_days_per_week,
                                    plan.session_minutes, plan.programme_weeks, ended))
    notes = [{"text": "Tell your therapist if anything is uncomfortable; the plan is adjusted."}]
    notes += [{"text": r.message} for r in decision.reasons]
    if plan.has_massage and cap is not None and not cap.permits(plan):
        notes.append({"text": f"{cap.message} ({cap.rule_id})"})
    day = (created or dt.date.today()).isoformat()
    resource = {
        "resourceType": "CarePlan",
        "id": fhir_id("careplan", episode_id),
        "identifier": [{"system": EPISODE_SYSTEM, "value": episode_id}],
        "status": "completed" if ended else "active",
        "intent": "plan",
        "title": "Chronic pain treatment plan",
        "description": _as_given_now(plan, bool(stopped), intensity).describe(),
        "subject": {"identifier": {"system": PATIENT_SYSTEM, "value": patient_id}, "display": patient_id},
        "created": day,
        "period": {"start": day},
        "activity": activities,
        "note": notes,
    }
    return CarePlan.model_validate(resource)


def pain_observation(episode_id: str, patient_id: str, score: PainScore) -> Observation:
    """One pain score as a validated Observation based on the episode's CarePlan."""
    key = f"{episode_id}|{score.source}"
    return Observation.model_validate({
        "resourceType": "Observation",
        "id": fhir_id("pain", key),
        "identifier": [{"system": SCORE_SYSTEM, "value": key}],
        "status": "final",
        "basedOn": [{"reference": f"CarePlan/{fhir_id('careplan', episode_id)}"}],
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "survey"}]}],
        "code": {"coding": [{"system": LOINC, "code": PAIN_SEVERITY_NRS[0],
                             "display": PAIN_SEVERITY_NRS[1]}], "text": "Pain (0-10)"},
        "subject": {"identifier": {"system": PATIENT_SYSTEM, "value": patient_id}, "display": patient_id},
        "effectiveDateTime": score.day.isoformat(),
        **({"valueInteger": int(score.score)} if float(score.score).is_integer()
           else {"valueQuantity": {"value": float(score.score), "unit": "score"}}),
    })


def care_bundle(episode_id: str, patient_id: str, plan: Plan, decision: GateDecision,
                scores: list[PainScore], created: dt.date | None = None,
                cap: DiscomfortCap | None = None, ended: bool = False) -> Bundle:
    """The CarePlan and every pain score, as one validated ``collection`` Bundle."""
    resources = [care_plan(episode_id, patient_id, plan, decision, created, cap, ended)]
    resources += [pain_observation(episode_id, patient_id, s) for s in scores]
    return Bundle.model_validate({
        "resourceType": "Bundle", "type": "collection",
        "entry": [{"resource": r.model_dump(mode="json", exclude_none=True)} for r in resources],
    })


def care_bundle_json(*args, **kwargs) -> str:
    return care_bundle(*args, **kwargs).model_dump_json(indent=2)
