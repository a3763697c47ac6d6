"""The tamper-evident audit trail: append-only, HMAC-SHA256 hash-chained events.

Each event's hash is ``HMAC(key, canonical(seq, ts, actor, role, action, target,
before, after, reason, prev_hash))``.  The key lives in a file outside the
database (``RECOMMENDER_AUDIT_KEY_FILE``), so someone who can edit the database
cannot forge hashes; the chain head is also written outside the database
(``RECOMMENDER_AUDIT_HEAD_FILE``) after every commit, so deleting the newest
events, or restoring an older copy of the database, is detected too: writes are
then refused (fail closed) until a supervisor has run ``recommender audit verify``
and the incident is resolved.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import hmac
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from recommender.contract.atomic import atomic_write_bytes, create_key_file
from recommender.contract.csv_io import to_csv_bytes
from recommender.settings import env_name, get_settings
from recommender.storage.schema import AuditEvent, AuditHead

GENESIS = "0" * 64
ACTIONS = ("login", "logout", "failed_login", "lockout", "recommend", "tune", "accept", "override",
           "followup", "import", "train", "promote", "rollback", "user_change", "export", "denied",
           "intake", "verify", "head_gap", "accept_refused", "session_end", "models_gc",
           "followup_corrected", "visit", "visit_corrected", "review", "export_visits",
           "evaluate", "job_submit", "job_done", "job_failed")


# Column lengths of audit_events: longer labels are clipped (the full values are in before/after).
ACTOR_MAX, TARGET_MAX = 80, 200


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


class AuditUnavailable(RuntimeError):
    """The audit trail cannot be written, so nothing that must be audited may happen."""


class AuditKeyMissing(AuditUnavailable):
    """The HMAC key file is missing or unreadable."""


class AuditTampered(AuditUnavailable):
    """The chain in the database no longer ends where it must: writes are refused."""

    def __init__(self, seq: int, detail: str) -> None:
        super().__init__(f"audit trail tampered at event {seq} — run `recommender audit verify` "
                         f"({detail}); changes are refused until it is resolved")
        self.seq = seq


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"audit chain OK: {self.checked} event(s) verified"
        return f"audit chain BROKEN at event {self.first_bad_seq}: {self.problem}"


class AuditTrail:
    """Appends and verifies events; owns the key file and the external head file.

    Every write transaction holds an exclusive lock on ``<head file>.lock`` from its
    first audit event until the head is published after the commit, so the head file
    is never behind the database except when a writer died between the two.
    """

    def __init__(self, key_path: str | Path | None = None, head_path: str | Path | None = None) -> None:
        settings = get_settings()
        self.key_path = Path(key_path or settings.resolved_audit_key_file)
        self.head_path = Path(head_path or settings.resolved_audit_head_file)
        self._key: bytes | None = None

    # ------------------------------------------------------------------ key

    def create_key(self) -> bool:
        """Create the key file if there is none (only for a new, empty database); True if made."""
        return create_key_file(self.key_path)

    @property
    def key(self) -> bytes:
        if self._key is None:
            try:
                self._key = bytes.fromhex(self.key_path.read_text().strip())
            except (OSError, ValueError) as exc:
                raise AuditKeyMissing(
                    f"the audit key file {self.key_path} is missing or unreadable "
                    f"({type(exc).__name__}); set {env_name('audit_key_file')} to the key's "
                    "location, or restore it from its backup — a new key is made only by "
                    "`recommender db upgrade` on an empty database") from None
        return self._key

    def _digest(self, fields: list) -> str:
        return hmac.new(self.key, canonical_json(fields).encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def _fields(e: AuditEvent) -> list:
        return [e.seq, e.ts, e.actor, e.role, e.action, e.target, e.before, e.after, e.reason,
                e.prev_hash]

    # ------------------------------------------------------------------ writing

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        """Exclusive across threads and processes of this host: commit and publish as one."""
        self.head_path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.head_path.with_name(self.head_path.name + ".lock")
        with open(lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def append(self, session: Session, actor: str, role: str, action: str, target: str = "",
               before: object = None, after: object = None, reason: str = "") -> AuditEvent:
        """Add an event in the caller's transaction (it commits or rolls back with it).

        The first event of a transaction first checks that the chain still ends where
        it must (raising :class:`AuditTampered` otherwise)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        self.key  # noqa: B018 - a missing key refuses the write before anything is added
        head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
        if "audit_head" not in session.info:
            published = self._check_before_append(session, head)
            if published < head.seq:  # the head file lags: say so in the trail, then move it on
                self._add(session, head, "system", "system", "head_gap", "audit:head", None,
                          {"outside_head": published, "database_head": head.seq},
                          "the head file was behind the database (a writer stopped between commit "
                          "and publishing, or the file was lowered)")
        return self._add(session, head, actor, role, action, target, before, after, reason)

    def _add(self, session: Session, head: AuditHead, actor: str, role: str, action: str,
             target: str, before: object, after: object, reason: str) -> AuditEvent:
        event = AuditEvent(
            seq=head.seq + 1,
            ts=dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            actor=actor[:ACTOR_MAX], role=role, action=action, target=_clip(str(target), TARGET_MAX),
            before=canonical_json(before), after=canonical_json(after), reason=reason or "",
            prev_hash=head.hash,
        )
        event.hash = self._digest(self._fields(event))
        session.add(event)
        head.seq, head.hash = event.seq, event.hash
        session.flush()
        session.info["audit_head"] = (event.seq, event.hash)
        return event

    def _check_before_append(self, session: Session, head: AuditHead) -> int:
        """The table's last event is the head, and the outside head is part of the chain;
        returns the outside head's sequence number."""
        last = session.execute(select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(1)).scalar_one_or_none()
        last_seq, last_hash = (last.seq, last.hash) if last else (0, GENESIS)
        if last_seq > head.seq:
            raise AuditTampered(head.seq + 1, f"event(s) {head.seq + 1}–{last_seq} were added "
                                              "outside the audit trail")
        if (last_seq, last_hash) != (head.seq, head.hash):
            raise AuditTampered(min(last_seq, head.seq) + 1, "the database head and the last "
                                                              "event disagree")
        outside = self.read_head()
        if outside is None:
            if head.seq:
                raise AuditTampered(head.seq, f"the head file {self.head_path} is missing: "
                                              "truncation cannot be ruled out")
            return 0
        seq, digest = outside
        if seq > head.seq:
            raise AuditTampered(head.seq + 1, f"events {head.seq + 1}–{seq} are missing from the "
                                              "database (truncated, or restored from an older copy)")
        row = session.get(AuditEvent, seq) if seq else None
        if seq and (row is None or row.hash != digest):
            raise AuditTampered(seq, "it does not match the head recorded outside the database")
        return seq

    def publish_head(self, seq: int, digest: str) -> None:
        """Record the chain head outside the database (call with :meth:`writer_lock` held)."""
        current = self.read_head()
        if current is None or seq > current[0]:
            atomic_write_bytes(self.head_path, json.dumps({"seq": seq, "hash": digest}).encode())

    def read_head(self) -> tuple[int, str] | None:
        """The outside head, None when the file is missing; an unreadable file raises."""
        try:
            data = json.loads(self.head_path.read_text())
            return int(data["seq"]), str(data["hash"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise AuditTampered(0, f"the head file {self.head_path} is unreadable "
                                   f"({type(exc).__name__}): truncation cannot be ruled out") from None

    # ------------------------------------------------------------------ verifying

    def verify(self, session: Session) -> VerifyResult:
        """Walk the chain; name the first event that was edited, deleted, inserted or cut off.

        Read-only: it writes nothing, to the database or to the head file."""
        expected_seq, prev, checked = 1, GENESIS, 0
        last: AuditEvent | None = None
        events = session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars().all()
        for i, event in enumerate(events):
            if event.seq != expected_seq:
                what = "deleted" if event.seq > expected_seq else "duplicated"
                return VerifyResult(False, checked, expected_seq,
                                    f"event {expected_seq} is missing ({what}); next is {event.seq}")
            if event.prev_hash != prev:
                return VerifyResult(False, checked, event.seq,
                                    "its link to the previous event is broken (inserted or reordered)")
            if not hmac.compare_digest(self._digest(self._fields(event)), event.hash):
                following = events[i + 1] if i + 1 < len(events) else None
                if following is not None and following.prev_hash == prev:
                    return VerifyResult(False, checked, event.seq,
                                        "it is not part of the chain: the next event links past it "
                                        "(inserted)")
                return VerifyResult(False, checked, event.seq,
                                    "its contents do not match its hash (edited)")
            prev, expected_seq, last, checked = event.hash, expected_seq + 1, event, checked + 1
        head_row = session.get(AuditHead, 1)
        last_seq = last.seq if last else 0
        if head_row is not None and (head_row.seq, head_row.hash) != (last_seq, prev):
            return VerifyResult(False, checked, min(head_row.seq, last_seq) + 1,
                                f"the database head says event {head_row.seq} but the chain ends "
                                f"at {last_seq} (truncated, or events added outside the trail)")
        try:
            outside = self.read_head()
        except AuditTampered as exc:
            return VerifyResult(False, checked, last_seq, str(exc).split("(", 1)[-1].rstrip(")"))
        if outside is None:
            if last_seq == 0:
                return VerifyResult(True, checked)
            return VerifyResult(False, checked, last_seq,
                                f"the head file {self.head_path} is missing: truncation cannot be "
                                "ruled out")
        seq, digest = outside
        if seq > last_seq:
            return VerifyResult(False, checked, last_seq + 1,
                                f"the head recorded outside the database is event {seq} but the "
                                f"database ends at event {last_seq}: events {last_seq + 1}–{seq} "
                                "are missing (truncated, or restored from an older copy)")
        row = session.get(AuditEvent, seq) if seq else None
        if seq and (row is None or row.hash != digest):
            return VerifyResult(False, checked, seq,
                                "it does not match the head recorded outside the database")
        if seq < last_seq:
            return VerifyResult(False, checked, seq + 1,
                                f"the head file is at event {seq} but the database at {last_seq}: "
                                "truncation cannot be ruled out (the head file was lowered, or a "
                                "writer stopped between commit and publishing; the next write "
                                "records the gap and moves the head on)")
        return VerifyResult(True, checked)

    def events_frame(self, session: Session) -> pd.DataFrame:
        rows = session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars().all()
        return pd.DataFrame(
            [{"seq": e.seq, "ts": e.ts, "actor": e.actor, "role": e.role, "action": e.action,
              "target": e.target, "before": e.before, "after": e.after, "reason": e.reason,
              "prev_hash": e.prev_hash, "hash": e.hash} for e in rows],
            columns=["seq", "ts", "actor", "role", "action", "target", "before", "after", "reason",
                     "prev_hash", "hash"],
        )

    def export_csv(self, session: Session, path: str | Path) -> int:
        """Write every event as formula-safe CSV (atomically); returns the count."""
        frame = self.events_frame(session)
        atomic_write_bytes(path, to_csv_bytes(frame))
        return len(frame)
