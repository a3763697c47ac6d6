"""Database tables (SQLAlchemy 2.x).  Migrations in ``migrations/`` create exactly these."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Patient(Base):
    __tablename__ = "patients"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_code: Mapped[str] = mapped_column(String(120), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Episode(Base):
    """One course of treatment: the contract intake, as recorded."""

    __tablename__ = "episodes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_code: Mapped[str] = mapped_column(String(120), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    intake: Mapped[dict] = mapped_column(JSON)
    intake_sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(20))  # "form" or "import:<id>"
    historical_plan: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    # Imported history (plan and outcome already recorded), as opposed to a patient in care.
    is_history: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RecommendationRecord(Base):
    __tablename__ = "recommendations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"))
    intake_sha256: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[int | None] = mapped_column(ForeignKey("model_versions.version"), nullable=True)
    ruleset_version: Mapped[str] = mapped_column(String(40))
    output: Mapped[dict] = mapped_column(JSON)  # ranked plans, gate reasons, explanation
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # a review re-plans at a visit; its recommendation names that visit
    visit_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Decision(Base):
    __tablename__ = "decisions"
    __table_args__ = (UniqueConstraint("idempotency_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"))
    recommendation_id: Mapped[int] = mapped_column(ForeignKey("recommendations.id"))
    accepted_plan: Mapped[dict] = mapped_column(JSON)
    differences: Mapped[dict] = mapped_column(JSON)  # component: [recommended, accepted]
    reason_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    reason_text: Mapped[str] = mapped_column(Text, default="")
    ruleset_version: Mapped[str] = mapped_column(String(40))
    idempotency_key: Mapped[str] = mapped_column(String(120))
    decided_by: Mapped[str] = mapped_column(String(80))
    decided_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # A changed plan is a new decision naming the one it replaces; the newest one is current.
    supersedes_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    change_reason: Mapped[str] = mapped_column(Text, default="")
    change_code: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # what the model predicted for the accepted plan, from the pain it was planned at
    prediction: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class FollowUp(Base):
    __tablename__ = "followups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), unique=True)
    lost_to_followup: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[dict] = mapped_column(JSON)  # contract outcome columns
    recorded_by: Mapped[str] = mapped_column(String(80))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Visit(Base):
    """One treatment session or review of an episode.  Append-only (database triggers refuse
    UPDATE and DELETE): a correction is a new row naming the one it supersedes, with who and
    why, and the newest row of a chain is the one that counts.  A record is corrected at most
    once (a unique index), so a chain cannot fork into two records that both count."""

    __tablename__ = "visits"
    __table_args__ = (Index("uq_visits_supersedes_id", "supersedes_id", unique=True),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id"), index=True)
    visit_date: Mapped[dt.date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(20))  # session, review, end_of_programme
    pain_score: Mapped[int] = mapped_column(Integer)  # NRS 0–10 now
    discomfort: Mapped[int | None] = mapped_column(Integer, nullable=True)  # 0–10 during treatment
    massage_intensity: Mapped[str] = mapped_column(String(20), default="none")  # none: not given
    training_given: Mapped[bool] = mapped_column(Boolean, default=False)
    exercise_days: Mapped[int | None] = mapped_column(Integer, nullable=True)  # since last visit
    adverse_event: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str] = mapped_column(Text, default="")
    contraindications: Mapped[dict] = mapped_column(JSON)  # newly recorded, contract columns
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("visits.id"), nullable=True)
    correction_reason: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[str] = mapped_column(String(80))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DataImport(Base):
    __tablename__ = "data_imports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_name: Mapped[str] = mapped_column(String(255))
    file_sha256: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    rows_accepted: Mapped[int] = mapped_column(Integer)
    rows_rejected: Mapped[int] = mapped_column(Integer)
    imported_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    artifact_path: Mapped[str] = mapped_column(String(500))
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    card: Mapped[dict] = mapped_column(JSON)
    policy_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    policy_value_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    policy_value_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The held-out evaluation, computed once when the version is trained or registered (or by
    # an evaluate job for versions older than schema 0005); pages read it, never recompute it.
    evaluation: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class Promotion(Base):
    """Every change of the ``current`` alias, newest last: the newest row's ``to_version`` is
    current.  A rollback adds a row back to that row's ``from_version``."""

    __tablename__ = "promotions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alias: Mapped[str] = mapped_column(String(40))
    from_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    to_version: Mapped[int] = mapped_column(ForeignKey("model_versions.version"))
    kind: Mapped[str] = mapped_column(String(20))  # promote, force, rollback
    verdict: Mapped[dict] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text, default="")
    by: Mapped[str] = mapped_column(String(80))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEvent(Base):
    """Append-only, HMAC hash-chained (see recommender.audit)."""

    __tablename__ = "audit_events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[str] = mapped_column(String(40))  # ISO 8601 UTC, hashed exactly as stored
    actor: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(200))
    before: Mapped[str] = mapped_column(Text)  # canonical JSON
    after: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """One row: the chain's last sequence number and hash (a lock point for appends)."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class UserSession(Base):
    """A signed-in session: the token's SHA-256 (never the token), who, and when it was used.

    Any app process can resume it; it ends on sign-out, after the idle timeout, and when
    the account is disabled, demoted or given a new password."""

    __tablename__ = "user_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    username: Mapped[str] = mapped_column(String(80), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_reason: Mapped[str] = mapped_column(String(80), default="")


class Job(Base):
    """Heavy work (train, evaluate, compare, promote, roll back, import) run by the worker
    process, not by a page: who asked for what, its state, progress, result or error, and
    the worker's heartbeat (a running job whose heartbeat stops is marked failed)."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    params: Mapped[dict] = mapped_column(JSON)
    # an uploaded file for an import job; cleared when the job ends
    payload: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    state: Mapped[str] = mapped_column(String(20), index=True)  # queued, running, done, failed
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(String(200), default="")
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    submitted_by: Mapped[str] = mapped_column(String(80))
    submitted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    worker: Mapped[str] = mapped_column(String(120), default="")
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
