"""Thread pools of the numeric libraries, set on purpose in the app and in the worker.

With the libraries' defaults every process starts one OpenMP and one BLAS thread per
core; several users' requests plus a training then oversubscribe a small machine
many times over (an evaluation took 61–149 s instead of 15.8 s on 2 busy cores).
OpenMP reads ``OMP_NUM_THREADS`` when it is loaded and ``omp_set_num_threads`` only
affects the calling thread, while Streamlit runs each script in a new thread — so
the variables are set before scikit-learn loads OpenMP, and threadpoolctl limits the
pools (BLAS, already loaded by numpy) that the variables can no longer reach.
"""

from __future__ import annotations

import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
_applied: int | None = None  # the limit this process already set


def limit_threads(threads: int) -> None:
    """Use at most ``threads`` threads per pool in this process and the processes it starts.

    Streamlit runs ``app.py`` again on every click, so a repeat with the same limit returns at
    once: scanning the loaded libraries costs ~10 ms a run, and OpenMP threads started later
    take their size from the variables set the first time."""
    global _applied
    if _applied == threads and all(os.environ.get(n) == str(threads) for n in THREAD_VARIABLES):
        return
    from threadpoolctl import threadpool_limits

    for name in THREAD_VARIABLES:
        os.environ[name] = str(threads)
    threadpool_limits(threads)  # pools already loaded (BLAS: process-wide; OpenMP: this thread)
    _applied = threads


def yield_cpu(niceness: int) -> int:
    """Lower this process's CPU priority by ``niceness`` (never raise it); the priority now.

    The job worker trains for tens of seconds on a machine whose app answers clicks: at a
    lower priority the kernel runs the app's threads first whenever both want a core, and
    the training takes the time nobody is clicking.  Children (none today) inherit it."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness > 0 and current < niceness:
        return os.nice(niceness - current)
    return current
