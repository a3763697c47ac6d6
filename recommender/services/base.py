"""What every service shares: the audited store, the permission check, and the errors they raise."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from recommender.contract.columns import INTAKE_COLUMNS
from recommender.contract.csv_io import format_cell
from recommender.contract.validation import RowError
from recommender.services.identity import SYSTEM, Actor
from recommender.services.permissions import Action, PermissionDenied, allowed
from recommender.storage.audit import AuditTrail, canonical_json
from recommender.storage.database import Database

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


def record_sha256(obj: object) -> str:
    """Hash of a JSON record as the audit trail serialises it."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def intake_record(row: dict) -> dict:
    """A typed intake row as JSON-safe contract values (the form they are stored in)."""
    out = {}
    for c in INTAKE_COLUMNS:
        if c in row:
            value = format_cell(row[c])
            out[c] = value if value != "" else None
    return out


class AuditedStore:
    """The database and the audit trail together.

    Every change is made in one write transaction that also carries its audit
    events, so a record and its audit entry exist together or not at all; the
    chain head is published outside the database only after the commit.
    """

    def __init__(self, db: Database, audit: AuditTrail) -> None:
        self.db = db
        self.audit = audit

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self.db.write() as session:
            yield session
        head = session.info.get("audit_head")
        if head is not None:
            self.audit.publish_head(*head)

    def read(self):
        return self.db.read()

    def log(self, session: Session, actor: Actor, action: str, target: str = "", before=None,
            after=None, reason: str = "") -> None:
        self.audit.append(session, actor.username, actor.role, action, target, before, after, reason)


class AccessControl:
    """The permission check every action starts with; a denial is itself audited."""

    def __init__(self, store: AuditedStore) -> None:
        self.store = store

    def require(self, actor: Actor, action: Action, target: str = "") -> None:
        """Raise PermissionDenied (and audit the attempt) unless the role allows ``action``."""
        if actor.role == SYSTEM.role or allowed(actor.role, action):
            return
        with self.store.write() as s:
            self.store.log(s, actor, "denied", target, after={"action": action.value},
                           reason=f"role {actor.role} may not {action.value}")
        raise PermissionDenied(f"a {actor.role.replace('_', ' ')} may not {action.value.replace('_', ' ')}")


class AlreadyDecided(RuntimeError):
    """A concurrent request with the same idempotency key stored its decision first."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key
