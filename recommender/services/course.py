"""The course of care as pure functions: which visits count, the patient's state now,
progress flags, the predicted path, adherence and what is due.

No database here, so each rule is unit-tested on plain records (and by hypothesis).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from recommender.contract.columns import CONTRAINDICATIONS, TOLERANCES, Type
from recommender.contract.visits import VISIT_CONTRAINDICATIONS
from recommender.safety import gate
from recommender.safety.plans import Plan
from recommender.safety.tolerance import (
    HIGH_DISCOMFORT,
    REQUIRED,
    WINDOW,
    DiscomfortCap,
    MassageSession,
    discomfort_cap,
    lower_tolerance,
)

# The clinically important change in chronic pain (IMMPACT): 2 NRS points or 30 %.
IMPORTANT_CHANGE_POINTS = 2.0
IMPORTANT_CHANGE_SHARE = 0.30
DAYS_PER_WEEK = 7
REQUIRED_CONTRAINDICATIONS = frozenset(c.name for c in CONTRAINDICATIONS)

FLAG_NOT_IMPROVING = "not_improving"
FLAG_HIGH_DISCOMFORT = "high_discomfort"
FLAG_ADVERSE_EVENT = "adverse_event"
FLAG_CONTRAINDICATED = "contraindicated"
FLAG_TEXT = {
    FLAG_CONTRAINDICATED: ("Plan contraindicated: the accepted plan's massage is no longer allowed "
                           "(a finding since it was accepted); no massage until it is reviewed"),
    FLAG_NOT_IMPROVING: "Not improving: less than 2 points or 30 % less pain by mid-programme",
    FLAG_HIGH_DISCOMFORT: (f"Repeated high discomfort: {HIGH_DISCOMFORT}/10 or more at {REQUIRED} "
                           f"of the last {WINDOW} treatment sessions"),
    FLAG_ADVERSE_EVENT: "Adverse event reported",
}


@dataclass(frozen=True)
class VisitRecord:
    """One stored visit record (a correction is a record too)."""

    id: int
    visit_date: dt.date
    kind: str
    pain_score: int
    discomfort: int | None = None
    massage_intensity: str = "none"
    training_given: bool = False
    exercise_days_last_week: int | None = None
    adverse_event: bool = False
    note: str = ""
    contraindications: Mapping[str, object] = field(default_factory=dict)
    supersedes_id: int | None = None
    correction_reason: str = ""
    recorded_by: str = ""
    recorded_at: dt.datetime | None = None

    @property
    def treated(self) -> bool:
        return self.massage_intensity != "none" or self.training_given


def effective(records: Sequence[VisitRecord]) -> list[VisitRecord]:
    """The visits that count: every record no later record corrects, by date then entry."""
    replaced = {r.supersedes_id for r in records if r.supersedes_id is not None}
    return sorted((r for r in records if r.id not in replaced), key=lambda r: (r.visit_date, r.id))


def cap_for(visits: Sequence[VisitRecord]) -> DiscomfortCap | None:
    """The discomfort rule applied to the visits that count (oldest first)."""
    return discomfort_cap([MassageSession(v.massage_intensity, v.discomfort) for v in visits])


def merged_contraindications(intake: Mapping[str, object],
                             visits: Sequence[VisitRecord]) -> dict[str, object]:
    """The intake's contraindication columns with everything found at visits added: a flag
    once true stays true, and region lists only grow (massage stays blocked from then on).
    A region list the intake left unrecorded stays unrecorded: it already blocks all massage
    (the gate fails closed), and a region found later must not lift that."""
    out: dict[str, object] = {}
    for column in VISIT_CONTRAINDICATIONS:
        value = intake.get(column.name)
        unrecorded = column.name in REQUIRED_CONTRAINDICATIONS and gate.is_missing(value)
        for v in visits:
            found = v.contraindications.get(column.name)
            if found in (None, "", False) or found == frozenset() or found == []:
                continue
            if column.type is Type.REGION_LIST:
                if not unrecorded:
                    value = frozenset(() if gate.is_missing(value) else value) | frozenset(found)
            else:
                value = True
        if column.name in intake or value is not None:
            out[column.name] = value
    return out


def current_state(intake: Mapping[str, object], visits: Sequence[VisitRecord]) -> dict[str, object]:
    """The intake as the patient is now: the latest pain score, the contraindications found
    since, and a tolerance one step lower while the discomfort rule holds."""
    state = dict(intake)
    state.update(merged_contraindications(intake, visits))
    if visits:
        state["pain_score"] = visits[-1].pain_score
    if cap_for(visits) is not None and state.get("pain_tolerance") in TOLERANCES:
        state["pain_tolerance"] = lower_tolerance(str(state["pain_tolerance"]), TOLERANCES)
    return state


def plan_blocked_by(state: Mapping[str, object], cap: DiscomfortCap | None, plan: Plan) -> list[str]:
    """Rule ids that forbid ``plan`` now: the gate on the current state, and the cap."""
    ids = [r.rule_id for r in gate.evaluate(state).forbidding_reasons(plan)]
    if cap is not None and not cap.permits(plan):
        ids.append(cap.rule_id)
    return ids


def improved(baseline: float, now: float) -> bool:
    """A clinically important improvement: at least 2 points, or at least 30 %."""
    drop = baseline - now
    return drop >= IMPORTANT_CHANGE_POINTS or (baseline > 0 and drop / baseline >= IMPORTANT_CHANGE_SHARE)


def midpoint(start: dt.date, weeks: int) -> dt.date:
    return start + dt.timedelta(days=weeks * DAYS_PER_WEEK / 2)


def flags(baseline_pain: float, start: dt.date | None, weeks: int | None,
          visits: Sequence[VisitRecord], plan: Plan | None = None,
          decision: gate.GateDecision | None = None) -> list[str]:
    """Progress flags for the visits that count (oldest first), the accepted plan first of
    all when the gate's decision now forbids it."""
    out = []
    if plan is not None and decision is not None and decision.forbidding_reasons(plan):
        out.append(FLAG_CONTRAINDICATED)
    if visits and start is not None and weeks:
        last = visits[-1]
        if last.visit_date >= midpoint(start, weeks) and not improved(baseline_pain, last.pain_score):
            out.append(FLAG_NOT_IMPROVING)
    treated = [v for v in visits if v.treated and v.discomfort is not None][-WINDOW:]
    if sum(v.discomfort >= HIGH_DISCOMFORT for v in treated) >= REQUIRED:
        out.append(FLAG_HIGH_DISCOMFORT)
    if any(v.adverse_event for v in visits):
        out.append(FLAG_ADVERSE_EVENT)
    return out


