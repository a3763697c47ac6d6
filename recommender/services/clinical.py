"""Therapists' work: intake, recommend or review, tune, accept (gate re-checked), follow-up.

Every plan is judged against the patient as they are now: the intake with what the
visits since have recorded (latest pain, contraindications found, the discomfort cap;
see :mod:`recommender.services.course`).  So a contraindication found at a visit blocks
massage from then on, on every path, and no path offers or stores massage above the cap.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import numbers

import numpy as np
import pandas as pd
from sqlalchemy import false, select
from sqlalchemy.exc import IntegrityError

from recommender.contract.columns import (
    INTAKE_COLUMNS,
    OUTCOME,
    PLAN,
    PLAN_COLUMNS,
    Kind,
    columns_for,
)
from recommender.contract.csv_io import format_cell, read_episodes, to_csv_bytes
from recommender.contract.validation import RowError, parse_column
from recommender.model.engine import PlanPrediction, Recommendation
from recommender.safety import gate
from recommender.safety.plans import Plan
from recommender.safety.tolerance import DiscomfortCap
from recommender.services import course
from recommender.services.base import (
    OVERRIDE_REASONS,
    PLAN_CHANGE_REASONS,
    AccessControl,
    AlreadyDecided,
    AuditedStore,
    InputRejected,
    check_free_text,
    clinic_today,
    intake_date_errors,
    intake_record,
    record_sha256,
)
from recommender.services.identity import Actor
from recommender.services.permissions import Action
from recommender.services.registry import RegistryService
from recommender.services.visits import ended_episode_ids, visit_records
from recommender.storage.database import NUL
from recommender.storage.schema import (
    Decision,
    Episode,
    FollowUp,
    Patient,
    RecommendationRecord,
)

PLAN_LABELS = {c.name: c.label for c in PLAN}
FIRST_DATA_ROW = 2  # an intake checked as a one-row file: its row under the header
REQUIRED_INTAKE_COLUMNS = frozenset(c.name for c in columns_for(Kind.INTAKE) if c.required)


@dataclasses.dataclass(frozen=True)
class EpisodeState:
    """An episode as it stands: its intake, the visits that count, and the patient now."""

    intake: dict  # typed, as recorded at intake
    visits: list[course.VisitRecord]  # effective, oldest first
    now: dict  # typed intake of the patient as they are now
    cap: DiscomfortCap | None

    def blocked_by(self, plan: Plan) -> list[str]:
        return course.plan_blocked_by(self.now, self.cap, plan)


@dataclasses.dataclass(frozen=True)
class Review:
    """A re-plan at a visit: the recommendation from the patient's current state, and what
    the current plan is now predicted to do, for the comparison."""

    recommendation_id: int
    recommendation: Recommendation
    current_plan: Plan | None
    current_prediction: PlanPrediction | None  # the current plan, from the state now
    state: dict
    cap: DiscomfortCap | None


def digest_of_state(state: EpisodeState) -> str:
    """What a recommendation is made from (the patient now, as stored contract values, and the
    discomfort cap), hashed as the audit trail hashes records."""
    return record_sha256({"now": intake_record(state.now),
                          "cap": None if state.cap is None else state.cap.as_dict()})


def typed_intakes(records: list[dict]) -> list[dict]:
    """Stored intake records back as typed values, through the contract reader in one pass
    (the reader is the one definition of every type; one pass keeps long lists fast)."""
    if not records:
        return []
    frame = pd.DataFrame([{k: ("" if v is None else v) for k, v in r.items()} for r in records])
    return read_episodes(to_csv_bytes(frame), Kind.INTAKE).frame.to_dict("records")


@functools.lru_cache(maxsize=4096)
def _typed_intake(record_json: str) -> dict:
    """One record through the contract reader, remembered by its content: a stored intake
    never changes, and tuning a plan reads it on every slider move (the reader costs ~20 ms)."""
    return typed_intakes([json.loads(record_json)])[0]


class ClinicalService:
    """Therapists' work: intake, recommend or review, tune, accept (gate and discomfort cap
    re-checked), follow-up."""

    def __init__(self, store: AuditedStore, access: AccessControl, models: RegistryService) -> None:
        self.store = store
        self.access = access
        self.models = models

    def validate_intake(self, intake: dict) -> dict:
        """Check one intake against the contract; returns the typed row or raises InputRejected."""
        if all(intake.get(c) in (None, "") for c in INTAKE_COLUMNS):  # as a file it has no row
            columns = columns_for(Kind.INTAKE)
            raise InputRejected("the intake is empty", [
                RowError(FIRST_DATA_ROW, c.name, "", f"a value (required): {c.expected()}")
                for c in columns if c.required and not c.allow_empty])
        # every required column, given or not: a missing one is named, row by column
        frame = pd.DataFrame([{c: intake.get(c) for c in INTAKE_COLUMNS
                               if c in intake or c in REQUIRED_INTAKE_COLUMNS}])
        parsed = read_episodes(to_csv_bytes(frame), Kind.INTAKE)
        if not parsed.report.valid:
            raise InputRejected("the intake has invalid values", parsed.report.errors)
        bad_dates = intake_date_errors(parsed.frame, clinic_today())
        if bad_dates:
            raise InputRejected("the intake has invalid values", bad_dates)
        return parsed.frame.iloc[0].to_dict()

    def save_intake(self, actor: Actor, intake: dict) -> str:
        """Store a new episode (and its patient); returns the episode id."""
        actor = self.access.require(actor, Action.ENTER_INTAKE)
        typed = self.validate_intake(intake)
        record = intake_record(typed)
        with self.store.write() as s:
            episode = self._add_episode(s, record, actor, source="form")
            self.store.log(s, actor, "intake", f"episode:{episode.episode_code}", None, record)
        return record["episode_id"]

    def _add_episode(self, s, record: dict, actor: Actor, source: str,
                     plan: dict | None = None) -> Episode:
        if s.execute(select(Episode.id).where(Episode.episode_code == record["episode_id"])).first():
            raise InputRejected(f"episode {record['episode_id']!r} already exists")
        patient = s.execute(select(Patient).where(Patient.patient_code == record["patient_id"])
                            ).scalar_one_or_none()
        if patient is None:
            patient = Patient(patient_code=record["patient_id"])
            s.add(patient)
            s.flush()
        episode = Episode(episode_code=record["episode_id"], patient_id=patient.id, intake=record,
                          intake_sha256=record_sha256(record), source=source, historical_plan=plan,
                          is_history=plan is not None,
                          created_by=actor.username)
        s.add(episode)
        s.flush()
        return episode

    def intake(self, actor: Actor, episode_code: str) -> dict:
        actor = self.access.require(actor, Action.VIEW_PATIENTS, f"episode:{episode_code}")
        with self.store.read() as s:
            return dict(self._episode(s, episode_code).intake)

    @staticmethod
    def _episode(s, episode_code: str, lock: bool = False) -> Episode:
        """The episode row; with ``lock``, held until the transaction ends (changes that
        depend on the episode's state — plans, visits, the outcome — queue one behind another)."""
        q = select(Episode).where(Episode.episode_code == episode_code)
        episode = s.execute(q.with_for_update() if lock else q).scalar_one_or_none()
        if episode is None:
            raise ValueError(f"no episode {episode_code!r}")
        return episode

    def find_episodes(self, actor: Actor, text: str = "", limit: int = 50) -> pd.DataFrame:
        """Episodes in care (newest first) — or, with ``text``, any episode whose episode or
        patient id contains it (``%`` and ``_`` match themselves).  Imported history is
        listed only when searched for, and is marked as such."""
        actor = self.access.require(actor, Action.VIEW_PATIENTS)
        with self.store.read() as s:
            closed = ended_episode_ids()
            q = select(Episode.episode_code, Patient.patient_code, Episode.created_at,
                       Episode.is_history.label("history"),
                       Episode.id.in_(closed).label("closed")).join(
                Patient, Patient.id == Episode.patient_id)
            if NUL in text:  # no id holds one (storage refuses it): nothing matches
                q = q.where(false())
            elif text:
                like = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                q = q.where(Episode.episode_code.ilike(like, escape="\\")
                            | Patient.patient_code.ilike(like, escape="\\"))
            else:
                q = q.where(Episode.is_history.is_(False), Episode.id.not_in(closed))
            rows = s.execute(q.order_by(Episode.id.desc()).limit(limit)).all()
        frame = pd.DataFrame(rows, columns=["episode_id", "patient_id", "created_at", "history", "closed"])
        frame["status"] = np.where(frame["history"].astype(bool), "imported history",
                                   np.where(frame["closed"].astype(bool), "closed", "in care"))
        return frame.drop(columns=["history", "closed"])

    @staticmethod
    def typed_intake(record: dict) -> dict:
        """A stored intake record back as typed values (booleans, region sets, numbers)."""
        return copy.deepcopy(_typed_intake(json.dumps(record, sort_keys=True, default=str)))

    def episode_state(self, s, episode: Episode) -> EpisodeState:
        """The episode as it stands, read in session ``s``."""
        return self.episode_state_from(self.typed_intake(episode.intake),
                                       course.effective(visit_records(s, episode.id)))

    @staticmethod
    def episode_state_from(intake: dict, visits: list[course.VisitRecord]) -> EpisodeState:
        return EpisodeState(intake, visits, course.current_state(intake, visits), course.cap_for(visits))

    def discomfort_cap(self, actor: Actor, episode_code: str) -> DiscomfortCap | None:
        """The discomfort cap in force for the episode now (None while the rule has not fired),
        so a page offers only the intensities the cap allows."""
        actor = self.access.require(actor, Action.VIEW_PATIENTS, f"episode:{episode_code}")
        with self.store.read() as s:
            return self.episode_state(s, self._episode(s, episode_code)).cap

    def state_digest(self, actor: Actor, episode_code: str) -> str:
        """A fingerprint of what a recommendation for the episode is made from: the patient as
        they are now (pain, contraindications found at visits) and the discomfort cap.  A page
        holding a recommendation made under another digest must not show it as current."""
        actor = self.access.require(actor, Action.VIEW_PATIENTS, f"episode:{episode_code}")
        with self.store.read() as s:
            return digest_of_state(self.episode_state(s, self._episode(s, episode_code)))

    def recommend(self, actor: Actor, episode_code: str) -> tuple[int, Recommendation]:
        """Recommend for a stored episode, from the patient's state now, and record it."""
        actor = self.access.require(actor, Action.RECOMMEND, f"episode:{episode_code}")
        rec_id, rec, _, _ = self._recommend(actor, episode_code, review=False)
        return rec_id, rec

    def review(self, actor: Actor, episode_code: str) -> Review:
        """Re-plan at a visit: recommend from the current pain, the discomfort seen and any
        contraindication found since, capped by the discomfort rule, beside the current plan."""
        actor = self.access.require(actor, Action.RECOMMEND, f"episode:{episode_code}")
        rec_id, rec, state, model = self._recommend(actor, episode_code, review=True)
        with self.store.read() as s:
            active = self._active_decision(s, self._episode(s, episode_code).id)
        current = Plan(**active.accepted_plan) if active else None
        prediction = None
        if current is not None:
            prediction = model.predict_plans(state.now, [current])[0]
            prediction = dataclasses.replace(prediction, blocked_by=tuple(state.blocked_by(current)))
        return Review(rec_id, rec, current, prediction, state.now, state.cap)

    def _recommend(self, actor: Actor, episode_code: str, review: bool):
        """Recommend from the episode's state now and record it: (id, recommendation, the
        state it was made from, the model that made it)."""
        version, model = self.models.current_model()
        with self.store.read() as s:
            episode = self._episode(s, episode_code)
            record = dict(episode.intake)
            if episode.is_history:
                raise InputRejected(f"episode {episode_code!r} is imported history (its plan and "
                                    "outcome are recorded): it cannot be planned again")
            self._refuse_ended(s, episode)
            state = self.episode_state(s, episode)
            if review and not state.visits:
                raise InputRejected(f"episode {episode_code!r} has no visits yet: record a visit, "
                                    "then ask for a review")
        cap = state.cap
        rec = model.recommend(state.now, max_massage_level=None if cap is None else cap.max_level)
        output = recommendation_output(rec)
        output["state"] = {"pain_score": int(state.now["pain_score"]),
                           "pain_tolerance": state.now.get("pain_tolerance"),
                           "visits": len(state.visits)}
        if cap is not None:
            output["discomfort_cap"] = cap.as_dict()
        output["state_digest"] = digest_of_state(state)  # an accept checks the patient is unchanged
        with self.store.write() as s:
            episode = self._episode(s, episode_code)
            row = RecommendationRecord(episode_id=episode.id, intake_sha256=record_sha256(record),
                                       model_version=version.version,
                                       ruleset_version=rec.ruleset_version, output=output,
                                       created_by=actor.username,
                                       visit_id=state.visits[-1].id if review else None)
            s.add(row)
            s.flush()
            self.store.log(s, actor, "review" if review else "recommend", f"episode:{episode_code}",
                           None,
                           {"recommendation_id": row.id, "plan": output["ranked"][0]["plan"],
                            "model_version": version.version, "ruleset_version": rec.ruleset_version,
                            "gate_rule_ids": list(rec.gate.rule_ids),
                            "discomfort_cap": None if cap is None else cap.max_intensity,
                            "state": output["state"]})
            return row.id, rec, state, model

    def tune(self, actor: Actor, episode_code: str, plan: Plan, audit: bool = True):
        """Predicted outcome of a plan the therapist is adjusting, for the patient now
        (plans the gate or the discomfort cap forbid say why in ``blocked_by``)."""
        actor = self.access.require(actor, Action.TUNE, f"episode:{episode_code}")
        plan = contract_plan(plan)
        _, model = self.models.current_model()
        with self.store.read() as s:
            state = self.episode_state(s, self._episode(s, episode_code))
        prediction = model.predict_plans(state.now, [plan])[0]
        prediction = dataclasses.replace(prediction, blocked_by=tuple(state.blocked_by(plan)))
        if audit:
            with self.store.write() as s:
                self.store.log(s, actor, "tune", f"episode:{episode_code}", None,
                          {"plan": plan.as_dict(), "predicted_reduction":
                           round(prediction.predicted_reduction, 2),
                           "blocked_by": list(prediction.blocked_by)})
        return prediction

    def accept(self, actor: Actor, recommendation_id: int, plan: Plan, reason_code: str | None = None,
               reason_text: str = "", change_reason: str = "", idempotency_key: str | None = None,
               change_code: str | None = None) -> int:
        """Record the plan a therapist accepted for the recommendation's episode; returns the
        decision id.

        Accepting the episode's current plan again returns its decision (a double click, even
        two concurrent requests, stores one).  A different plan for an episode that already has
        one is a new decision that supersedes the old, and needs a ``change_code`` from
        ``PLAN_CHANGE_REASONS`` (``other`` with a ``change_reason``; a reason given without a
        code is ``other``); both stay in the audit trail.  The gate, on the patient as they
        are now, and the discomfort cap are checked again here: no role or path can store a
        contraindicated plan, or massage above the cap.
        """
        actor = self.access.require(actor, Action.ACCEPT, f"recommendation:{recommendation_id}")
        plan = contract_plan(plan)
        check_free_text(reason_text=reason_text, change_reason=change_reason)
        change_reason = change_reason.strip()
        if change_code is None and change_reason:
            change_code = "other"
        if change_code is not None and change_code not in PLAN_CHANGE_REASONS:
            raise InputRejected(f"unknown reason for changing the plan {change_code!r}: choose one "
                                "of " + ", ".join(PLAN_CHANGE_REASONS))
        if change_code == "other" and not change_reason:
            raise InputRejected("explain the change of plan in the note (reason: other)")
        try:
            return self._accept(actor, recommendation_id, plan, reason_code, reason_text,
                                change_reason, idempotency_key, change_code)
        except AlreadyDecided as exc:  # a concurrent request with the same key stored it first
            with self.store.read() as s:
                return s.execute(select(Decision.id).where(Decision.idempotency_key == exc.key)).scalar_one()
        except gate.GateViolation as exc:  # nothing was stored; the attempt itself is recorded
            with self.store.write() as s:
                self.store.log(s, actor, "accept_refused", f"recommendation:{recommendation_id}", None,
                               {"plan": plan.as_dict()}, reason=str(exc))
            raise

    def current_decision(self, actor: Actor, episode_code: str) -> dict | None:
        """The episode's accepted plan now (the newest decision), or None; ``gate_now`` is the
        gate's decision on the episode as it stands (what a handout or export of the plan must
        respect, not the decision of an older recommendation)."""
        actor = self.access.require(actor, Action.VIEW_PATIENTS, f"episode:{episode_code}")
        with self.store.read() as s:
            episode = self._episode(s, episode_code)
            d = self._active_decision(s, episode.id)
            if d is None:
                return None
            return {"decision_id": d.id, "plan": Plan(**d.accepted_plan), "decided_by": d.decided_by,
                    "decided_at": d.decided_at, "recommendation_id": d.recommendation_id,
                    "supersedes": d.supersedes_id,
                    "gate_now": gate.evaluate(self.episode_state(s, episode).now)}

    @staticmethod
    def _refuse_ended(s, episode: Episode) -> None:
        """An ended episode's outcome is paired with its plan for training: a plan accepted
        after the end would be one the patient never had."""
        if s.execute(select(Episode.id).where(Episode.id == episode.id,
                                              Episode.id.in_(ended_episode_ids()))).first():
            raise InputRejected(f"episode {episode.episode_code!r} has ended (follow-up or "
                                "end-of-programme visit recorded): it cannot be planned again")

    @staticmethod
    def _active_decision(s, episode_id: int) -> Decision | None:
        return s.execute(select(Decision).where(Decision.episode_id == episode_id)
                         .order_by(Decision.id.desc()).limit(1)).scalar_one_or_none()

    def _accept(self, actor: Actor, recommendation_id: int, plan: Plan, reason_code: str | None,
                reason_text: str, change_reason: str, key: str | None,
                change_code: str | None) -> int:
        if key is not None:  # a caller's own key: a repeat returns what the first stored
            with self.store.read() as s:
                existing = s.execute(select(Decision.id).where(Decision.idempotency_key == key)).scalar()
                if existing is not None:
                    return existing
        with self.store.write() as s:
            rec = s.get(RecommendationRecord, recommendation_id)
            if rec is None:
                raise InputRejected(f"no recommendation {recommendation_id}")
            # lock the episode row, so two different plans cannot both become "the first"
            episode = s.execute(select(Episode).where(Episode.id == rec.episode_id).with_for_update()
                                ).scalar_one()
            self._refuse_ended(s, episode)
            state = self.episode_state(s, episode)
            decision_gate = gate.assert_allowed(state.now, plan)
            if state.cap is not None and not state.cap.permits(plan):
                raise gate.GateViolation(f"plan '{plan.describe()}' is above the discomfort cap: "
                                         f"{state.cap.rule_id}: {state.cap.message}")
            accepted = plan.as_dict()
            active = self._active_decision(s, episode.id)
            if active is not None and active.accepted_plan == accepted:
                return active.id
            made_from = rec.output.get("state_digest")  # absent on recommendations made before it
            if made_from is not None and made_from != digest_of_state(state):
                raise InputRejected(
                    f"recommendation {rec.id} was made before the patient's record changed (a "
                    "visit, a contraindication found, the discomfort rule): recommend again and "
                    "accept from the new recommendation")
            if active is not None and change_code is None:
                raise InputRejected(
                    f"episode {episode.episode_code!r} already has an accepted plan (decision "
                    f"{active.id}: {Plan(**active.accepted_plan).describe()}): changing it is a new "
                    "decision and needs a reason: " + ", ".join(PLAN_CHANGE_REASONS.values()))
            # one decision per episode state: a concurrent duplicate collides on this key
            key = key or f"episode{episode.id}:after{active.id if active else 0}"
            recommended = rec.output["ranked"][0]["plan"]
            diff = {k: [recommended[k], accepted[k]] for k in PLAN_COLUMNS if recommended[k] != accepted[k]}
            if diff and reason_code not in OVERRIDE_REASONS:
                raise InputRejected(
                    "the accepted plan differs from the recommendation in "
                    + ", ".join(PLAN_LABELS[k].lower() for k in diff) + ": choose a reason ("
                    + ", ".join(OVERRIDE_REASONS.values()) + ")")
            if reason_code == "clinical_judgement" and diff and not reason_text.strip():
                raise InputRejected("explain the clinical judgement in the note")
            decision = Decision(episode_id=episode.id, recommendation_id=rec.id, accepted_plan=accepted,
                                differences=diff, reason_code=reason_code if diff else None,
                                reason_text=reason_text.strip(),
                                ruleset_version=decision_gate.ruleset_version,
                                idempotency_key=key, decided_by=actor.username,
                                supersedes_id=active.id if active else None, change_reason=change_reason,
                                change_code=change_code if active else None,
                                prediction=self._prediction(rec, state, plan))
            s.add(decision)
            try:
                s.flush()
            except IntegrityError:  # a concurrent double click won the race
                raise AlreadyDecided(key) from None
            before = {"plan": recommended}
            if active is not None:
                before.update(superseded_decision=active.id, superseded_plan=active.accepted_plan)
            reason = (OVERRIDE_REASONS.get(reason_code or "", "") + (
                f": {reason_text.strip()}" if reason_text.strip() else "")) if diff else ""
            if active is not None:
                why = PLAN_CHANGE_REASONS[change_code] + (f": {change_reason}" if change_reason else "")
                reason = f"changes decision {active.id}: {why}" + (f"; {reason}" if reason else "")
            self.store.log(s, actor, "override" if diff else "accept", f"episode:{episode.episode_code}",
                           before, {"plan": accepted, "decision_id": decision.id, "differences": diff,
                                    # which recommendation, by which model and rules: an audit of
                                    # the decision must not need the oversight export to say so
                                    "recommendation_id": rec.id, "model_version": rec.model_version,
                                    "ruleset_version": decision_gate.ruleset_version},
                           reason=reason)
            return decision.id

    def _prediction(self, rec: RecommendationRecord, state: EpisodeState, plan: Plan) -> dict:
        """What the model said of the accepted plan, from the pain it was planned at: the
        stored ranking when the plan is in it, else the current model's prediction now (a
        plan the therapist tuned); the version that predicted it is kept with it."""
        key = plan.as_dict()
        ranked = next((p for p in rec.output["ranked"] if p["plan"] == key), None)
        version = rec.model_version
        if ranked is None:
            current, model = self.models.current_model()
            p = model.predict_plans(state.now, [plan])[0]
            ranked = {"predicted_reduction": round(p.predicted_reduction, 3),
                      "interval": [round(p.interval_low, 3), round(p.interval_high, 3)]}
            version = current.version
        return {"baseline_pain": float(state.now["pain_score"]),
                "predicted_reduction": ranked["predicted_reduction"],
                "interval": list(ranked["interval"]), "model_version": version}

    def record_followup(self, actor: Actor, episode_code: str, outcome: dict,
                        lost_to_followup: bool = False, correction_reason: str = "") -> None:
        """The episode's follow-up outcome.  A second one corrects the first and needs a
        reason; the audit trail keeps both."""
        actor = self.access.require(actor, Action.RECORD_FOLLOWUP, f"episode:{episode_code}")
        check_free_text(correction_reason=correction_reason)
        columns = {c.name: c for c in OUTCOME}
        unknown = set(outcome) - set(columns)
        if unknown:
            raise InputRejected("unknown outcome field(s): " + ", ".join(sorted(unknown)))
        if lost_to_followup and outcome.get("followup_pain_score") is not None:
            raise InputRejected("a patient lost to follow-up has no follow-up pain score: untick "
                                "'lost to follow-up', or leave the pain score empty")
        if not lost_to_followup and outcome.get("followup_pain_score") is None:
            raise InputRejected("a follow-up pain score is required unless the patient was lost")
        errors = []
        for name, value in outcome.items():
            raw = pd.Series(["" if value is None else str(format_cell(value))])
            _, errs = parse_column(raw, columns[name])
            errors += [dataclasses.replace(e, row=1) for e in errs]
        if errors:
            raise InputRejected("invalid follow-up values", errors)
        clean = {k: format_cell(v) if v is not None else None for k, v in outcome.items()}
        if lost_to_followup:
            clean["followup_pain_score"] = None
        with self.store.write() as s:
            episode = self._episode(s, episode_code, lock=True)
            if episode.is_history:
                raise InputRejected(f"episode {episode_code!r} is imported history: its outcome is "
                                    "the clinic's record and changes only by importing a corrected "
                                    "file (data staff), never from the follow-up form")
            if self._active_decision(s, episode.id) is None:
                raise InputRejected(f"episode {episode_code!r} has no accepted plan: there is no "
                                    "treatment to follow up (a follow-up would close the episode "
                                    "for good)")
            existing = s.execute(select(FollowUp).where(FollowUp.episode_id == episode.id)).scalar_one_or_none()
            before = None if existing is None else {"outcome": existing.outcome,
                                                    "lost": existing.lost_to_followup}
            if existing is not None and not correction_reason.strip():
                raise InputRejected(
                    f"episode {episode_code!r} already has a follow-up (recorded by "
                    f"{existing.recorded_by}): replacing it is a correction and needs a reason")
            if existing is None:
                s.add(FollowUp(episode_id=episode.id, lost_to_followup=lost_to_followup, outcome=clean,
                               recorded_by=actor.username))
            else:
                existing.outcome, existing.lost_to_followup = clean, lost_to_followup
            self.store.log(s, actor, "followup" if existing is None else "followup_corrected",
                           f"episode:{episode_code}", before, {"outcome": clean, "lost": lost_to_followup},
                           reason=correction_reason.strip())


def recommendation_output(rec: Recommendation) -> dict:
    """What is stored of a recommendation: ranked plans, gate reasons, explanation."""
    return {
        "ranked": [{
            "plan": p.plan.as_dict(),
            "predicted_reduction": round(p.predicted_reduction, 3),
            "interval": [round(p.interval_low, 3), round(p.interval_high, 3)],
            "prob_improvement": round(p.prob_improvement, 4),
            "evidence_level": p.evidence_level, "support": p.support,
        } for p in rec.ranked()],
        "gate": [r.as_dict() for r in rec.gate.reasons],
        "explanation": rec.explanation,
        "fallback": rec.fallback,
        "ruleset_version": rec.ruleset_version,
    }


def contract_plan(plan: Plan) -> Plan:
    """The plan rebuilt from its values, so the contract's ranges are checked again whatever
    built it (an object made without ``Plan.__init__`` is checked here); raises InputRejected."""
    values = {c: getattr(plan, c, None) for c in PLAN_COLUMNS}
    values = {c: int(v) if isinstance(v, numbers.Integral) and not isinstance(v, bool) else v
              for c, v in values.items()}  # numpy integers are valid, but not JSON
    try:
        return Plan(**values)
    except (TypeError, ValueError) as exc:
        raise InputRejected(f"not a valid plan: {exc}") from None
