"""The course of care: visits (append-only, corrected by superseding records), each
patient's progress, the therapist's day, and the visits export.

Reviews (re-planning at a visit) are recommendations, so they live in
:class:`~recommender.services.clinical.ClinicalService`; this service records what
happened and shows where each patient stands.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import select

from recommender.contract.atomic import atomic_write_bytes
from recommender.contract.columns import Type
from recommender.contract.csv_io import format_cell, to_csv_bytes
from recommender.contract.validation import RowError, parse_column
from recommender.contract.visits import (
    VISIT_CONTRAINDICATIONS,
    VISIT_EXPORT_COLUMNS,
    VISIT_INPUT_COLUMNS,
)
from recommender.outputs.fhir import PainScore
from recommender.safety import gate
from recommender.safety.plans import Plan
from recommender.safety.tolerance import DiscomfortCap
from recommender.services import course
from recommender.services.base import (
    PLAN_CHANGE_REASONS,
    AccessControl,
    AuditedStore,
    InputRejected,
    clinic_day,
    clinic_today,
    free_text_errors,
)
from recommender.services.clinical import ClinicalService, typed_intakes
from recommender.services.identity import Actor
from recommender.services.permissions import Action
from recommender.services.visits import ended_episode_ids, records_by_episode, visit_record, visit_records
from recommender.storage.schema import (
    Decision,
    Episode,
    FollowUp,
    Patient,
    RecommendationRecord,
    Visit,
)

FORM_ROW = 1  # a form is one row: errors name row 1
KEPT = "kept: a contraindication found at a visit blocks massage from then on"


@dataclasses.dataclass(frozen=True)
class PlanChange:
    """One accepted plan in an episode's history."""

    decision_id: int
    plan: Plan
    decided_by: str
    decided_at: dt.datetime
    reason: str  # why it replaced the one before ("" for the first)
    review: bool  # accepted from a review at a visit
    prediction: dict | None


@dataclasses.dataclass(frozen=True)
class Progress:
    """Where one patient stands: what the progress view shows."""

    episode_id: str
    patient_id: str
    baseline_pain: float
    start: dt.date | None
    plan: Plan | None
    visits: list[course.VisitRecord]  # effective, oldest first
    records: list[course.VisitRecord]  # every record, corrections included
    flags: list[str]
    adherence: float | None
    plans: list[PlanChange]
    path: list[course.PathSegment]
    cap: DiscomfortCap | None
    due: course.Due
    ended: bool
    intake_day: dt.date  # the intake date, or the day the episode was entered
    gate_now: gate.GateDecision  # the gate on the patient as they are now
    followup: PainScore | None = None  # the follow-up's pain score, once recorded

    def pain_scores(self) -> list[PainScore]:
        """Every pain score that counts, for the FHIR export: intake, each visit, follow-up."""
        return [PainScore(self.intake_day, int(self.baseline_pain), "intake")] + [
            PainScore(v.visit_date, v.pain_score, f"visit:{v.id}") for v in self.visits] + (
            [self.followup] if self.followup else [])

    @property
    def pain_now(self) -> float:
        """The latest pain score: the follow-up's, else the last visit's, else the intake's."""
        if self.followup is not None:
            return float(self.followup.score)
        return float(self.visits[-1].pain_score) if self.visits else self.baseline_pain

    def chart_frame(self) -> pd.DataFrame:
        """Observed pain by visit date beside the predicted path (expected, low, high)."""
        days = sorted({v.visit_date for v in self.visits}
                      | {d for seg in self.path for d in (seg.start, seg.end)}
                      | ({self.followup.day} if self.followup else set()))
        rows = []
        for day in days:
            segment = next((seg for seg in reversed(self.path) if seg.start <= day), None)
            expected = segment.at(day) if segment else (np.nan, np.nan, np.nan)
            observed = [v.pain_score for v in self.visits if v.visit_date == day] + (
                [self.followup.score] if self.followup and self.followup.day == day else [])
            rows.append({"date": day, "observed pain": observed[-1] if observed else np.nan,
                         "expected pain": expected[0], "likely best": expected[1],
                         "likely worst": expected[2]})
        return pd.DataFrame(rows)