def adherence(plan: Plan | None, visits: Sequence[VisitRecord]) -> float | None:
    """Share of planned own-exercise days done, over the visits that report them (capped at 1);
    None when the plan has no own exercise or nothing was reported."""
    reported = [v.exercise_days_last_week for v in visits if v.exercise_days_last_week is not None]
    if plan is None or not plan.exercise_days_per_week or not reported:
        return None
    return min(1.0, sum(reported) / (plan.exercise_days_per_week * len(reported)))


def visit_outcome(plan: Plan, visits: Sequence[VisitRecord]) -> dict[str, object]:
    """Contract outcome columns from an ended course of visits: the pain at the last
    end-of-programme visit, any adverse event, and own-exercise adherence."""
    end = [v for v in visits if v.kind == "end_of_programme"][-1]
    share = adherence(plan, visits)
    return {"followup_pain_score": end.pain_score,
            "adverse_event": any(v.adverse_event for v in visits),
            "adherence": None if share is None else round(share, 3)}


def visit_interval_days(plan: Plan) -> int:
    """Days between supervised visits the plan implies (weekly when it has none)."""
    per_week = plan.massage_sessions_per_week + plan.muscle_training_sessions_per_week
    return max(1, DAYS_PER_WEEK // max(1, per_week))


@dataclass(frozen=True)
class PathSegment:
    """The predicted pain path of one accepted plan: from the pain it was planned at,
    straight to the predicted end-of-programme interval (the model predicts the end only)."""

    start: dt.date
    end: dt.date
    baseline: float
    reduction: float
    low: float  # interval of the reduction
    high: float

    def at(self, day: dt.date) -> tuple[float, float, float]:
        """Expected pain and its interval (low pain, high pain) on ``day``."""
        span = max(1, (self.end - self.start).days)
        f = min(1.0, max(0.0, (day - self.start).days / span))
        return (self.baseline - f * self.reduction, self.baseline - f * self.high,
                self.baseline - f * self.low)


@dataclass(frozen=True)
class Due:
    """What a therapist owes an episode today."""

    plan_needed: bool = False
    visit_due: dt.date | None = None
    review_reasons: tuple[str, ...] = ()
    end_due: bool = False

    @property
    def review_due(self) -> bool:
        return bool(self.review_reasons)


def due(today: dt.date, plan: Plan | None, start: dt.date | None, state: Mapping[str, object],
        visits: Sequence[VisitRecord], decision: gate.GateDecision | None = None) -> Due:
    """Visits, reviews and the end of the programme that are due for one open episode.

    ``decision``: the gate's decision on ``state`` when the caller already has it (the day
    list evaluates it once per episode for flags and what is due)."""
    if plan is None or start is None:
        return Due(plan_needed=True)
    last = visits[-1].visit_date if visits else start
    next_visit = last + dt.timedelta(days=visit_interval_days(plan))
    reasons = []
    cap = cap_for(visits)
    if cap is not None and not cap.permits(plan):
        reasons.append(cap.message)
    blocked = (decision if decision is not None else gate.evaluate(state)).forbidding_reasons(plan)
    if blocked:
        reasons.append("The accepted plan is now contraindicated: " + blocked[0].message)
    mid = midpoint(start, plan.programme_weeks)
    if today >= mid and not any(v.kind == "review" and v.visit_date >= mid for v in visits):
        reasons.append("Mid-programme review")
    end = start + dt.timedelta(weeks=plan.programme_weeks)
    return Due(visit_due=next_visit if next_visit <= today else None, review_reasons=tuple(reasons),
               end_due=today >= end)
