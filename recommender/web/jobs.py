"""Heavy work from a page: submit a job, follow its progress by polling, show its outcome.

A page never waits for the work itself: the submit is one short transaction, and
a fragment re-reads the job's row every second while it runs, then reruns the page
once when it has ended.  The app starts the deployment's worker when none runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import streamlit as st

from recommender.services import ClinicService
from recommender.services.identity import Actor
from recommender.services.jobs import JobKind, JobState, JobView
from recommender.settings import get_settings
from recommender.web.ui import actor, service, show_refusal
from recommender.web.wording import local_time, plain, sentence

POLL_SECONDS = 1.0
# How often one app process may probe the worker lock (a probe is a database round trip).
WORKER_CHECK_SECONDS = 5.0
WORKER_COMMAND = [sys.executable, "-m", "recommender.cli", "worker"]

_worker_guard = threading.Lock()
_worker: dict = {"process": None, "checked": 0.0}


def ensure_worker(svc: ClinicService) -> None:
    """Start ``recommender worker`` as a child of this app process when no worker holds the
    deployment's lock (so the README's one command is enough); a worker run as its own
    service holds the lock, and then nothing is started (RECOMMENDER_START_WORKER=0 never)."""
    if not get_settings().start_worker:
        return
    with _worker_guard:
        child = _worker["process"]
        if child is not None and child.poll() is None:
            return  # ours is starting or running
        if time.monotonic() - _worker["checked"] < WORKER_CHECK_SECONDS:
            return
        _worker["checked"] = time.monotonic()
        if svc.jobs.worker_running():
            return
        # a second app process may start one at the same moment: the loser exits at once
        _worker["process"] = subprocess.Popen([*WORKER_COMMAND, "--exit-with-parent", str(os.getpid())])


def submit(svc: ClinicService, me: Actor, kind: JobKind, params: dict | None = None,
           payload: bytes | None = None) -> int | None:
    """Queue a job (the role is checked and the submission audited); None if refused."""
    try:
        job_id = svc.submit_job(me, kind, params, payload)
    except Exception as exc:  # noqa: BLE001 - shown as a refusal, or re-raised if a bug
        show_refusal(exc)
        return None
    ensure_worker(svc)
    return job_id


def outcome(job: JobView) -> tuple[str, str]:
    """How an ended job is reported: a Streamlit message kind and the text."""
    r = job.result or {}
    if job.state == JobState.FAILED.value:
        return "error", sentence(job.error.splitlines()[0]) if job.error else f"{job.kind} failed"
    kind = JobKind(job.kind)
    if kind is JobKind.TRAIN:
        return "success", f"Trained model version {r['version']}."
    if kind is JobKind.EVALUATE:
        return "success", f"Evaluated v{r['version']}."
    if kind is JobKind.COMPARE:
        return ("success" if r["passed"] else "warning"), f"Promotion gate would say: {r['message']}"
    if kind is JobKind.PROMOTE:
        version = job.params.get("version")
        if job.params.get("force"):
            return "success", (f"v{version} was made current, forced with the reason "
                               f"“{job.params.get('reason', '')}” (promotion gate: {r['message']})")
        if r["passed"]:
            return "success", f"v{version} was made current (promotion gate: {r['message']})"
        return "error", f"v{version} was not promoted (promotion gate: {r['message']})"
    if kind is JobKind.ROLLBACK:
        return "success", f"Rolled back: v{r['version']} was made current."
    return "success", f"Imported {r['rows']} episode(s) (import {r['import_id']})."


def show_job(svc: ClinicService, me: Actor, kind: JobKind, label: str, **params) -> JobView | None:
    """The newest job of ``kind`` with these parameters: its progress while it runs, else its
    outcome (with who and when); returns it."""
    try:
        job = svc.latest_job(me, kind, **params)
    except Exception as exc:  # noqa: BLE001
        show_refusal(exc)
        return None
    if job is None:
        return None
    if job.active:
        _follow(job.id, label)
        return job
    level, message = outcome(job)
    when = local_time(job.submitted_at)
    getattr(st, level)(f"{plain(message)} — {label.lower()} asked for by {plain(job.submitted_by)}, {when}")
    details = job.error.splitlines()[1:]
    if details:
        st.code("\n".join(details), language=None)
    return job


@st.fragment(run_every=POLL_SECONDS)
def _follow(job_id: int, label: str) -> None:
    """Re-read the job every second; rerun the whole page once it has ended."""
    svc = service()
    job = svc.job(actor(), job_id)
    if not job.active:
        st.rerun()
    if job.state == JobState.QUEUED.value:
        ensure_worker(svc)
        st.progress(0.0, text=f"{label}: waiting for the worker")
    else:
        st.progress(job.progress, text=f"{label}: {plain(job.message)} (asked for by "
                                       f"{plain(job.submitted_by)}; you may leave this page)")
