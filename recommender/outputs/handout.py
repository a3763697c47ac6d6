"""The printable patient handout: what, how often, how long — in plain language.

One content builder, two renderings (Markdown on screen, print-ready HTML download).
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from recommender.safety.gate import Effect, GateDecision
from recommender.safety.plans import Plan

SAFETY_LINE = ("Treatment should not hurt much. Tell your therapist if anything is uncomfortable, "
               "painful or worrying — the plan will be adjusted.")


@dataclass(frozen=True)
class Handout:
    patient_id: str
    weeks: int
    activities: tuple[str, ...]
    notes: tuple[str, ...]


def handout(patient_id: str, plan: Plan, decision: GateDecision) -> Handout:
    minutes = plan.session_minutes
    activities = []
    if plan.has_massage:
        activities.append(f"Pain massage: {plan.massage_sessions_per_week} time(s) a week, "
                          f"{plan.massage_intensity} pressure, about {minutes} minutes, at the clinic.")
    if plan.muscle_training_sessions_per_week:
        activities.append(f"Muscle training with your therapist: "
                          f"{plan.muscle_training_sessions_per_week} time(s) a week, about {minutes} minutes.")
    if plan.exercise_days_per_week:
        activities.append(f"Your own exercises at home: {plan.exercise_days_per_week} day(s) a week, "
                          f"about {minutes} minutes each day.")
    if not activities:
        activities.append("Rest and review with your therapist.")
    notes = []
    if not decision.massage_allowed:
        notes.append("Massage is not part of your plan for safety reasons your therapist has explained.")
    avoid = [r.region.replace("_", " ") for r in decision.reasons if r.effect is Effect.AVOID_REGION]
    if avoid:
        notes.append("Please do not massage or press on: " + ", ".join(avoid) + ".")
    notes.append(SAFETY_LINE)
    return Handout(patient_id, plan.programme_weeks, tuple(activities), tuple(notes))


def handout_markdown(patient_id: str, plan: Plan, decision: GateDecision) -> str:
    h = handout(patient_id, plan, decision)
    lines = ["# Your treatment plan", "", f"Patient: {h.patient_id}", "",
             f"**For the next {h.weeks} weeks:**", ""]
    lines += [f"- {a}" for a in h.activities]
    lines += [""] + [f"{n}\n" for n in h.notes]
    return "\n".join(lines)


def handout_html(patient_id: str, plan: Plan, decision: GateDecision) -> str:
    """A self-contained page that opens the print dialog."""
    h = handout(patient_id, plan, decision)
    e = html.escape
    items = "".join(f"<li>{e(a)}</li>" for a in h.activities)
    notes = "".join(f"<p>{e(n)}</p>" for n in h.notes)
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<title>Your treatment plan</title><style>body{font:16px/1.5 sans-serif;max-width:40em;"
            "margin:2em auto}li{margin:.4em 0}@media print{body{margin:0}}</style></head>"
            "<body onload='window.print()'><h1>Your treatment plan</h1>"
            f"<p>Patient: {e(h.patient_id)}</p><p><strong>For the next {h.weeks} weeks:</strong></p>"
            f"<ul>{items}</ul>{notes}</body></html>")
