"""What every service shares: the audited store, the permission check, and the errors they raise."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from recommender.contract.columns import INTAKE_COLUMNS
from recommender.contract.csv_io import format_cell
from recommender.contract.validation import RowError
from recommender.services.identity import SYSTEM, Actor
from recommender.services.permissions import Action, PermissionDenied, allowed
from recommender.services.sessions import SessionEnded, SessionRegistry
from recommender.settings import get_settings
from recommender.storage.audit import AuditTrail, canonical_json
from recommender.storage.database import Database
from recommender.storage.schema import User

OVERRIDE_REASONS = {
    "patient_preference": "Patient preference",
    "tolerance": "Patient reports discomfort / low tolerance",
    "schedule": "Patient's schedule or transport",
    "clinical_judgement": "Clinical judgement (explain in the note)",
    "comorbidity": "Comorbidity not captured in the intake",
    "equipment": "Equipment or staff availability",
}
# Why an accepted plan was replaced (a review, or any later change of plan).
PLAN_CHANGE_REASONS = {
    "discomfort": "Discomfort during treatment",
    "not_improving": "Not improving as expected",
    "contraindication": "New contraindication",
    "improving": "Improving: step the plan down",
    "adverse_event": "Adverse event",
    "patient_preference": "Patient preference or schedule",
    "other": "Other (explain)",
}
ALIAS = "current"


class InputRejected(ValueError):
    """Input that breaks the contract; ``errors`` name row, column, value and expectation."""

    def __init__(self, message: str, errors: list[RowError] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


EARLIEST_INTAKE_DATE = dt.date(1900, 1, 1)
# Notes and reasons people type.  Unbounded, a 5 MB note was stored and copied into the
# audit trail; control and bidirectional-override characters hid or reordered text in
# exports and the trail (line breaks and tabs are kept).
FREE_TEXT_MAX = 2000
# C0 and C1 controls (line break, carriage return and tab kept: the CSV export escapes a
# cell they start), zero-width space and direction marks (the joiners U+200C/D stay: scripts
# need them), line/paragraph separators, bidi embeddings and isolates, BOM
_UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f"
                          "\u2028-\u202e\u2060-\u2069\ufeff]")


def free_text_errors(**fields: object) -> list[RowError]:
    """One error per note or reason (named by keyword) that is too long, holds a control or
    bidirectional-override character, or is not valid Unicode; its value shown escaped."""
    errors = []
    for name, value in fields.items():
        if not isinstance(value, str) or not value:
            continue
        shown = value[:60].encode("unicode_escape").decode("ascii") + ("…" if len(value) > 60 else "")
        if len(value) > FREE_TEXT_MAX:
            errors.append(RowError(1, name, shown, f"at most {FREE_TEXT_MAX} characters "
                                                   f"(this has {len(value)})"))
        elif _UNPRINTABLE.search(value) or not _is_unicode(value):
            errors.append(RowError(1, name, shown, "text without control characters"))
    return errors


def check_free_text(**fields: object) -> None:
    """Raise InputRejected naming every bad note or reason (see :func:`free_text_errors`)."""
    errors = free_text_errors(**fields)
    if errors:
        raise InputRejected("invalid text: " + ", ".join(e.column for e in errors), errors)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")  # a lone surrogate cannot be stored or written
    except UnicodeEncodeError:
        return False
    return True


def clinic_today() -> dt.date:
    return dt.datetime.now(ZoneInfo(get_settings().clinic_timezone)).date()


def clinic_day(moment: dt.datetime) -> dt.date:
    """The clinic's calendar day of a stored moment (stored in UTC, naive on SQLite)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(ZoneInfo(get_settings().clinic_timezone)).date()


def intake_date_errors(frame, today: dt.date) -> list[RowError]:
    """Intake dates the clinic cannot have seen (after today, or before 1900), one error per
    row.  The contract only asks for an ISO date; a 2099 intake was importable and then no
    visit could ever be recorded for it (a visit may be neither before the intake nor in the
    future).  ``frame``: a parsed contract frame with its ``_row`` numbers."""
    if "intake_date" not in frame:
        return []
    return [RowError(int(row), "intake_date", day.isoformat(),
                     f"a date from {EARLIEST_INTAKE_DATE} to today ({today})")
            for row, day in zip(frame["_row"], frame["intake_date"])
            if isinstance(day, dt.date) and not EARLIEST_INTAKE_DATE <= day <= today]


