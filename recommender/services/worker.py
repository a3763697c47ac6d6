"""The job worker: one process per deployment runs the queued jobs, one at a time.

It holds the deployment's worker lock (:mod:`recommender.storage.leader`) for its
whole life, so starting a second worker — by hand, or by another app process that
found no worker — only makes that one exit.  Each job runs for the user who
submitted it, through the same service call and checks as before, while a
background thread sends heartbeats.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from collections.abc import Callable

from recommender.services.facade import ClinicService
from recommender.services.identity import Actor
from recommender.services.jobs import HEARTBEAT_SECONDS, JobKind
from recommender.storage.leader import LeaderLock
from recommender.storage.schema import Job

POLL_SECONDS = 1.0
# Progress is written at most this often (a training reports many small steps).
PROGRESS_EVERY_SECONDS = 0.5
# A worker that finds the lock taken tries again for this long before it gives way
# (an app process probing the lock holds it for a moment).
LOCK_PATIENCE_SECONDS = 3.0
IMPORT_ERRORS_KEPT = 200  # bad cells kept in a failed import's result (the page lists them)


class WorkerBusy(RuntimeError):
    """Another process already is this deployment's worker."""


class Worker:
    """Claims queued jobs and runs them; :meth:`run` until stopped, or :meth:`run_once`."""

    def __init__(self, service: ClinicService, name: str | None = None) -> None:
        self.service = service
        self.jobs = service.jobs
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.lock = LeaderLock(service.db)

    def acquire(self, patience: float = LOCK_PATIENCE_SECONDS) -> None:
        deadline = time.monotonic() + patience
        while not self.lock.acquire():
            if time.monotonic() > deadline:
                raise WorkerBusy("another worker already runs this deployment's jobs")
            time.sleep(0.2)

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Hold the lock and run jobs until ``should_stop`` or the lock is lost."""
        self.acquire()
        try:
            self.jobs.reap_stale()
            while not should_stop() and self.lock.still_held():
                if not self.run_once():
                    time.sleep(POLL_SECONDS)
        finally:
            self.lock.release()

    def run_once(self) -> bool:
        """Run the oldest queued job, if any; True when one ran."""
        job = self.jobs.claim(self.name)
        if job is None:
            return False
        beat = _Heartbeat(self.jobs.report, job.id)
        beat.start()
        actor = self.service.access.grant_for_job(job.submitted_by)
        try:
            result = self._execute(job, actor, beat.progress)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded on the job
            result, error = None, _failure(job, exc)
        except BaseException:  # stopped (SIGTERM, Ctrl-C) mid-job: say so, then stop
            beat.stop()
            self.jobs.fail(job.id, f"{job.kind} failed: the worker was stopped; submit the job again")
            raise
        finally:
            beat.stop()
            self.service.access.revoke(actor.session_token)
        if result is None:
            self.jobs.fail(job.id, error)
        else:
            self.jobs.finish(job.id, result)
        return True

    def _execute(self, job: Job, actor: Actor, progress: Callable[[float, str], None]) -> dict:
        svc, p = self.service, job.params
        kind = JobKind(job.kind)
        if kind is JobKind.TRAIN:
            return {"version": svc.train(actor, seed=int(p.get("seed", 0)), progress=progress)}
        if kind is JobKind.EVALUATE:
            report, _ = svc.evaluate_version(actor, int(p["version"]))
            return {"version": int(p["version"]), "evaluated": report is not None}
        if kind is JobKind.COMPARE:
            return dataclasses.asdict(svc.compare_with_current(actor, int(p["version"])))
        if kind is JobKind.PROMOTE:
            verdict = svc.promote(actor, int(p["version"]), force=bool(p.get("force")),
                                  reason=str(p.get("reason", "")))
            return dataclasses.asdict(verdict)
        if kind is JobKind.ROLLBACK:
            return {"version": svc.rollback(actor, str(p.get("reason", "")))}
        if kind is JobKind.IMPORT:
            import_id, parsed = svc.import_file(actor, job.payload or b"", str(p["file_name"]),
                                                str(p.get("kind", "training")))
            return {"import_id": import_id, "rows": parsed.report.n_rows}
        raise AssertionError(f"unhandled job kind {kind}")


def _failure(job: Job, exc: Exception) -> str:
    """The job's error as its page shows it: the action, then the reason (bad cells listed)."""
    lines = [f"{job.kind} failed: {exc}"]
    lines += [str(e) for e in getattr(exc, "errors", [])[:IMPORT_ERRORS_KEPT]]
    return "\n".join(lines)


class _Heartbeat:
    """Sends the job's heartbeat every few seconds, with the newest progress it was given."""

    def __init__(self, report: Callable[..., None], job_id: int) -> None:
        self._report, self._job_id = report, job_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{job_id}", daemon=True)
        self._last_write = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=HEARTBEAT_SECONDS * 2)

    def _loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            self._report(self._job_id)

    def progress(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if now - self._last_write >= PROGRESS_EVERY_SECONDS:
            self._last_write = now
            self._report(self._job_id, fraction, message)