class CareService:
    """Visits, progress and the therapist's day for episodes in care."""

    def __init__(self, store: AuditedStore, access: AccessControl, clinical: ClinicalService) -> None:
        self.store = store
        self.access = access
        self.clinical = clinical

    # ------------------------------------------------------------------ recording

    @staticmethod
    def validate_visit(visit: dict) -> dict:
        """Check a visit's fields against the visit record; the typed values, or
        InputRejected naming each bad column and value."""
        unknown = set(visit) - set(VISIT_INPUT_COLUMNS)
        if unknown:
            raise InputRejected("unknown visit field(s): " + ", ".join(sorted(unknown)))
        # free text first: a lone surrogate cannot even be parsed
        errors = free_text_errors(**{name: visit.get(name) for name, column in VISIT_INPUT_COLUMNS.items()
                                     if column.type is Type.STRING})
        if errors:
            raise InputRejected("invalid visit values", errors)
        typed = {}
        for name, column in VISIT_INPUT_COLUMNS.items():
            value = visit.get(name)
            if isinstance(value, (list, tuple)):
                value = frozenset(value)
            raw = pd.Series(["" if value is None else str(format_cell(value))], index=[FORM_ROW])
            parsed, errs = parse_column(raw, column)
            errors += errs
            typed[name] = parsed.iloc[0]
        if not errors:
            treated = typed["massage_intensity"] != "none" or bool(typed["training_given"])
            if treated and pd.isna(typed["discomfort"]):
                errors.append(RowError(FORM_ROW, "discomfort", "",
                                       "the discomfort during treatment (0–10), since treatment was given"))
        if errors:
            raise InputRejected("invalid visit values", errors)
        return typed

    def _row(self, typed: dict) -> dict:
        def number(name):
            value = typed[name]
            return None if value is None or pd.isna(value) else int(value)

        found = {}
        for column in VISIT_CONTRAINDICATIONS:
            value = typed[column.name]
            if column.type is Type.REGION_LIST and value:
                found[column.name] = sorted(value)
            elif column.type is Type.BOOLEAN and value is True:
                found[column.name] = True
        return {"visit_date": typed["visit_date"], "kind": typed["kind"],
                "pain_score": number("pain_score"), "discomfort": number("discomfort"),
                "massage_intensity": typed["massage_intensity"],
                "training_given": bool(typed["training_given"]),
                "exercise_days": number("exercise_days_last_week"),
                "adverse_event": bool(typed["adverse_event"]),
                "note": "" if pd.isna(typed["note"]) else str(typed["note"]),
                "contraindications": found}

    def record_visit(self, actor: Actor, episode_code: str, visit: dict) -> int:
        """Record a session, review or end-of-programme visit; returns its id."""
        actor = self.access.require(actor, Action.RECORD_VISIT, f"episode:{episode_code}")
        row = self._row(self.validate_visit(visit))
        with self.store.write() as s:
            episode = self._open_episode(s, episode_code)
            self._check_against_episode(s, episode, row, replacing=None)
            stored = Visit(episode_id=episode.id, recorded_by=actor.username, **row)
            s.add(stored)
            s.flush()
            self.store.log(s, actor, "visit", f"episode:{episode_code}", None,
                           {"visit_id": stored.id, **_audit_row(row)})
            return stored.id

    def correct_visit(self, actor: Actor, visit_id: int, visit: dict, reason: str) -> int:
        """Correct a visit: a new record that supersedes it (who and why are kept; the old
        record stays, in the database and the audit trail).  Returns the new record's id."""
        actor = self.access.require(actor, Action.RECORD_VISIT, f"visit:{visit_id}")
        if not reason.strip():
            raise InputRejected("a correction needs a reason")
        bad_reason = free_text_errors(correction_reason=reason)
        if bad_reason:
            raise InputRejected("invalid correction reason", bad_reason)
        row = self._row(self.validate_visit(visit))
        with self.store.write() as s:
            old = s.execute(select(Visit).where(Visit.id == visit_id)).scalar_one_or_none()
            if old is None:
                raise InputRejected(f"no visit {visit_id}")
            # lock the episode, so two concurrent corrections of one visit cannot both pass
            episode = s.execute(select(Episode).where(Episode.id == old.episode_id)
                                .with_for_update()).scalar_one()
            newer = s.execute(select(Visit.id).where(Visit.supersedes_id == visit_id)).scalar()
            if newer is not None:
                raise InputRejected(f"visit {visit_id} was already corrected by visit {newer}: "
                                    "correct that one")
            dropped = _dropped_findings(old.contraindications, row["contraindications"])
            if dropped:
                raise InputRejected("invalid visit values", dropped)
            if old.contraindications and row["visit_date"] > old.visit_date:
                # massage is judged on the findings known by its date: a finding moved later
                # would open days on which massage could then be recorded
                raise InputRejected("invalid visit values", [RowError(
                    FORM_ROW, "visit_date", row["visit_date"].isoformat(),
                    f"a date no later than {old.visit_date}: this visit recorded a "
                    "contraindication, and a finding's date cannot move later")])
            self._check_against_episode(s, episode, row, replacing=visit_id)
            stored = Visit(episode_id=old.episode_id, recorded_by=actor.username,
                           supersedes_id=visit_id, correction_reason=reason.strip(), **row)
            s.add(stored)
            s.flush()
            self.store.log(s, actor, "visit_corrected", f"episode:{episode.episode_code}",
                           {"visit_id": visit_id, **_audit_row(visit_record(old).__dict__)},
                           {"visit_id": stored.id, **_audit_row(row)}, reason=reason.strip())
            return stored.id

    def _open_episode(self, s, episode_code: str) -> Episode:
        episode = s.execute(select(Episode).where(Episode.episode_code == episode_code)
                            .with_for_update()).scalar_one_or_none()
        if episode is None:
            raise InputRejected(f"no episode {episode_code!r}")
        if episode.is_history:
            raise InputRejected(f"episode {episode_code!r} is imported history: it has no visits")
        if s.execute(select(FollowUp.id).where(FollowUp.episode_id == episode.id)).first():
            raise InputRejected(f"episode {episode_code!r} is closed (its follow-up is recorded): "
                                "correct an existing visit instead")
        if any(v.kind == "end_of_programme"
               for v in course.effective(visit_records(s, episode.id))):
            raise InputRejected(f"episode {episode_code!r} has ended (end-of-programme visit "
                                "recorded): correct that visit to continue")
        return episode

    def _check_against_episode(self, s, episode: Episode, row: dict, replacing: int | None) -> None:
        """A visit follows an accepted plan, is not in the future nor before the intake (or, for an
        intake without a date, the day the episode was entered), and
        records no massage that the gate forbids for the patient at that visit: on the findings
        of the intake and of the visits up to its date (a finding recorded later does not make
        an earlier, lawful massage a record that can no longer be corrected)."""
        if self.clinical._active_decision(s, episode.id) is None:
            raise InputRejected(f"episode {episode.episode_code!r} has no accepted plan yet: "
                                "accept a plan before recording visits")
        day = row["visit_date"]
        if day > clinic_today():
            raise InputRejected("invalid visit values", [RowError(
                FORM_ROW, "visit_date", day.isoformat(), "a date not in the future")])
        intake = self.clinical.typed_intake(episode.intake)
        start = first_day(intake, clinic_day(episode.created_at))
        if day < start:
            raise InputRejected("invalid visit values", [RowError(
                FORM_ROW, "visit_date", day.isoformat(), f"a date on or after the intake ({start})")])
        if row["massage_intensity"] != "none":
            others = [v for v in course.effective(visit_records(s, episode.id))
                      if v.id != replacing and v.visit_date <= day]
            this = course.VisitRecord(id=0, visit_date=day, kind=row["kind"], pain_score=row["pain_score"],
                                      contraindications=row["contraindications"])
            state = course.current_state(intake, [*others, this])
            reasons = gate.evaluate(state).forbidding_reasons(
                Plan(1, row["massage_intensity"], 0, 0, 30, 4))
            if reasons:
                raise InputRejected("invalid visit values", [RowError(
                    FORM_ROW, "massage_intensity", row["massage_intensity"],
                    "none: massage is contraindicated (" + "; ".join(
                        f"{r.rule_id}: {r.message}" for r in reasons) + ")")])

    # ------------------------------------------------------------------ reading

    def progress(self, actor: Actor, episode_code: str) -> Progress:
        """Everything the progress view shows for one episode."""
        actor = self.access.require(actor, Action.VIEW_PATIENTS, f"episode:{episode_code}")
        with self.store.read() as s:
            episode = self.clinical._episode(s, episode_code)
            patient = s.get(Patient, episode.patient_id).patient_code
            state = self.clinical.episode_state(s, episode)
            records = visit_records(s, episode.id)
            decisions = list(s.execute(select(Decision).where(Decision.episode_id == episode.id)
                                       .order_by(Decision.id)).scalars())
            reviews = {r.id for r in s.execute(select(RecommendationRecord).where(
                RecommendationRecord.episode_id == episode.id,
                RecommendationRecord.visit_id.is_not(None))).scalars()}
            followup = s.execute(select(FollowUp).where(FollowUp.episode_id == episode.id)).scalar()
            entered = clinic_day(episode.created_at)
        score = None if followup is None else (followup.outcome or {}).get("followup_pain_score")
        final = (None if followup is None or followup.lost_to_followup or score in (None, "")
                 else PainScore(clinic_day(followup.recorded_at), score, f"followup:{followup.id}"))
        return self._progress(episode_code, patient, state, records, decisions, reviews,
                              followup is not None, entered, final)

    def _progress(self, episode_code, patient, state, records, decisions, reviews, ended,
                  entered: dt.date, followup: PainScore | None = None) -> Progress:
        visits = state.visits
        baseline = float(state.intake["pain_score"])
        plans = [PlanChange(d.id, Plan(**d.accepted_plan), d.decided_by, d.decided_at,
                            _change_text(d), d.recommendation_id in reviews, d.prediction)
                 for d in decisions]
        start = _start(plans, visits)
        plan = plans[-1].plan if plans else None
        path = _path(plans, start)
        gate_now = gate.evaluate(state.now)
        ended = ended or any(v.kind == "end_of_programme" for v in visits)
        return Progress(
            episode_id=episode_code, patient_id=patient, baseline_pain=baseline, start=start,
            plan=plan, visits=visits, records=records,
            flags=course.flags(baseline, start, plan.programme_weeks if plan else None, visits,
                               plan, gate_now),
            adherence=course.adherence(plan, visits), plans=plans, path=path, cap=state.cap,
            due=(course.Due() if ended else
                 course.due(clinic_today(), plan, start, state.now, visits, gate_now)),
            ended=ended, gate_now=gate_now, intake_day=first_day(state.intake, entered),
            followup=followup)

    def day_list(self, actor: Actor, everyone: bool = False) -> pd.DataFrame:
        """Open episodes (the actor's own, or all with ``everyone``): flagged patients first,
        then reviews due, then visits due.  An episode is the therapist's when they entered
        it, accepted its plan or recorded a visit."""
        actor = self.access.require(actor, Action.VIEW_PATIENTS)
        with self.store.read() as s:
            q = (select(Episode).where(Episode.is_history.is_(False),
                                       Episode.id.not_in(ended_episode_ids()))
                 .order_by(Episode.id))
            if not everyone:
                mine = (select(Decision.episode_id).where(Decision.decided_by == actor.username)
                        .union(select(Visit.episode_id).where(Visit.recorded_by == actor.username)))
                q = q.where((Episode.created_by == actor.username) | Episode.id.in_(mine))
            episodes = list(s.execute(q).scalars())
            ids = [e.id for e in episodes]
            patients = dict(s.execute(select(Patient.id, Patient.patient_code)).all()) if ids else {}
            decisions: dict[int, list[Decision]] = {}
            for d in s.execute(select(Decision).where(Decision.episode_id.in_(ids)).order_by(Decision.id)
                               ).scalars():
                decisions.setdefault(d.episode_id, []).append(d)
            records = records_by_episode(s, ids)
        rows, today = [], clinic_today()
        for e, intake in zip(episodes, typed_intakes([e.intake for e in episodes])):
            visits = course.effective(records.get(e.id, []))
            state = self.clinical.episode_state_from(intake, visits)
            plans = [PlanChange(d.id, Plan(**d.accepted_plan), d.decided_by, d.decided_at, "",
                                False, d.prediction) for d in decisions.get(e.id, [])]
            start = _start(plans, visits)
            plan = plans[-1].plan if plans else None
            gate_now = gate.evaluate(state.now)
            flags = course.flags(float(intake["pain_score"]), start,
                                 plan.programme_weeks if plan else None, visits, plan, gate_now)
            due = course.due(today, plan, start, state.now, visits, gate_now)
            rows.append({
                "episode_id": e.episode_code, "patient_id": patients.get(e.patient_id, ""),
                "flags": "; ".join(course.FLAG_TEXT[f].split(":")[0] for f in flags),
                "due": _due_text(due), "last_visit": visits[-1].visit_date if visits else None,
                "visits": len(visits), "pain_now": visits[-1].pain_score if visits else intake["pain_score"],
                "_order": (0 if flags else 1 if due.review_due or due.plan_needed else
                           2 if due.visit_due or due.end_due else 3),
            })
        frame = pd.DataFrame(rows, columns=["episode_id", "patient_id", "flags", "due", "last_visit",
                                            "visits", "pain_now", "_order"])
        return frame.sort_values(["_order", "episode_id"], kind="stable").drop(columns="_order"
                                                                               ).reset_index(drop=True)

    # ------------------------------------------------------------------ export

    def visits_frame(self) -> pd.DataFrame:
        """Every visit record in the visits file format (docs/visits-format.md), oldest first."""
        with self.store.read() as s:
            rows = s.execute(select(Visit, Episode.episode_code, Patient.patient_code)
                             .join(Episode, Episode.id == Visit.episode_id)
                             .join(Patient, Patient.id == Episode.patient_id)
                             .order_by(Visit.id)).all()
        replaced = {v.supersedes_id for v, _, _ in rows if v.supersedes_id is not None}
        out = []
        for v, episode_code, patient_code in rows:
            row = {"episode_id": episode_code, "patient_id": patient_code, "visit_id": v.id,
                   "visit_date": v.visit_date, "kind": v.kind, "pain_score": v.pain_score,
                   "discomfort": v.discomfort, "massage_intensity": v.massage_intensity,
                   "training_given": v.training_given, "exercise_days_last_week": v.exercise_days,
                   "adverse_event": v.adverse_event, "note": v.note,
                   "supersedes_visit_id": v.supersedes_id, "superseded": v.id in replaced,
                   "correction_reason": v.correction_reason, "recorded_by": v.recorded_by,
                   "recorded_at": _utc_iso(v.recorded_at)}
            for column in VISIT_CONTRAINDICATIONS:
                found = v.contraindications.get(column.name)
                row[column.name] = (frozenset(found) if isinstance(found, list) else found)
            out.append(row)
        names = [c.name for c in VISIT_EXPORT_COLUMNS]
        return pd.DataFrame(out, columns=names)

    def export_visits(self, actor: Actor, path: str | Path) -> int:
        """Write every visit record (formula-safe CSV, all or nothing); returns the row count."""
        actor = self.access.require(actor, Action.EXPORT_VISITS, f"file:{Path(path).name}")
        frame = self.visits_frame()
        data = to_csv_bytes(frame)
        with self.store.write() as s:
            atomic_write_bytes(path, data)
            self.store.log(s, actor, "export_visits", f"file:{Path(path).name}", None,
                           {"rows": len(frame), "sha256": hashlib.sha256(data).hexdigest()})
        return len(frame)


