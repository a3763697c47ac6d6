"""Connections: SQLite (embedded default) or PostgreSQL (``RECOMMENDER_DATABASE_URL``).

SQLite runs in WAL mode with a busy timeout, and every write transaction
starts with ``BEGIN IMMEDIATE`` so concurrent writers queue instead of
failing with "database is locked" half-way through.

Text with a NUL character is refused on both backends before it reaches the driver
(:class:`UnstorableText`): PostgreSQL cannot hold it, and its driver's error crashed
whichever page or command had let it through; a refusal every service shows instead.
"""

from __future__ import annotations

import re
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
NUL = "\x00"
_BIND_SUFFIX = re.compile(r"_\d+$")  # SQLAlchemy names a WHERE clause's binds column_1, ...


class UnstorableText(ValueError):
    """A statement would store or look up text with a NUL character (refused on every backend,
    so SQLite and PostgreSQL behave alike; the transaction rolls back, nothing is written)."""


def refuse_nul_text(conn, cursor, statement, parameters, context, executemany) -> None:
    """``before_cursor_execute`` hook: raise :class:`UnstorableText` naming the column and the
    value (NUL shown as ``\\x00``) if any bound text holds a NUL character."""
    rows = parameters if executemany else [parameters]
    for row in rows:
        values = row.values() if isinstance(row, dict) else (row or ())
        if any(isinstance(v, str) and NUL in v for v in values):
            raise UnstorableText(_nul_message(context, row))


def _nul_message(context, row) -> str:
    named = getattr(context, "compiled_parameters", None) or [row if isinstance(row, dict) else {}]
    for params in named:
        for name, value in params.items():
            if isinstance(value, str) and NUL in value:
                shown = value.replace(NUL, "\\x00")
                shown = shown if len(shown) <= 60 else shown[:57] + "..."
                return (f"{_BIND_SUFFIX.sub('', str(name))}: '{shown}' contains a NUL character "
                        f"(\\x00), which cannot be stored; remove it and try again")
    return "a text value contains a NUL character (\\x00), which cannot be stored"


class DatabaseOutOfDate(RuntimeError):
    """The database schema is not the one this code expects."""


def database_url(url: str | None = None) -> str:
    """The URL to use: explicit, else ``$RECOMMENDER_DATABASE_URL``, else SQLite in the data directory."""
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
        for engine in {self.engine, self.read_engine}:
            event.listen(engine, "before_cursor_execute", refuse_nul_text)
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
