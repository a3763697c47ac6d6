"""Therapists' work: intake, recommend, tune, accept (gate re-checked), follow-up."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from recommender.contract.columns import (
    INTAKE_COLUMNS,
    OUTCOME,
    PLAN,
    PLAN_COLUMNS,
    Kind,
)
from recommender.contract.csv_io import format_cell, read_episodes, to_csv_bytes
from recommender.contract.validation import parse_column
from recommender.model.engine import Recommendation
from recommender.safety import gate
from recommender.safety.plans import Plan
from recommender.services.base import (
    OVERRIDE_REASONS,
    AccessControl,
    AlreadyDecided,
    AuditedStore,
    InputRejected,
    intake_record,
    record_sha256,
)
from recommender.services.identity import Actor
from recommender.services.permissions import Action
from recommender.services.registry import RegistryService
from recommender.storage.schema import (
    Decision,
    Episode,
    FollowUp,
    Patient,
    RecommendationRecord,
)

PLAN_LABELS = {c.name: c.label for c in PLAN}


class ClinicalService:
    """Therapists' work: intake, recommend, tune, accept (gate re-checked), follow-up."""

    def __init__(self, store: AuditedStore, access: AccessControl, models: RegistryService) -> None:
        self.store = store
        self.access = access
        self.models = models

    def validate_intake(self, intake: dict) -> dict:
        """Check one intake against the contract; returns the typed row or raises InputRejected."""
        frame = pd.DataFrame([{c: intake.get(c) for c in INTAKE_COLUMNS if c in intake}])
        parsed = read_episodes(to_csv_bytes(frame), Kind.INTAKE)
        if not parsed.report.valid:
            raise InputRejected("the intake has invalid values", parsed.report.errors)
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
    def _episode(s, episode_code: str) -> Episode:
        episode = s.execute(select(Episode).where(Episode.episode_code == episode_code)).scalar_one_or_none()
        if episode is None:
            raise ValueError(f"no episode {episode_code!r}")
        return episode

    def find_episodes(self, actor: Actor, text: str = "", limit: int = 50) -> pd.DataFrame:
        """Episodes in care (newest first) — or, with ``text``, any episode whose episode or
        patient id contains it (``%`` and ``_`` match themselves).  Imported history is
        listed only when searched for, and is marked as such."""
        actor = self.access.require(actor, Action.VIEW_PATIENTS)
        with self.store.read() as s:
            closed = select(FollowUp.episode_id)
            q = select(Episode.episode_code, Patient.patient_code, Episode.created_at,
                       Episode.is_history.label("history"),
                       Episode.id.in_(closed).label("closed")).join(
                Patient, Patient.id == Episode.patient_id)
            if text:
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
        frame = pd.DataFrame([{k: ("" if v is None else v) for k, v in record.items()}])
        return read_episodes(to_csv_bytes(frame), Kind.INTAKE).frame.iloc[0].to_dict()

    def recommend(self, actor: Actor, episode_code: str) -> tuple[int, Recommendation]:
        """Recommend for a stored episode and record the recommendation."""
        actor = self.access.require(actor, Action.RECOMMEND, f"episode:{episode_code}")
        version, model = self.models.current_model()
        with self.store.read() as s:
            episode = self._episode(s, episode_code)
            record = dict(episode.intake)
            if episode.is_history:
                raise InputRejected(f"episode {episode_code!r} is imported history (its plan and "
                                    "outcome are recorded): it cannot be planned again")
        rec = model.recommend(self.typed_intake(record))
        output = recommendation_output(rec)
        with self.store.write() as s:
            episode = self._episode(s, episode_code)
            row = RecommendationRecord(episode_id=episode.id, intake_sha256=record_sha256(record),
                                       model_version=version.version,
                                       ruleset_version=rec.ruleset_version, output=output,
                                       created_by=actor.username)
            s.add(row)
            s.flush()
            self.store.log(s, actor, "recommend", f"episode:{episode_code}", None,
                      {"recommendation_id": row.id, "plan": output["ranked"][0]["plan"],
                       "model_version": version.version, "ruleset_version": rec.ruleset_version,
                       "gate_rule_ids": list(rec.gate.rule_ids)})
            return row.id, rec

    def tune(self, actor: Actor, episode_code: str, plan: Plan, audit: bool = True):
        """Predicted outcome of a plan the therapist is adjusting (forbidden plans say why)."""
        actor = self.access.require(actor, Action.TUNE, f"episode:{episode_code}")
        _, model = self.models.current_model()
        with self.store.read() as s:
            record = dict(self._episode(s, episode_code).intake)
        prediction = model.predict_plans(self.typed_intake(record), [plan])[0]
        if audit:
            with self.store.write() as s:
                self.store.log(s, actor, "tune", f"episode:{episode_code}", None,
                          {"plan": plan.as_dict(), "predicted_reduction":
                           round(prediction.predicted_reduction, 2),
                           "blocked_by": list(prediction.blocked_by)})
        return prediction

    def accept(self, actor: Actor, recommendation_id: int, plan: Plan, reason_code: str | None = None,
               reason_text: str = "", change_reason: str = "", idempotency_key: str | None = None) -> int:
        """Record the plan a therapist accepted for the recommendation's episode; returns the
        decision id.

        Accepting the episode's current plan again returns its decision (a double click, even
        two concurrent requests, stores one).  A different plan for an episode that already has
        one is a new decision that supersedes the old, and needs ``change_reason``; both stay
        in the audit trail.  The gate is checked again here: no role or path can store a
        contraindicated plan.
        """
        actor = self.access.require(actor, Action.ACCEPT, f"recommendation:{recommendation_id}")
        try:
            return self._accept(actor, recommendation_id, plan, reason_code, reason_text,
                                change_reason.strip(), idempotency_key)
        except AlreadyDecided as exc:  # a concurrent request with the same key stored it first
            with self.store.read() as s:
                return s.execute(select(Decision.id).where(Decision.idempotency_key == exc.key)).scalar_one()
        except gate.GateViolation as exc:  # nothing was stored; the attempt itself is recorded
            with self.store.write() as s:
                self.store.log(s, actor, "accept_refused", f"recommendation:{recommendation_id}", None,
                               {"plan": plan.as_dict()}, reason=str(exc))
            raise

    def current_decision(self, actor: Actor, episode_code: str) -> dict | None:
        """The episode's accepted plan now (the newest decision), or None."""
        actor = self.access.require(actor, Action.VIEW_PATIENTS, f"episode:{episode_code}")
        with self.store.read() as s:
            episode = self._episode(s, episode_code)
            d = self._active_decision(s, episode.id)
            if d is None:
                return None
            return {"decision_id": d.id, "plan": Plan(**d.accepted_plan), "decided_by": d.decided_by,
                    "decided_at": d.decided_at, "recommendation_id": d.recommendation_id,
                    "supersedes": d.supersedes_id}

    @staticmethod
    def _active_decision(s, episode_id: int) -> Decision | None:
        return s.execute(select(Decision).where(Decision.episode_id == episode_id)
                         .order_by(Decision.id.desc()).limit(1)).scalar_one_or_none()

    def _accept(self, actor: Actor, recommendation_id: int, plan: Plan, reason_code: str | None,
                reason_text: str, change_reason: str, key: str | None) -> int:
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
            decision_gate = gate.assert_allowed(self.typed_intake(episode.intake), plan)
            accepted = plan.as_dict()
            active = self._active_decision(s, episode.id)
            if active is not None and active.accepted_plan == accepted:
                return active.id
            if active is not None and not change_reason:
                raise InputRejected(
                    f"episode {episode.episode_code!r} already has an accepted plan (decision "
                    f"{active.id}: {Plan(**active.accepted_plan).describe()}): changing it is a new "
                    "decision and needs a reason")
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
                                supersedes_id=active.id if active else None, change_reason=change_reason)
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
            if change_reason:
                reason = f"changes decision {active.id}: {change_reason}" + (f"; {reason}" if reason else "")
            self.store.log(s, actor, "override" if diff else "accept", f"episode:{episode.episode_code}",
                           before, {"plan": accepted, "decision_id": decision.id, "differences": diff},
                           reason=reason)
            return decision.id

    def record_followup(self, actor: Actor, episode_code: str, outcome: dict,
                        lost_to_followup: bool = False) -> None:
        actor = self.access.require(actor, Action.RECORD_FOLLOWUP, f"episode:{episode_code}")
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
            episode = self._episode(s, episode_code)
            existing = s.execute(select(FollowUp).where(FollowUp.episode_id == episode.id)).scalar_one_or_none()
            before = None if existing is None else {"outcome": existing.outcome,
                                                    "lost": existing.lost_to_followup}
            if existing is None:
                s.add(FollowUp(episode_id=episode.id, lost_to_followup=lost_to_followup, outcome=clean,
                               recorded_by=actor.username))
            else:
                existing.outcome, existing.lost_to_followup = clean, lost_to_followup
            self.store.log(s, actor, "followup", f"episode:{episode_code}", before,
                      {"outcome": clean, "lost": lost_to_followup})


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
