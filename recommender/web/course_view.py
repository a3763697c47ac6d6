"""What the course-of-care page shows, built outside the page script so it is unit-tested:
the pain chart against the predicted path, the tables, and the visit form's values."""

from __future__ import annotations

import datetime as dt

import altair as alt
import pandas as pd

from recommender.contract.columns import PLAN
from recommender.contract.visits import VISIT_CONTRAINDICATIONS
from recommender.safety.plans import Plan
from recommender.safety.tolerance import HIGH_DISCOMFORT
from recommender.services.care import Progress
from recommender.services.course import FLAG_TEXT
from recommender.web.wording import local_time

SECTIONS = ("Record a visit", "Review the plan", "Visits", "Plan history")
KIND_LABELS = {"session": "Treatment session", "review": "Review", "end_of_programme": "End of programme"}
CONTRAINDICATION_FIELDS = tuple((c.name, c.label, c.type.value) for c in VISIT_CONTRAINDICATIONS)


def episode_choices(found: list[str], opened: str | None, query: str,
                    last_query: str | None) -> tuple[list[str], int]:
    """The course page's episode list and which one is selected.

    An episode opened from another page (My day) stays listed and selected; a *new* search
    selects from its own results: keeping the opened patient selected after a search for
    another one had therapists record a visit on the wrong patient."""
    searched_anew = bool(query) and query != last_query
    keep = opened if opened and not (searched_anew and opened not in found) else None
    options = list(found)
    if keep and keep not in options:
        options.insert(0, keep)
    index = options.index(keep) if keep in options and not searched_anew else 0
    return options, index


OBSERVED_COLOUR = "#c0392b"  # the caption calls it red


def pain_chart(progress: Progress) -> alt.LayerChart:
    """Observed pain at each visit (and the follow-up) over the likely range and expected path
    of the plan(s)."""
    data = progress.chart_frame()
    data["date"] = pd.to_datetime(data["date"])
    base = alt.Chart(data).encode(x=alt.X("date:T", title="Date"))
    scale = alt.Scale(domain=[0, 10])
    band = base.mark_area(opacity=0.2).encode(
        y=alt.Y("likely best:Q", scale=scale, title="Pain (0–10)"), y2="likely worst:Q",
        tooltip=["date:T", "likely best:Q", "likely worst:Q"])
    expected = base.mark_line(strokeDash=[6, 4]).encode(y=alt.Y("expected pain:Q", scale=scale))
    observed = base.transform_filter("isValid(datum['observed pain'])").mark_line(
        color=OBSERVED_COLOUR, point=alt.OverlayMarkDef(color=OBSERVED_COLOUR),  # a lone point too
    ).encode(y=alt.Y("observed pain:Q", scale=scale), tooltip=["date:T", "observed pain:Q"])
    return alt.layer(band, expected, observed)


def discomfort_frame(progress: Progress) -> pd.DataFrame:
    """Discomfort during treatment at each visit with treatment (one row per visit)."""
    rows = [{"date": pd.Timestamp(v.visit_date), "visit": v.id, "discomfort": v.discomfort,
             "massage": v.massage_intensity}
            for v in progress.visits if v.discomfort is not None]
    return pd.DataFrame(rows, columns=["date", "visit", "discomfort", "massage"])


def discomfort_chart(progress: Progress) -> alt.LayerChart:
    """Discomfort per visit (never summed over a day) with the rule's threshold drawn in."""
    data = discomfort_frame(progress)
    scale = alt.Scale(domain=[0, 10])
    points = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("date:T", title="Date"), y=alt.Y("discomfort:Q", scale=scale, title="Discomfort (0–10)"),
        tooltip=["date:T", "visit:Q", "discomfort:Q", "massage:N"])
    threshold = alt.Chart(pd.DataFrame({"high": [HIGH_DISCOMFORT]})).mark_rule(
        strokeDash=[4, 4], color="#c0392b").encode(y="high:Q")
    return alt.layer(points, threshold)


def flag_lines(progress: Progress) -> list[str]:
    return [FLAG_TEXT[f] for f in progress.flags]


def visits_table(progress: Progress) -> pd.DataFrame:
    """Every visit record, corrections included; a corrected record is marked, not hidden."""
    replaced = {r.supersedes_id: r.id for r in progress.records if r.supersedes_id}
    rows = []
    for r in progress.records:
        found = ", ".join(f"{k.replace('_', ' ')}: {';'.join(v) if isinstance(v, list) else 'yes'}"
                          for k, v in r.contraindications.items())
        rows.append({
            "visit": r.id, "date": r.visit_date.isoformat(), "kind": KIND_LABELS.get(r.kind, r.kind),
            "pain": r.pain_score, "discomfort": r.discomfort, "massage": r.massage_intensity,
            "training": "yes" if r.training_given else "no",
            "exercise days (7 d)": r.exercise_days_last_week,
            "adverse event": "yes" if r.adverse_event else "", "found": found, "note": r.note,
            "status": (f"corrected by visit {replaced[r.id]}" if r.id in replaced
                       else f"corrects visit {r.supersedes_id}: {r.correction_reason}" if r.supersedes_id
                       else ""),
            "recorded by": r.recorded_by,
        })
    return pd.DataFrame(rows)


def plan_history_table(progress: Progress) -> pd.DataFrame:
    """Every accepted plan, with who, when and why."""
    return pd.DataFrame([{
        "decision": p.decision_id, "plan": p.plan.describe(), "by": p.decided_by,
        "when": local_time(p.decided_at), "from": "review" if p.review else "recommendation",
        "why": p.reason,
    } for p in progress.plans])


def plan_comparison(current: Plan | None, proposed: Plan) -> pd.DataFrame:
    """Component by component: the current plan beside the reviewed one."""
    rows = []
    for column in PLAN:
        now = getattr(current, column.name) if current is not None else None
        new = getattr(proposed, column.name)
        rows.append({"": column.label, "current plan": "" if now is None else str(now),
                     "reviewed plan": str(new), "change": "" if now == new else "changed"})
    return pd.DataFrame(rows)


def visit_from_form(day: dt.date, kind: str, pain: int | None, discomfort: int | None, massage: str,
                    training: bool, exercise_days: int | None, adverse: bool, note: str,
                    found: dict[str, object]) -> dict:
    """The visit form's widgets as the service's visit fields (unset contraindications left
    out: only what was found at this visit is recorded)."""
    visit = {"visit_date": day, "kind": kind, "pain_score": pain, "discomfort": discomfort,
             "massage_intensity": massage, "training_given": training,
             "exercise_days_last_week": exercise_days, "adverse_event": adverse, "note": note}
    for name, value in found.items():
        if value:
            visit[name] = list(value) if isinstance(value, (list, tuple, set, frozenset)) else True
    return visit