@dataclasses.dataclass(frozen=True)
class PromotionVerdict:
    passed: bool
    violations: int
    candidate_value: float | None
    candidate_ci: tuple[float, float] | None
    current_value: float | None
    current_ci: tuple[float, float] | None
    message: str
    cohort_size: int = 0  # followed-up episodes the candidate was evaluated on
    # candidate − current on the same episodes, with its 95 % CI (None without a current model)
    difference: float | None = None
    difference_ci: tuple[float, float] | None = None


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
    chain head is published outside the database under the same lock, right
    after the commit.
    """

    def __init__(self, db: Database, audit: AuditTrail) -> None:
        self.db = db
        self.audit = audit

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self.audit.writer_lock():
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


# Actions a read-only credential (``authenticate``, used by `audit verify`) may take.
READ_ONLY_ACTIONS = frozenset({Action.VIEW_AUDIT})


class AccessControl:
    """Who is really acting, and whether their role allows it; denials are audited.

    The caller's :class:`Actor` is only a handle: the account behind its session is
    read again on every call, so a hand-made or stale actor gets nowhere."""

    def __init__(self, store: AuditedStore, sessions: SessionRegistry) -> None:
        self.store = store
        self.sessions = sessions
        self._read_only: dict[str, str] = {}  # token -> username, this process only
        self._job_owners: dict[str, str] = {}  # token -> username, this (worker) process only

    def grant_read_only(self, username: str) -> str:
        """A token for read-only actions that writes nothing (`audit verify` signs in with it)."""
        token = "ro-" + secrets.token_urlsafe(24)
        self._read_only[token] = username
        return token

    def grant_for_job(self, username: str) -> Actor:
        """The worker acts for the user who submitted a job, with the rights the account has
        *now* (re-read on every call, as for a session), even after their browser closed."""
        token = "job-" + secrets.token_urlsafe(24)
        self._job_owners[token] = username
        return Actor(username, "", token)

    def revoke(self, token: str) -> None:
        self._job_owners.pop(token, None)

    def current(self, actor: Actor) -> Actor:
        """The actor as the database says now; raises SessionEnded (audited) otherwise."""
        if actor is SYSTEM:
            return SYSTEM
        token = actor.session_token or ""
        try:
            if token in self._read_only:
                return self._account_actor(token, self._read_only[token])
            if token in self._job_owners:
                return self._account_actor(token, self._job_owners[token])
            return self.sessions.resolve(token)
        except SessionEnded as exc:
            with self.store.write() as s:
                self.store.log(s, Actor(actor.username[:80], "unauthenticated"), "denied",
                               f"user:{actor.username[:80]}", reason=f"no valid session: {exc}")
            raise

    def _account_actor(self, token: str, username: str) -> Actor:
        with self.store.read() as s:
            user = s.execute(select(User).where(User.username == username)).scalar_one_or_none()
        if user is None or not user.active or user.locked:
            raise SessionEnded("the account is disabled or locked")
        return Actor(user.username, user.role, token)

    def require(self, actor: Actor, action: Action, target: str = "") -> Actor:
        """The verified actor, if their current role allows ``action``; else PermissionDenied
        (and the attempt is audited)."""
        current = self.current(actor)
        if current is SYSTEM:
            return current
        read_only = (current.session_token or "") in self._read_only
        if allowed(current.role, action) and (not read_only or action in READ_ONLY_ACTIONS):
            return current
        with self.store.write() as s:
            self.store.log(s, current, "denied", target, after={"action": action.value},
                           reason=f"role {current.role} may not {action.value}")
        role = current.role.replace("_", " ")
        article = "an" if role[:1] in "aeiou" else "a"
        raise PermissionDenied(f"{article} {role} may not {action.value.replace('_', ' ')}")


class AlreadyDecided(RuntimeError):
    """A concurrent request with the same idempotency key stored its decision first."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key
