"""Where the recommender loses against the best allowed plan, scenario by scenario.

    OMP_NUM_THREADS=1 python benchmarks/bench_losses.py      # writes docs/benchmarks-losses.md

The engine benchmark (``bench_engine.py``) says *how much* value is left; this one says
*where*: it trains the recommender exactly as the engine benchmark does (same simulated
histories, same 2,000 new patients) and splits the regret

* **by plan component** — the value if one component of each recommended plan were the
  oracle's and the rest stayed as recommended (massage sessions and intensity move
  together), and the mean dose difference recommended − oracle;
* **by patient group** — regret per activity level, pain cause and region, relative to
  the average regret.

The first is what an engineer needs before changing the engine: a component whose fix
recovers little is not where the loss is.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from bench_engine import SCENARIOS, _data, machine  # noqa: E402
from doc_sections import measured_header  # noqa: E402

from recommender.safety.plans import (  # noqa: E402
    EXERCISE,
    M_LEVEL,
    M_SESSIONS,
    MINUTES,
    TRAINING,
    WEEKS,
)

# (label, encoded plan columns swapped together; the first is the dose reported)
COMPONENTS = (("massage", (M_SESSIONS, M_LEVEL)), ("muscle training", (TRAINING,)),
              ("own exercise", (EXERCISE,)), ("minutes", (MINUTES,)), ("weeks", (WEEKS,)))
GROUPS = ("activity_level", "pain_cause", "pain_region")
OUT = ROOT / "docs" / "benchmarks-losses.md"


def component_swaps(value_of, recommended: np.ndarray, oracle: np.ndarray) -> dict[str, float]:
    """Mean value of the recommended plans with each component replaced by the oracle's.

    ``value_of(plans)`` gives each patient's exact expected value under ``plans`` (paired)."""
    out = {}
    for label, cols in COMPONENTS:
        swapped = recommended.copy()
        swapped[:, cols] = oracle[:, cols]
        out[label] = float(np.mean(value_of(swapped)))
    return out


def group_regret(regret: np.ndarray, labels: np.ndarray) -> dict[str, dict]:
    """Mean regret per group and its ratio to the overall mean (share of patients too)."""
    overall = float(regret.mean())
    out = {}
    for g in np.unique(labels):
        mean = float(regret[labels == g].mean())
        out[str(g)] = {"share": float(np.mean(labels == g)), "regret": mean,
                       "ratio": mean / overall if overall else float("nan")}
    return out


def run(scenario: str) -> dict:
    from recommender.model.engine import TreatmentRecommender
    from recommender.safety.plans import PLAN_SPACE, encode_frame

    n, train_seed, test_seed = SCENARIOS[scenario]
    train, cohort, test = _data(scenario, n, train_seed, test_seed)
    model = TreatmentRecommender().fit(train)
    plans = np.array([r.best.plan.encode() for r in model.recommend_frame(test)])
    best_idx, best_value = cohort.oracle()
    oracle_plans = PLAN_SPACE.matrix[best_idx]
    hist = cohort.expected_reduction(encode_frame(cohort.episodes), paired=True)
    value = cohort.expected_reduction(plans, paired=True)
    span = best_value.mean() - hist.mean()

    def norm(v: float) -> float:
        return float((v - hist.mean()) / span)

    swaps = component_swaps(lambda p: cohort.expected_reduction(p, paired=True), plans, oracle_plans)
    regret = best_value - value
    return {
        "scenario": scenario, "n_train": n, "normalised_value": norm(value.mean()),
        "regret": float(regret.mean()),
        "component_fixed": {k: norm(v) for k, v in swaps.items()},
        "dose_difference": {label: float(np.mean(plans[:, cols[0]] - oracle_plans[:, cols[0]]))
                            for label, cols in COMPONENTS},
        "groups": {g: group_regret(regret, test[g].astype(str).to_numpy()) for g in GROUPS},
    }


def render(results: list[dict], info: dict, command: str) -> str:
    lines = measured_header("Where the recommender loses", info, command) + [
        "Same training histories and 2,000 new patients as `docs/benchmarks.md`. Normalised value:",
        "0 = the therapists' historical plans, 1 = the best allowed plan (the oracle).",
        "",
        "## Value if one component were the oracle's",
        "",
        "Each recommended plan keeps every other component; massage sessions and intensity move",
        "together. The bigger the step from *as recommended*, the more of the loss is in that",
        "component. In brackets: mean dose recommended − oracle (sessions, days, minutes, weeks).",
        "",
        "| scenario | as recommended | " + " | ".join(label for label, _ in COMPONENTS) + " |",
        "|---|---|" + "---|" * len(COMPONENTS),
    ]
    for r in results:
        cells = [f"{r['component_fixed'][label]:.3f} ({r['dose_difference'][label]:+.2f})"
                 for label, _ in COMPONENTS]
        lines.append(f"| {r['scenario']} | {r['normalised_value']:.3f} | " + " | ".join(cells) + " |")
    lines += ["", "## Regret by patient group", "",
              "Mean regret (NRS points) of each group and its ratio to the scenario's average; the three",
              "groups with the highest ratio per grouping (groups under 3 % of patients left out).", "",
              "| scenario | average regret | " + " | ".join(GROUPS) + " |",
              "|---|---|" + "---|" * len(GROUPS)]
    for r in results:
        cells = []
        for g in GROUPS:
            rows = [(k, v) for k, v in r["groups"][g].items() if v["share"] >= 0.03]
            rows.sort(key=lambda kv: -kv[1]["ratio"])
            cells.append(", ".join(f"{k} {v['ratio']:.2f}×" for k, v in rows[:3]))
        lines.append(f"| {r['scenario']} | {r['regret']:.3f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--jobs", type=int, default=1, help="scenarios run at once (one process each)")
    args = parser.parse_args()
    with mp.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
        results = pool.map(run, args.scenarios, chunksize=1)
    for r in results:
        print(json.dumps(r), flush=True)
    threads = os.environ.get("OMP_NUM_THREADS")
    command = ((f"OMP_NUM_THREADS={threads} " if threads else "") + "python benchmarks/bench_losses.py"
               + (f" --jobs {args.jobs}" if args.jobs > 1 else ""))
    Path(args.out).write_text(render(results, machine(), command))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
