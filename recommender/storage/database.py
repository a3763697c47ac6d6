"""Connections: SQLite (embedded default) or PostgreSQL (``RECOMMENDER_DATABASE_URL``).

SQLite runs in WAL mode with a busy timeout, and every write transaction
starts with ``BEGIN IMMEDIATE`` so concurrent writers queue instead of
failing with "database is locked" half-way through.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from recommender.settings import get_settings

BUSY_TIMEOUT_MS = 30_000
MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseOutOfDate(RuntimeError):
    """The database schema is not the one this code expects."""


def database_url(url: str | None = None) -> str:
    """The URL to use: explicit, else ``$RECOMMENDER_DATABASE_URL``, else SQLite under data/."""
    if url:
        return url
    settings = get_settings()
    if settings.database_url:
        return settings.database_url
    return f"sqlite:///{(settings.data_dir / 'recommender.sqlite3').resolve()}"


def _sqlite_engine(url: str, immediate: bool) -> Engine:
    path = url.split("sqlite:///", 1)[1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000,
                                              "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """Engines and transactions for one database."""

    def __init__(self, url: str | None = None) -> None:
        self.url = database_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = _sqlite_engine(self.url, immediate=True)
            self.read_engine = _sqlite_engine(self.url, immediate=False)
        else:
            self.engine = create_engine(self.url, pool_pre_ping=True, pool_size=10, max_overflow=10)
            self.read_engine = self.engine
        self._write = sessionmaker(self.engine, expire_on_commit=False)
        self._read = sessionmaker(self.read_engine, expire_on_commit=False)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One write transaction: committed on success, rolled back on any error."""
        with self._write() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    # ------------------------------------------------------------------ schema

    def _alembic(self) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return cfg

    def upgrade(self) -> str:
        """Create or migrate the schema to the newest revision; returns it."""
        cfg = self._alembic()
        with self.engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
        return self.head_revision()

    def head_revision(self) -> str:
        return ScriptDirectory.from_config(self._alembic()).get_current_head()

    def current_revision(self) -> str | None:
        with self.read_engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def check_schema(self) -> None:
        """Refuse to work on a database whose schema is missing or out of date."""
        current, head = self.current_revision(), self.head_revision()
        if current != head:
            state = "has no schema" if current is None else f"is at schema revision {current}"
            raise DatabaseOutOfDate(
                f"the database {state}; this version needs {head}: run `recommender db upgrade`")

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()
