"""The printable patient handout: what, how often, how long — in plain language.

One content builder, two renderings (Markdown-safe text on screen, print-ready HTML
download).  The HTML does not open the print dialog by itself: the patient or the
therapist prints it when they choose.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass

from recommender.safety.gate import Effect, GateDecision
from recommender.safety.plans import Plan
from recommender.safety.tolerance import DiscomfortCap, capped_intensity

SAFETY_LINE = ("Treatment should not hurt much. Tell your therapist if anything is uncomfortable, "
               "painful or worrying — the plan will be adjusted.")
MASSAGE_STOPPED_LINE = ("Massage is stopped for safety reasons: do not have massage until your "
                        "therapist has reviewed your plan with you.")
_TIMES = {1: "once a week", 2: "twice a week"}


def times_a_week(n: int) -> str:
    """1 → "once a week", 2 → "twice a week", 3 → "3 times a week"."""
    return _TIMES.get(n, f"{n} times a week")


def days_a_week(n: int) -> str:
    return "1 day a week" if n == 1 else f"{n} days a week"


@dataclass(frozen=True)
class Clinic:
    """Who the handout is from (settings ``RECOMMENDER_CLINIC_NAME`` and ``_CONTACT``)."""

    name: str
    contact: str


@dataclass(frozen=True)
class Handout:
    patient_id: str
    weeks: int
    activities: tuple[str, ...]
    notes: tuple[str, ...]
    clinic: Clinic
    therapist: str
    date: dt.date


def handout(patient_id: str, plan: Plan, decision: GateDecision, clinic: Clinic, therapist: str,
            date: dt.date, cap: DiscomfortCap | None = None) -> Handout:
    """The handout of an accepted plan under the rules *now*: massage the gate's decision
    forbids (a contraindication found after the plan was accepted) is never listed, it is
    said to be stopped; massage firmer than the discomfort cap is listed at the cap."""
    minutes = plan.session_minutes
    activities = []
    intensity = capped_intensity(plan, cap)
    stopped = decision.forbidding_reasons(plan) or intensity == "none"
    if plan.has_massage and not stopped:
        activities.append(f"Pain massage at the clinic: {times_a_week(plan.massage_sessions_per_week)}, "
                          f"{intensity} pressure, about {minutes} minutes.")
    if plan.muscle_training_sessions_per_week:
        activities.append("Muscle training with your therapist: "
                          f"{times_a_week(plan.muscle_training_sessions_per_week)}, about {minutes} minutes.")
    if plan.exercise_days_per_week:
        activities.append(f"Your own exercises at home: {days_a_week(plan.exercise_days_per_week)}, "
                          f"about {minutes} minutes each day.")
    if not activities:
        activities.append("Rest and review with your therapist.")
    notes = []
    if plan.has_massage and stopped:
        notes.append(MASSAGE_STOPPED_LINE)
    elif plan.has_massage and intensity != plan.massage_intensity:
        notes.append(f"Massage pressure is lowered to {intensity} after the discomfort you reported, "
                     "until your therapist reviews your plan with you.")
    elif not decision.massage_allowed:
        notes.append("Massage is not part of your plan for safety reasons your therapist has explained.")
    avoid = [r.region.replace("_", " ") for r in decision.reasons if r.effect is Effect.AVOID_REGION]
    if avoid:
        notes.append("Please do not massage or press on: " + ", ".join(avoid) + ".")
    notes.append(SAFETY_LINE)
    return Handout(patient_id, plan.programme_weeks, tuple(activities), tuple(notes), clinic,
                   therapist, date)


def handout_lines(h: Handout) -> list[str]:
    """The handout as plain lines of text (shown on screen as text, never as Markdown)."""
    lines = [f"Your treatment plan — {h.clinic.name}", f"Patient: {h.patient_id}",
             f"Therapist: {h.therapist}    Date: {h.date.isoformat()}", "",
             f"For the next {h.weeks} weeks:"]
    lines += [f"  • {a}" for a in h.activities]
    lines += [""] + list(h.notes) + ["", f"Questions? {h.clinic.contact}"]
    return lines


def handout_html(h: Handout) -> str:
    """A self-contained, print-ready page (it does not open the print dialog itself)."""
    e = html.escape
    items = "".join(f"<li>{e(a)}</li>" for a in h.activities)
    notes = "".join(f"<p>{e(n)}</p>" for n in h.notes)
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<title>Your treatment plan</title><style>body{font:16px/1.5 sans-serif;max-width:40em;"
            "margin:2em auto}li{margin:.4em 0}.meta{color:#444}@media print{body{margin:0}}"
            "</style></head><body>"
            f"<h1>Your treatment plan</h1><p class='meta'>{e(h.clinic.name)}<br>Patient: "
            f"{e(h.patient_id)}<br>Therapist: {e(h.therapist)} · {e(h.date.isoformat())}</p>"
            f"<p><strong>For the next {h.weeks} weeks:</strong></p><ul>{items}</ul>{notes}"
            f"<p class='meta'>Questions? {e(h.clinic.contact)}</p></body></html>")