def first_day(intake: dict, entered: dt.date) -> dt.date:
    """The episode's first day: the intake date, or (the contract leaves it optional) the day
    the episode was entered.  No visit is before it."""
    day = intake.get("intake_date")
    return day if isinstance(day, dt.date) else entered


def _dropped_findings(old: dict, new: dict) -> list[RowError]:
    """Contraindications the corrected record found that the correction leaves out: a finding
    once recorded blocks massage from then on, so a correction may not erase it."""
    errors = []
    for name, found in old.items():
        if isinstance(found, list):
            missing = sorted(set(found) - set(new.get(name) or ()))
            if missing:
                errors.append(RowError(FORM_ROW, name, ";".join(missing), KEPT))
        elif found is True and new.get(name) is not True:
            errors.append(RowError(FORM_ROW, name, "true", KEPT))
    return errors


def _audit_row(row: dict) -> dict:
    keep = ("visit_date", "kind", "pain_score", "discomfort", "massage_intensity", "training_given",
            "exercise_days", "exercise_days_last_week", "adverse_event", "note", "contraindications")
    return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in row.items() if k in keep}


def _utc_iso(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="seconds")


def _change_text(d: Decision) -> str:
    if d.supersedes_id is None:
        return ""
    why = PLAN_CHANGE_REASONS.get(d.change_code or "", d.change_code or "")
    return why + (f": {d.change_reason}" if d.change_reason else "")


