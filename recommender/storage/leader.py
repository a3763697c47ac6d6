"""One job worker per deployment: a lock that only one process can hold.

On PostgreSQL it is a session-level advisory lock, keyed by database *and* schema
(several clinics or test schemas may share one server), held by a dedicated
connection for the worker's lifetime: if the worker dies, its connection closes and
the lock is free again.  On SQLite (one host by nature) it is an exclusive
``flock`` on a file beside the database, which the kernel releases when the
process dies.
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import IO

from sqlalchemy import text
from sqlalchemy.engine import Connection

from recommender.storage.database import Database

LOCK_NAME = "recommender-worker"
PG_KEY_SQL = "hashtext(current_database() || '.' || current_schema() || '.' || :name)"


class LeaderLock:
    """Try to become the deployment's one worker; :meth:`still_held` checks it is kept."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: Connection | None = None
        self._file: IO | None = None

    @property
    def _path(self) -> Path:
        return Path(self.db.url.split("sqlite:///", 1)[1] + ".worker.lock")

    def acquire(self) -> bool:
        """Take the lock without waiting; True when this process now holds it."""
        if self.db.is_sqlite:
            fh = open(self._path, "a")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                return False
            self._file = fh
            return True
        conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        if conn.execute(text(f"SELECT pg_try_advisory_lock({PG_KEY_SQL})"), {"name": LOCK_NAME}).scalar():
            self._conn = conn
            return True
        conn.close()
        return False

    def still_held(self) -> bool:
        """False when the database connection that holds a PostgreSQL lock was lost."""
        if self._file is not None:
            return True
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - any failure means the lock may be gone
            return False

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._conn is not None:
            try:
                self._conn.execute(text(f"SELECT pg_advisory_unlock({PG_KEY_SQL})"), {"name": LOCK_NAME})
            finally:
                self._conn.close()
                self._conn = None


def worker_running(db: Database) -> bool:
    """Whether some process holds the worker lock now (probing takes and returns it)."""
    probe = LeaderLock(db)
    if probe.acquire():
        probe.release()
        return False
    return True
