"""The thread-limit choice, measured: a worker's training at 1 or 2 OpenMP/BLAS threads,
alone and while an app process serves recommendations, on this machine.

    python benchmarks/bench_threads.py          # appends its table to docs/benchmarks-app.md

Each configuration runs in fresh processes, since OpenMP reads its thread count once:
the "worker" trains on a simulated clinic history, and, for the loaded runs, an "app"
process meanwhile recommends for one patient after another (what therapists' clicks
cost the server), at the same thread setting, and records each call's latency.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from doc_sections import write_section  # noqa: E402

EPISODES = 4000
THREADS = (1, 2)

WORKER = """
import sys, time
from recommender.threads import limit_threads
limit_threads(int(sys.argv[1]))
from recommender.contract.csv_io import read_episodes, to_csv_bytes
from recommender.devtools.simulator import simulate
from recommender.model.engine import TreatmentRecommender
frame = read_episodes(to_csv_bytes(simulate(int(sys.argv[2]), seed=3).episodes), "training").frame
t0 = time.perf_counter()
TreatmentRecommender(random_state=0).fit(frame)
print(time.perf_counter() - t0)
"""

APP = """
import json, sys, time
from recommender.threads import limit_threads
limit_threads(int(sys.argv[1]))
from recommender.contract.csv_io import read_episodes, to_csv_bytes
from recommender.devtools.simulator import simulate
from recommender.model.engine import TreatmentRecommender
model = TreatmentRecommender(random_state=0).fit(
    read_episodes(to_csv_bytes(simulate(1500, seed=4).episodes), "training").frame)
patients = read_episodes(to_csv_bytes(simulate(200, seed=5).intakes()), "intake").frame
rows = patients.to_dict("records")
open(sys.argv[2], "w").write("ready")
latencies, i = [], 0
while open(sys.argv[2]).read() != "stop":
    t0 = time.perf_counter()
    model.recommend(rows[i % len(rows)])
    latencies.append(time.perf_counter() - t0)
    i += 1
print(json.dumps(latencies))
"""


def run(threads: int, loaded: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    app = None
    with tempfile.TemporaryDirectory() as tmp:
        flag = Path(tmp) / "flag"
        flag.write_text("")
        if loaded:
            app = subprocess.Popen([sys.executable, "-c", APP, str(threads), str(flag)], env=env,
                                   stdout=subprocess.PIPE, text=True)
            while flag.read_text() != "ready":
                time.sleep(0.2)
        done = subprocess.run([sys.executable, "-c", WORKER, str(threads), str(EPISODES)], env=env,
                              capture_output=True, text=True, check=True)
        latencies = []
        if app is not None:
            flag.write_text("stop")
            latencies = json.loads(app.communicate()[0])
    out = {"threads": threads, "loaded": loaded, "train_s": float(done.stdout.strip().splitlines()[-1])}
    if latencies:
        ordered = sorted(latencies)
        out.update(recommend_p50_ms=statistics.median(ordered) * 1000,
                   recommend_p95_ms=ordered[int(0.95 * len(ordered)) - 1] * 1000, calls=len(ordered))
    return out


def table(results: list[dict]) -> str:
    lines = ["| threads (app and worker) | app serving meanwhile | training s | recommend p50 / p95 ms "
             "while training |", "|---|---|---|---|"]
    for r in results:
        rec = (f"{r['recommend_p50_ms']:.0f} / {r['recommend_p95_ms']:.0f} ({r['calls']} calls)"
               if r["loaded"] else "—")
        lines.append(f"| {r['threads']} | {'yes' if r['loaded'] else 'no'} | {r['train_s']:.1f} | {rec} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    results = [run(t, loaded) for loaded in (False, True) for t in THREADS]
    text = table(results)
    print(text)
    if not args.no_write:
        write_section(ROOT / "docs" / "benchmarks-app.md", "Thread limits", (
            f"Measured on {dt.date.today().isoformat()} on this project's {os.cpu_count()}-core machine "
            "with:\n\n```bash\npython benchmarks/bench_threads.py\n```\n\n"
            f"A worker process trains on {EPISODES:,} simulated episodes; in the loaded rows an app "
            "process recommends for one patient after another meanwhile. Both processes use the "
            "thread setting of the row.\n\n" + text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