def _start(plans: list[PlanChange], visits: list[course.VisitRecord]) -> dt.date | None:
    """The programme's first day (the clinic's calendar day, as visits are dated): its first
    accepted plan, or an earlier first visit."""
    days = ([clinic_day(plans[0].decided_at)] if plans else []) + ([visits[0].visit_date] if visits else [])
    return min(days) if plans and days else None


def _path(plans: list[PlanChange], start: dt.date | None) -> list[course.PathSegment]:
    """One predicted segment per accepted plan, from the day it took over."""
    out = []
    for i, change in enumerate(plans):
        if change.prediction is None or start is None:
            continue
        begin = start if i == 0 else max(start, clinic_day(change.decided_at))
        low, high = change.prediction["interval"]
        out.append(course.PathSegment(
            start=begin, end=begin + dt.timedelta(weeks=change.plan.programme_weeks),
            baseline=float(change.prediction["baseline_pain"]),
            reduction=float(change.prediction["predicted_reduction"]), low=float(low), high=float(high)))
    return out


def _due_text(due: course.Due) -> str:
    parts = []
    if due.plan_needed:
        parts.append("plan needed")
    if due.review_due:
        parts.append("review due")
    if due.visit_due is not None:
        parts.append(f"visit due since {due.visit_due.isoformat()}")
    if due.end_due:
        parts.append("end of programme due")
    return "; ".join(parts)

