"""The job queue: heavy work is submitted by a page and run by the worker process.

Submitting checks the role for the action and is audited, like the action itself;
the worker then runs the action for the submitter, through the same service and its
checks (the account is re-read when the job runs).  Pages poll a job's state and
progress from the database, so a user can leave the page, close the browser or
come back from another app process.  A running job whose worker stops sending
heartbeats is marked failed.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from enum import Enum

from sqlalchemy import select, update

from recommender.services.base import AccessControl, AuditedStore, InputRejected
from recommender.services.identity import Actor
from recommender.services.permissions import Action
from recommender.services.registry import json_safe, promotion_action
from recommender.storage.leader import worker_running
from recommender.storage.schema import Job, utcnow

# The worker writes a heartbeat this often while it runs a job ...
HEARTBEAT_SECONDS = 5.0
# ... and a running job without one for this long is marked failed (its worker died).
HEARTBEAT_TIMEOUT = dt.timedelta(seconds=60)
MESSAGE_MAX = 200  # jobs.message


class JobKind(str, Enum):
    TRAIN = "train"
    EVALUATE = "evaluate"
    COMPARE = "compare"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    IMPORT = "import"


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


ACTIVE = (JobState.QUEUED.value, JobState.RUNNING.value)
# The right each kind needs (promotion depends on the role and on force: see promotion_action).
KIND_ACTIONS = {JobKind.TRAIN: Action.TRAIN, JobKind.EVALUATE: Action.EVALUATE,
                JobKind.COMPARE: Action.EVALUATE, JobKind.ROLLBACK: Action.ROLLBACK,
                JobKind.IMPORT: Action.IMPORT}


@dataclasses.dataclass(frozen=True)
class JobView:
    """A job as a page shows it."""

    id: int
    kind: str
    params: dict
    state: str
    progress: float
    message: str
    result: dict | None
    error: str
    submitted_by: str
    submitted_at: dt.datetime

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


def _view(job: Job) -> JobView:
    return JobView(job.id, job.kind, job.params, job.state, job.progress, job.message, job.result,
                   job.error, job.submitted_by, job.submitted_at)


def _aware(ts: dt.datetime | None) -> dt.datetime | None:
    return ts if ts is None or ts.tzinfo else ts.replace(tzinfo=dt.UTC)  # SQLite returns naive UTC


class JobService:
    """Submit jobs, read their state, and (for the worker) claim, report on and end them."""

    def __init__(self, store: AuditedStore, access: AccessControl) -> None:
        self.store = store
        self.access = access

    # ------------------------------------------------------------------ pages

    def submit(self, actor: Actor, kind: JobKind | str, params: dict | None = None,
               payload: bytes | None = None) -> int:
        """Queue a job if the actor's role allows its action now; returns the job id."""
        kind = JobKind(kind)
        params = json_safe(params or {})
        target = self._target(kind, params)
        self._check_params(kind, params)
        actor = self.access.current(actor)
        action = (promotion_action(actor.role, bool(params.get("force"))) if kind is JobKind.PROMOTE
                  else KIND_ACTIONS[kind])
        actor = self.access.require(actor, action, target)
        with self.store.write() as s:
            job = Job(kind=kind.value, params=params, payload=payload, state=JobState.QUEUED.value,
                      progress=0.0, message="waiting for the worker", error="",
                      submitted_by=actor.username, worker="")
            s.add(job)
            s.flush()
            self.store.log(s, actor, "job_submit", f"job:{job.id}", None,
                           {"kind": kind.value, "target": target, "params": params,
                            "payload_bytes": len(payload or b"")})
            return job.id

    @staticmethod
    def _check_params(kind: JobKind, params: dict) -> None:
        """Refuse at once what the job would refuse anyway, before anything is queued."""
        if kind is JobKind.PROMOTE and params.get("force") and not str(params.get("reason", "")).strip():
            raise InputRejected("forcing a promotion needs a reason")
        if kind is JobKind.ROLLBACK and not str(params.get("reason", "")).strip():
            raise InputRejected("a rollback needs a reason")
        if kind is JobKind.IMPORT and not params.get("file_name"):
            raise InputRejected("an import needs the file's name")

    @staticmethod
    def _target(kind: JobKind, params: dict) -> str:
        if "version" in params:
            return f"model:v{params['version']}"
        if kind is JobKind.IMPORT:
            return f"file:{params.get('file_name', '')}"
        return "models"

    def job(self, actor: Actor, job_id: int) -> JobView:
        """A job's state, for anyone allowed to submit jobs of its kind."""
        with self.store.read() as s:
            job = s.get(Job, job_id)
        if job is None:
            raise InputRejected(f"no job {job_id}")
        self._require_view(actor, JobKind(job.kind))
        return self._reaped(job)

    def latest(self, actor: Actor, kind: JobKind | str, **params) -> JobView | None:
        """The newest job of ``kind`` (with these parameters), whoever submitted it: a
        page shows work in progress to everyone who may do it, after leaving and returning."""
        kind = JobKind(kind)
        self._require_view(actor, kind)
        with self.store.read() as s:
            jobs = s.execute(select(Job).where(Job.kind == kind.value).order_by(Job.id.desc())
                             .limit(50)).scalars().all()
        for job in jobs:
            if all(job.params.get(k) == v for k, v in params.items()):
                return self._reaped(job)
        return None

    def _require_view(self, actor: Actor, kind: JobKind) -> None:
        action = Action.VIEW_MODELS if kind is JobKind.PROMOTE else KIND_ACTIONS[kind]
        self.access.require(actor, action, f"jobs:{kind.value}")

    def _reaped(self, job: Job) -> JobView:
        """A running job whose worker stopped is shown (and recorded) as failed."""
        if job.state == JobState.RUNNING.value and self._stale(job, utcnow()):
            self.reap_stale()
            with self.store.read() as s:
                job = s.get(Job, job.id)
        return _view(job)

    @staticmethod
    def _stale(job: Job, now: dt.datetime) -> bool:
        beat = _aware(job.heartbeat_at) or _aware(job.started_at) or _aware(job.submitted_at)
        return now - beat > HEARTBEAT_TIMEOUT

    # ------------------------------------------------------------------ the worker

    def claim(self, worker: str) -> Job | None:
        """The oldest queued job, now running under ``worker`` (SKIP LOCKED on PostgreSQL,
        so two claimers never take the same job; SQLite serialises writers anyway)."""
        now = utcnow()
        with self.store.db.write() as s:
            job = s.execute(select(Job).where(Job.state == JobState.QUEUED.value).order_by(Job.id)
                            .limit(1).with_for_update(skip_locked=True)).scalar_one_or_none()
            if job is None:
                return None
            job.state, job.worker = JobState.RUNNING.value, worker[:120]
            job.started_at = job.heartbeat_at = now
            job.message = "started"
            return job

    def report(self, job_id: int, progress: float | None = None, message: str | None = None) -> None:
        """Heartbeat, with progress when given (bookkeeping: not an audited change)."""
        values: dict = {"heartbeat_at": utcnow()}
        if progress is not None:
            values["progress"] = min(max(float(progress), 0.0), 1.0)
        if message is not None:
            values["message"] = message[:MESSAGE_MAX]
        with self.store.db.write() as s:
            s.execute(update(Job).where(Job.id == job_id, Job.state == JobState.RUNNING.value)
                      .values(**values))

    def finish(self, job_id: int, result: dict) -> None:
        self._end(job_id, JobState.DONE, json_safe(result), "", "job_done")

    def fail(self, job_id: int, error: str) -> None:
        self._end(job_id, JobState.FAILED, None, error, "job_failed")

    def _end(self, job_id: int, state: JobState, result: dict | None, error: str, event: str) -> None:
        with self.store.write() as s:
            job = s.get(Job, job_id)
            if job is None or job.state not in ACTIVE:
                return  # already ended (reaped as stale)
            job.state, job.result, job.error = state.value, result, error
            job.payload = None  # an uploaded file is not kept twice: the import has it
            job.finished_at = utcnow()
            job.progress = 1.0 if state is JobState.DONE else job.progress
            job.message = "finished" if state is JobState.DONE else "failed"
            self.store.log(s, Actor(job.submitted_by, "system"), event, f"job:{job_id}", None,
                           {"kind": job.kind, "result": result}, reason=error)

    def reap_stale(self) -> list[int]:
        """Mark failed every running job whose worker stopped sending heartbeats."""
        now = utcnow()
        with self.store.read() as s:
            running = s.execute(select(Job).where(Job.state == JobState.RUNNING.value)).scalars().all()
        stale = [j.id for j in running if self._stale(j, now)]
        for job_id in stale:
            self.fail(job_id, f"the worker stopped: no heartbeat for over "
                              f"{HEARTBEAT_TIMEOUT.total_seconds():.0f} s; submit the job again")
        return stale

    def worker_running(self) -> bool:
        """Whether this deployment's worker is running (some process holds its lock)."""
        return worker_running(self.store.db)
