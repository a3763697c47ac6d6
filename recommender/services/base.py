"""What every part of the service layer shares: the database, the audit trail, the
permission check, and the errors it raises."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from sqlalchemy.orm import Session

from ..accounts import SYSTEM, Actor
from ..audit import AuditTrail, canonical_json
from ..contract import INTAKE_COLUMNS
from ..csv_io import format_cell
from ..db.database import Database
from ..engine import TreatmentRecommender
from ..permissions import Action, PermissionDenied, allowed
from ..settings import model_dir as model_dir_default
from ..validation import RowError

OVERRIDE_REASONS = {
    "patient_preference": "Patient preference",
    "tolerance": "Patient reports discomfort / low tolerance",
    "schedule": "Patient's schedule or transport",
    "clinical_judgement": "Clinical judgement (explain in the note)",
    "comorbidity": "Comorbidity not captured in the intake",
    "equipment": "Equipment or staff availability",
}
ALIAS = "current"


class InputRejected(ValueError):
    """Input that breaks the contract; ``errors`` name row, column, value and expectation."""

    def __init__(self, message: str, errors: list[RowError] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


@dataclasses.dataclass(frozen=True)
class PromotionVerdict:
    passed: bool
    violations: int
    candidate_value: float | None
    candidate_ci: tuple[float, float] | None
    current_value: float | None
    current_ci: tuple[float, float] | None
    message: str


def _sha(obj: object) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def intake_record(row: dict) -> dict:
    """A typed intake row as JSON-safe contract values (the form they are stored in)."""
    out = {}
    for c in INTAKE_COLUMNS:
        if c in row:
            value = format_cell(row[c])
            out[c] = value if value != "" else None
    return out



class ServiceBase:
    """Database, audit trail, model folder, and the permission check every action starts with."""

    def __init__(self, db: Database, audit: AuditTrail | None = None,
                 model_dir: str | Path | None = None) -> None:
        self.db = db
        self.audit = audit or AuditTrail()
        self.model_dir = Path(model_dir) if model_dir else model_dir_default()
        self._model_cache: dict[int, TreatmentRecommender] = {}
        self._evaluation_cache: dict[int, tuple[dict | None, pd.DataFrame]] = {}

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """A write transaction; the audit chain head is published outside the database
        only after it commits."""
        with self.db.write() as session:
            yield session
        head = session.info.get("audit_head")
        if head is not None:
            self.audit.publish_head(*head)

    def _log(self, session, actor: Actor, action: str, target: str = "", before=None, after=None,
             reason: str = "") -> None:
        self.audit.append(session, actor.username, actor.role, action, target, before, after, reason)

    def require(self, actor: Actor, action: Action, target: str = "") -> None:
        """Raise PermissionDenied (and audit the attempt) unless the role allows ``action``."""
        if actor.role == SYSTEM.role or allowed(actor.role, action):
            return
        with self._tx() as s:
            self._log(s, actor, "denied", target, after={"action": action.value},
                      reason=f"role {actor.role} may not {action.value}")
        raise PermissionDenied(f"a {actor.role.replace('_', ' ')} may not {action.value.replace('_', ' ')}")


class _AlreadyDecided(RuntimeError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key
