"""How much the engine benchmark's figures move with the training history drawn.

    OMP_NUM_THREADS=1 python benchmarks/bench_seeds.py --jobs 2   # writes docs/benchmarks-seeds.md

``bench_engine.py`` trains once per scenario, on one simulated history. A clinic's history
is one draw too, so a single figure says little about whether a target is met: this
benchmark retrains the recommender on ``--seeds`` histories of each scenario (the first is
``bench_engine.py``'s own, so its figures reappear) and scores every model on the same
2,000 new patients and the same 10,000-patient honesty cohort. It reports each figure's
mean, spread and worst case over the histories.
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

from bench_engine import N_HONESTY, N_TEST, SCENARIOS, _data, _honesty, machine  # noqa: E402
from doc_sections import measured_header  # noqa: E402

OUT = ROOT / "docs" / "benchmarks-seeds.md"
SEED_STEP = 1000  # history k is drawn with bench_engine's training seed + k × SEED_STEP
# (label, result key, format) of each figure reported
FIGURES = (("normalised value", "normalised_value", "{:.3f}"),
           ("above the guideline plan", "above_guideline", "{:+.3f}"),
           ("harmed", "harmed_share", "{:.2%}"),
           ("DR error", "dr_error", "{:+.3f}"),
           ("DR error, true follow-up", "dr_error_true_followup", "{:+.3f}"),
           ("coverage (recommended plans)", "coverage_recommended", "{:.1%}"))


class _Fitted:
    """What ``bench_engine._honesty`` needs of a method: its fitted model."""

    def __init__(self, model) -> None:
        self.model = model


def run(job: tuple[str, int]) -> dict:
    """Train on history ``k`` of a scenario; score on the benchmark's fixed patients."""
    from recommender.model.engine import TreatmentRecommender
    from recommender.model.evaluation import guideline_plans
    from recommender.safety.plans import encode_frame

    scenario, k = job
    n, train_seed, test_seed = SCENARIOS[scenario]
    train, cohort, test = _data(scenario, n, train_seed + k * SEED_STEP, test_seed)
    model = TreatmentRecommender().fit(train)
    recs = model.recommend_frame(test)
    plans = np.array([r.best.plan.encode() for r in recs])
    value = cohort.expected_reduction(plans, paired=True)
    hist = cohort.expected_reduction(encode_frame(cohort.episodes), paired=True)
    _, oracle = cohort.oracle()
    guideline = cohort.expected_reduction(guideline_plans(test), paired=True)
    span = oracle.mean() - hist.mean()
    result = {
        "scenario": scenario, "history": k, "n_train": n,
        "normalised_value": float((value.mean() - hist.mean()) / span),
        "above_guideline": float((value.mean() - guideline.mean()) / span),
        "harmed_share": float(np.mean(value < hist - 1.0)),
        "chosen": f"{model.estimator_.selection_['chosen']} ({model.estimator_.stack_weight_:g})",
    }
    honesty = _honesty(_Fitted(model), scenario, test_seed + 1000)
    result.update({key: honesty[key] for key in
                   ("dr_error", "dr_error_true_followup", "coverage_recommended")})
    return result


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample sd (0 for one value), min and max of one figure over the histories."""
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max())}


def render(results: list[dict], info: dict, command: str, n_seeds: int) -> str:
    lines = measured_header("Benchmark figures across training histories", info, command) + [
        f"The recommender is trained on {n_seeds} simulated histories of each scenario (the first is",
        "the one `docs/benchmarks.md` uses) and scored on the same "
        f"{N_TEST:,} new patients (value, harm) and the",
        f"same {N_HONESTY:,}-patient honesty cohort (DR error, coverage). Each cell: mean ± sd over "
        "the histories,",
        "then [min, max]. *Above the guideline plan*: normalised value minus the guideline plan's.",
        "*DR error, true follow-up* is the same doubly-robust estimate with the",
        "simulator's true P(followed up) in place of the learned one: the difference between the",
        "two DR columns is the bias from patients who drop out because of how they are doing.",
        "Normalised value and harm are defined as in `docs/benchmarks.md`.",
        "",
        "| scenario | episodes | " + " | ".join(label for label, _, _ in FIGURES) + " | model chosen per history |",
        "|---|---|" + "---|" * (len(FIGURES) + 1),
    ]
    for scenario in SCENARIOS:
        rows = sorted((r for r in results if r["scenario"] == scenario), key=lambda r: r["history"])
        if not rows:
            continue
        cells = []
        for _, key, fmt in FIGURES:
            s = spread([r[key] for r in rows])
            cells.append(f"{fmt.format(s['mean'])} ± {fmt.format(s['sd']).lstrip('+')} "
                         f"[{fmt.format(s['min'])}, {fmt.format(s['max'])}]")
        chosen = "; ".join(f"`{r['chosen']}`" for r in rows)
        lines.append(f"| {scenario} | {rows[0]['n_train']:,} | " + " | ".join(cells) + f" | {chosen} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--seeds", type=int, default=3, help="training histories per scenario")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (one process each)")
    args = parser.parse_args()
    if args.jobs < 1 or args.seeds < 1:
        parser.error("--jobs and --seeds must be at least 1")
    jobs = [(scenario, k) for scenario in args.scenarios for k in range(args.seeds)]
    results = []
    with mp.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
        for r in pool.imap_unordered(run, jobs):  # each result as it arrives: a long run shows progress
            print(json.dumps(r), flush=True)
            results.append(r)
    threads = os.environ.get("OMP_NUM_THREADS")
    command = ((f"OMP_NUM_THREADS={threads} " if threads else "") + "python benchmarks/bench_seeds.py"
               + (" --scenarios " + " ".join(args.scenarios) if args.scenarios != list(SCENARIOS) else "")
               + (f" --seeds {args.seeds}" if args.seeds != 3 else "")
               + (f" --jobs {args.jobs}" if args.jobs > 1 else ""))
    Path(args.out).write_text(render(results, machine(), command, args.seeds))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
