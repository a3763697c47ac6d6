"""The tamper-evident audit trail: append-only, HMAC-SHA256 hash-chained events.

Each event's hash is ``HMAC(key, canonical(seq, ts, actor, role, action, target,
before, after, reason, prev_hash))``.  The key lives in a file outside the
database (``RECOMMENDER_AUDIT_KEY_FILE``), so someone who can edit the database
cannot forge hashes; the chain head is also written outside the database
(``RECOMMENDER_AUDIT_HEAD_FILE``) after every commit, so deleting the newest
events is detected too.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from recommender.contract.atomic import atomic_write_bytes
from recommender.contract.csv_io import to_csv_bytes
from recommender.settings import get_settings
from recommender.storage.schema import AuditEvent, AuditHead

GENESIS = "0" * 64
ACTIONS = ("login", "logout", "failed_login", "lockout", "recommend", "tune", "accept", "override",
           "followup", "import", "train", "promote", "rollback", "user_change", "export", "denied",
           "intake")


def canonical_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""
    warning: str = ""

    def __str__(self) -> str:
        if self.ok:
            return f"audit chain OK: {self.checked} event(s) verified" + (
                f" ({self.warning})" if self.warning else "")
        return f"audit chain BROKEN at event {self.first_bad_seq}: {self.problem}"


class AuditTrail:
    """Appends and verifies events; owns the key file and the external head file."""

    def __init__(self, key_path: str | Path | None = None, head_path: str | Path | None = None) -> None:
        settings = get_settings()
        self.key_path = Path(key_path or settings.resolved_audit_key_file)
        self.head_path = Path(head_path or settings.resolved_audit_head_file)
        self._key: bytes | None = None

    @property
    def key(self) -> bytes:
        if self._key is None:
            if not self.key_path.exists():
                self.key_path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_hex(32))
            self._key = bytes.fromhex(self.key_path.read_text().strip())
        return self._key

    def _digest(self, fields: list) -> str:
        return hmac.new(self.key, canonical_json(fields).encode(), hashlib.sha256).hexdigest()

    @staticmethod
    def _fields(e: AuditEvent) -> list:
        return [e.seq, e.ts, e.actor, e.role, e.action, e.target, e.before, e.after, e.reason,
                e.prev_hash]

    def append(self, session: Session, actor: str, role: str, action: str, target: str = "",
               before: object = None, after: object = None, reason: str = "") -> AuditEvent:
        """Add an event in the caller's transaction (it commits or rolls back with it)."""
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one()
        event = AuditEvent(
            seq=head.seq + 1,
            ts=dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            actor=actor, role=role, action=action, target=str(target),
            before=canonical_json(before), after=canonical_json(after), reason=reason or "",
            prev_hash=head.hash,
        )
        event.hash = self._digest(self._fields(event))
        session.add(event)
        head.seq, head.hash = event.seq, event.hash
        session.flush()
        session.info["audit_head"] = (event.seq, event.hash)
        return event

    def publish_head(self, seq: int, digest: str) -> None:
        """Record the chain head outside the database (never moving it backwards)."""
        self.head_path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.head_path.with_name(self.head_path.name + ".lock")
        with open(lock, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            current = self.read_head()
            if current is None or seq > current[0]:
                atomic_write_bytes(self.head_path, json.dumps({"seq": seq, "hash": digest}).encode())

    def read_head(self) -> tuple[int, str] | None:
        if not self.head_path.exists():
            return None
        data = json.loads(self.head_path.read_text())
        return int(data["seq"]), str(data["hash"])

    def verify(self, session: Session) -> VerifyResult:
        """Walk the chain; name the first event that was edited, deleted, inserted or cut off."""
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
            return VerifyResult(False, checked, last_seq + 1,
                                f"the database head says event {head_row.seq} but the chain ends "
                                f"at {last_seq} (truncated)")
        outside = self.read_head()
        if outside is not None:
            seq, digest = outside
            if seq > last_seq:
                return VerifyResult(False, checked, last_seq + 1,
                                    f"the head recorded outside the database is event {seq} but "
                                    f"the database ends at event {last_seq} (truncated)")
            row = session.get(AuditEvent, seq) if seq else None
            if seq and (row is None or row.hash != digest):
                return VerifyResult(False, checked, seq,
                                    "it does not match the head recorded outside the database")
            if seq < last_seq:
                return VerifyResult(True, checked, warning=(
                    f"the outside head is at event {seq}, the database at {last_seq}: a writer "
                    f"stopped after committing; the newer events' hashes verify"))
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
