"""The printable patient handout: what, how often, how long — in plain language."""

from __future__ import annotations

from .gate import Effect, GateDecision
from .plans import Plan

_INTENSITY_WORDS = {"gentle": "gentle", "moderate": "moderate", "firm": "firm"}


def handout_markdown(patient_id: str, plan: Plan, decision: GateDecision) -> str:
    lines = ["# Your treatment plan", "", f"Patient: {patient_id}", "",
             f"**For the next {plan.programme_weeks} weeks:**", ""]
    minutes = plan.session_minutes
    if plan.has_massage:
        lines.append(f"- **Pain massage**: {plan.massage_sessions_per_week} time(s) a week, "
                     f"{_INTENSITY_WORDS[plan.massage_intensity]} pressure, about {minutes} minutes, "
                     "at the clinic.")
    if plan.muscle_training_sessions_per_week:
        lines.append(f"- **Muscle training with your therapist**: "
                     f"{plan.muscle_training_sessions_per_week} time(s) a week, about {minutes} minutes.")
    if plan.exercise_days_per_week:
        lines.append(f"- **Your own exercises at home**: {plan.exercise_days_per_week} day(s) a week, "
                     f"about {minutes} minutes each day.")
    if not (plan.has_massage or plan.muscle_training_sessions_per_week or plan.exercise_days_per_week):
        lines.append("- Rest and review with your therapist.")
    avoid = [r for r in decision.reasons if r.effect is Effect.AVOID_REGION]
    if not decision.massage_allowed:
        lines += ["", "Massage is not part of your plan for safety reasons your therapist has "
                      "explained."]
    if avoid:
        lines += ["", "Please do not massage or press on: "
                  + ", ".join(r.region.replace("_", " ") for r in avoid) + "."]
    lines += ["", "**Treatment should not hurt much.** Tell your therapist if anything is "
              "uncomfortable, painful or worrying — the plan will be adjusted.", ""]
    return "\n".join(lines)


def handout_html(patient_id: str, plan: Plan, decision: GateDecision) -> str:
    """The same handout as a self-contained, print-ready HTML page (opens the print dialog)."""
    import html

    body = []
    for line in handout_markdown(patient_id, plan, decision).splitlines():
        text = html.escape(line.lstrip("#- ").strip())
        text = text.replace("**", "")  # emphasis is carried by the tags below
        if line.startswith("# "):
            body.append(f"<h1>{text}</h1>")
        elif line.startswith("- "):
            body.append(f"<li>{text}</li>")
        elif line.startswith("**"):
            body.append(f"<p><strong>{text}</strong></p>")
        elif text:
            body.append(f"<p>{text}</p>")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Your treatment plan"
            "</title><style>body{font:16px/1.5 sans-serif;max-width:40em;margin:2em auto}"
            "li{margin:.4em 0}@media print{body{margin:0}}</style></head>"
            "<body onload='window.print()'><ul>" + "".join(body).replace("<h1>", "</ul><h1>", 1)
            .replace("</h1>", "</h1><ul>", 1) + "</ul></body></html>")
