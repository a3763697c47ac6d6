"""``recommender worker``: the deployment's job worker (training, evaluation, promotion, imports).

Run it once per deployment, as its own service, next to any number of app processes;
a second one exits at once (exit 1) because the first holds the worker lock.  The app
starts one itself when none runs (``RECOMMENDER_START_WORKER``), tied to its own life
with ``--exit-with-parent``.
"""

from __future__ import annotations

import os
import signal
import sys


def cmd_worker(args) -> int:
    from recommender.settings import get_settings
    from recommender.threads import limit_threads, yield_cpu

    limit_threads(get_settings().worker_threads)  # before scikit-learn loads OpenMP
    yield_cpu(get_settings().worker_nice)  # the app's clicks first, training in the time between
    from recommender.services import open_service
    from recommender.services.worker import Worker, WorkerBusy

    # SIGTERM stops the loop like Ctrl-C, so a job in progress is recorded as stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    worker = Worker(open_service(args.database_url))
    parent = args.exit_with_parent
    try:
        if args.once:
            worker.acquire()
            try:
                while worker.run_once():
                    pass
            finally:
                worker.lock.release()
            return 0
        print(f"worker {worker.name}: running jobs", file=sys.stderr, flush=True)
        worker.run(should_stop=lambda: parent is not None and os.getppid() != parent)
    except WorkerBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        worker.service.db.dispose()
    return 0


def register(sub) -> None:
    p = sub.add_parser("worker", help="run the deployment's job worker (one per deployment)")
    p.add_argument("--once", action="store_true", help="run the queued jobs, then exit")
    p.add_argument("--exit-with-parent", type=int, default=None, metavar="PID",
                   help="stop (between jobs) when process PID is no longer the parent")
    p.add_argument("--database-url", default=None,
                   help="default: $RECOMMENDER_DATABASE_URL, else SQLite in "
                        "$RECOMMENDER_DATA_DIR (default ./data)")
    p.set_defaults(handler=cmd_worker)
