"""Supervisors' reading: the audit trail (verify, list, export) and decision statistics."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from recommender.services.base import AccessControl, AuditedStore
from recommender.services.clinical import PLAN_LABELS
from recommender.services.identity import Actor
from recommender.services.permissions import Action
from recommender.storage.audit import VerifyResult
from recommender.storage.schema import Decision, Episode, FollowUp, RecommendationRecord


class OversightService:
    """Supervisors' reading: the audit trail (verify, list, export) and decision statistics."""

    def __init__(self, store: AuditedStore, access: AccessControl) -> None:
        self.store = store
        self.access = access

    def verify_audit(self, actor: Actor, record: bool = False) -> VerifyResult:
        """Check the chain without writing; with ``record``, the check is audited afterwards
        (only when the chain verified: a broken trail refuses writes)."""
        actor = self.access.require(actor, Action.VIEW_AUDIT)
        with self.store.read() as s:
            result = self.store.audit.verify(s)
        if record and result.ok:
            with self.store.write() as s:
                self.store.log(s, actor, "verify", "audit", None,
                               {"ok": True, "checked": result.checked})
        return result

    def audit_events(self, actor: Actor) -> pd.DataFrame:
        actor = self.access.require(actor, Action.VIEW_AUDIT)
        with self.store.read() as s:
            return self.store.audit.events_frame(s)

    def export_audit(self, actor: Actor, path: str | Path) -> int:
        actor = self.access.require(actor, Action.EXPORT_AUDIT, f"file:{Path(path).name}")
        with self.store.read() as s:
            n = self.store.audit.export_csv(s, path)
        with self.store.write() as s:
            self.store.log(s, actor, "export", f"file:{Path(path).name}", None, {"audit_events": n})
        return n

    def decisions_frame(self, actor: Actor) -> pd.DataFrame:
        """Decisions with their recommendation, for supervisors' statistics."""
        actor = self.access.require(actor, Action.VIEW_AUDIT)
        with self.store.read() as s:
            rows = s.execute(select(Decision, RecommendationRecord, Episode)
                             .join(RecommendationRecord, RecommendationRecord.id == Decision.recommendation_id)
                             .join(Episode, Episode.id == Decision.episode_id)).all()
            followed = set(s.execute(select(FollowUp.episode_id)).scalars())
        return pd.DataFrame([{
            "decision_id": d.id, "episode_id": e.episode_code, "therapist": d.decided_by,
            "decided_at": d.decided_at, "overridden": bool(d.differences),
            "reason_code": d.reason_code, "reason_text": d.reason_text,
            "differences": json.dumps(d.differences),
            "changed_components": ", ".join(PLAN_LABELS.get(k, k).lower() for k in d.differences),
            "model_version": r.model_version, "supersedes_decision": d.supersedes_id,
            "massage_blocked": any(g["effect"] == "no_massage" for g in r.output.get("gate", [])),
            "followed_up": e.id in followed,
        } for d, r, e in rows])

