"""Server-side sign-in sessions: a random token for the client, its SHA-256 in the database.

Any app process can resume a session from its token (a browser reload, another
replica), and every call re-reads the account behind it, so disabling, demoting
or resetting a user's password takes effect at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from recommender.services.identity import Actor
from recommender.services.permissions import PermissionDenied
from recommender.settings import get_settings
from recommender.storage.schema import User, UserSession, utcnow

TOKEN_BYTES = 32
# last_seen_at is written at most this often per session (idle timeout stays accurate to it),
# and at least four times per timeout, so a short timeout never ends an active session.
TOUCH_EVERY = dt.timedelta(seconds=30)


def duration_words(span: dt.timedelta) -> str:
    """A timeout as a person says it: "15 minutes", "1 minute", "12 seconds"."""
    seconds = span.total_seconds()
    if seconds < 60:
        n, unit = round(seconds), "second"
    else:
        n, unit = round(seconds / 60, 1), "minute"
        n = int(n) if n == int(n) else n
    return f"{n} {unit}{'' if n == 1 else 's'}"


class SessionEnded(PermissionDenied):
    """The session handle is unknown, revoked or idle too long, or its account is gone."""


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(ts: dt.datetime) -> dt.datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)  # SQLite returns naive UTC


class SessionRegistry:
    """Issues, resumes and ends sessions; knows nothing of roles' permissions."""

    def __init__(self, store) -> None:
        self.store = store

    @staticmethod
    def idle_timeout() -> dt.timedelta:
        return dt.timedelta(minutes=get_settings().idle_minutes)

    def issue(self, s: Session, username: str) -> str:
        """A new session for ``username`` in the caller's transaction; returns the token."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        s.add(UserSession(token_sha256=token_sha256(token), username=username, revoked_reason=""))
        return token

    def resolve(self, token: str | None) -> Actor:
        """The account behind a live session, as it is now; raises SessionEnded."""
        if not isinstance(token, str) or not token:
            raise SessionEnded("not signed in")
        now = utcnow()
        with self.store.read() as s:
            row = s.execute(select(UserSession, User).join(User, User.username == UserSession.username)
                            .where(UserSession.token_sha256 == token_sha256(token))).first()
        if row is None:
            raise SessionEnded("no such session: sign in again")
        sess, user = row
        if sess.revoked_at is not None:
            raise SessionEnded(f"the session has ended ({sess.revoked_reason}): sign in again")
        idle = self.idle_timeout()
        if now - _aware(sess.last_seen_at) > idle:
            self.end(token, "idle timeout")
            raise SessionEnded(f"signed out after {duration_words(idle)} without activity: sign in again")
        if not user.active or user.locked:
            self.end(token, "account disabled")
            raise SessionEnded("the account is disabled or locked: ask an administrator")
        if now - _aware(sess.last_seen_at) > min(TOUCH_EVERY, idle / 4):
            with self.store.db.write() as w:  # bookkeeping, not an audited change
                w.execute(update(UserSession).where(UserSession.id == sess.id).values(last_seen_at=now))
        return Actor(user.username, user.role, token)

    def end(self, token: str, reason: str) -> None:
        with self.store.db.write() as s:
            s.execute(update(UserSession).where(UserSession.token_sha256 == token_sha256(token),
                                                UserSession.revoked_at.is_(None))
                      .values(revoked_at=utcnow(), revoked_reason=reason[:80]))

    @staticmethod
    def end_all_for(s: Session, username: str, reason: str) -> int:
        """End every live session of ``username`` in the caller's transaction."""
        result = s.execute(update(UserSession).where(UserSession.username == username,
                                                     UserSession.revoked_at.is_(None))
                           .values(revoked_at=utcnow(), revoked_reason=reason[:80]))
        return result.rowcount or 0
