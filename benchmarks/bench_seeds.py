"""How much the engine benchmark's figures move with the training history drawn.

    OMP_NUM_THREADS=1 python benchmarks/bench_seeds.py --jobs 2   # writes docs/benchmarks-seeds.md

``bench_engine.py`` trains once per scenario, on one simulated history. A clinic's history
is one draw too, so a single figure says little about whether a target is met: this
benchmark retrains the recommender on ``--seeds`` histories of each scenario, ``--small-seeds``
of each clinic of at most ``SMALL_CLINIC`` episodes (the first is ``bench_engine.py``'s own,
so its figures reappear) and scores every model on the same
2,000 new patients and the same 10,000-patient honesty cohort. It reports each figure's
mean, spread and worst case over the histories.

It also sweeps the caution settings on every model and picks the engine's default from them
(:func:`choose_caution`): over many histories the choice is less at the mercy of one draw
than ``bench_engine.py``'s single-history sweep.
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

from bench_engine import (CAUTION_GRID, N_HONESTY, N_TEST, SCENARIOS, _caution_sweep,  # noqa: E402
                          _data, _honesty, caution_grid_table, machine)
from doc_sections import measured_header  # noqa: E402

OUT = ROOT / "docs" / "benchmarks-seeds.md"
# A clinic this small gets --small-seeds histories: its figures spread most from one history to
# the next (a conformal interval calibrated on ~300 episodes covers 90 % ± 2 %) and cost least.
SMALL_CLINIC = 5_000
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
        "followed_up": int(model.summary_.followed_up),
    }
    fitted = _Fitted(model)
    result["caution_sweep"] = _caution_sweep(fitted, cohort, test, hist, oracle)
    honesty = _honesty(fitted, scenario, test_seed + 1000)
    result.update({key: honesty[key] for key in
                   ("dr_error", "dr_error_true_followup", "coverage_recommended")})
    return result


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample sd (0 for one value), min and max of one figure over the histories."""
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max())}


def choose_caution(values: np.ndarray, harms: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """The caution setting to ship, from per-scenario means (scenarios × settings).

    Settings whose mean normalised value (every scenario weighted alike) lies within one
    paired standard error of the best are not told apart by the data; of those, the one
    harming the fewest patients is chosen (the one-standard-error rule, with harm as the
    tie-break because a clinic would). Returns the chosen index, each setting's difference
    from the best mean and that difference's standard error over the scenarios.
    """
    best = int(values.mean(axis=0).argmax())
    diff = values - values[:, [best]]
    se = diff.std(axis=0, ddof=1) / np.sqrt(len(values)) if len(values) > 1 else np.zeros(values.shape[1])
    tied = diff.mean(axis=0) >= -se
    mean_harm = np.where(tied, harms.mean(axis=0), np.inf)
    return int(mean_harm.argmin()), diff.mean(axis=0), se


def caution_table(results: list[dict]) -> list[str]:
    """Value and harm at each caution setting averaged over every history, and the choice
    within each size class of the engine's rule (``setting_for``)."""
    from recommender.model.engine import LARGE_HISTORY, setting_for

    names = [s for s in SCENARIOS if any(r["scenario"] == s and "caution_sweep" in r for r in results)]
    if not names:
        return []
    def per_scenario(key: str) -> np.ndarray:  # (scenarios, settings): mean over histories
        return np.array([np.mean([[c[key] for c in r["caution_sweep"]] for r in results
                                  if r["scenario"] == s], axis=0) for s in names])
    values, harms = per_scenario("normalised_value"), per_scenario("harmed_share")
    followed = np.array([np.mean([r["followed_up"] for r in results if r["scenario"] == s])
                         for s in names])
    lines = ["## Caution over every history", "",
             "Each model above ranked again at each setting (plans by mean − caution × sd; the",
             "guideline plan left only for a gain above switch_z × its sd). Cells: normalised value",
             "(harmed share), each the mean over the histories; *vs best*: the mean over the",
             "class's scenarios minus the best setting's, ± its paired standard error over them.",
             f"The engine's setting depends on the history's size (below {LARGE_HISTORY:,} "
             "followed-up episodes and from there), so it is chosen within each class.", ""]
    classes = ((f"fewer than {LARGE_HISTORY:,} followed-up episodes", followed < LARGE_HISTORY),
               (f"{LARGE_HISTORY:,} followed-up episodes or more", followed >= LARGE_HISTORY))
    for title, members in classes:
        if not members.any():
            continue
        idx = np.flatnonzero(members)
        chosen, diff, se = choose_caution(values[idx], harms[idx])
        c, z = CAUTION_GRID[chosen]
        shipped = setting_for(int(followed[idx].mean()))
        lines += [f"### Histories with {title}", ""]
        lines += caution_grid_table([names[i] for i in idx], values[idx], harms[idx], chosen,
                                    [f"{d:+.4f} ± {e:.4f}" for d, e in zip(diff, se)])
        lines += ["", f"Chosen (bold), by the one-standard-error rule: of the settings within one "
                  f"standard error of the best mean value, the one with the lowest mean harmed share: "
                  f"caution {c}, switch_z {z}. The engine ships caution {shipped[0]}, switch_z "
                  f"{shipped[1]} for these histories"
                  + (" (the same)." if shipped == (c, z) else ": **not the chosen setting**."), ""]
    return lines


def histories(scenario: str, n_seeds: int, n_small_seeds: int) -> int:
    """How many training histories a scenario gets."""
    return n_small_seeds if SCENARIOS[scenario][0] <= SMALL_CLINIC else n_seeds


def render(results: list[dict], info: dict, command: str, n_seeds: int, n_small_seeds: int) -> str:
    lines = measured_header("Benchmark figures across training histories", info, command) + [
        f"The recommender is trained on {n_seeds} simulated histories of each scenario, "
        f"{n_small_seeds} of each with",
        f"at most {SMALL_CLINIC:,} episodes (a thin clinic's figures move most from one history to the",
        "next, and cost least); the first history is the one `docs/benchmarks.md` uses. Every model",
        "is scored on the same "
        f"{N_TEST:,} new patients (value, harm) and the",
        f"same {N_HONESTY:,}-patient honesty cohort (DR error, coverage). Each cell: mean ± sd over "
        "the histories,",
        "then [min, max]. *Above the guideline plan*: normalised value minus the guideline plan's.",
        "*DR error, true follow-up* is the same doubly-robust estimate with the",
        "simulator's true P(followed up) in place of the learned one: the difference between the",
        "two DR columns is the bias from patients who drop out because of how they are doing.",
        "Normalised value and harm are defined as in `docs/benchmarks.md`.",
        "",
        "| scenario | episodes | histories | " + " | ".join(label for label, _, _ in FIGURES)
        + " | model chosen per history |",
        "|---|---|---|" + "---|" * (len(FIGURES) + 1),
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
        lines.append(f"| {scenario} | {rows[0]['n_train']:,} | {len(rows)} | " + " | ".join(cells)
                     + f" | {chosen} |")
    lines += [""] + caution_table(results)
    return "\n".join(lines).rstrip("\n") + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--seeds", type=int, default=3, help="training histories per scenario")
    parser.add_argument("--small-seeds", type=int, default=10,
                        help=f"training histories per scenario of at most {SMALL_CLINIC:,} episodes")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (one process each)")
    parser.add_argument("--rerender", metavar="LOG",
                        help="no training: render the results a run printed (one JSON line each) to LOG")
    args = parser.parse_args()
    if args.jobs < 1 or args.seeds < 1 or args.small_seeds < 1:
        parser.error("--jobs, --seeds and --small-seeds must be at least 1")
    if args.rerender:
        results = [json.loads(line) for line in Path(args.rerender).read_text().splitlines()
                   if line.startswith("{")]
    else:
        # the slowest first, so two processes finish together
        jobs = [(scenario, k) for scenario in sorted(args.scenarios, key=lambda s: -SCENARIOS[s][0])
                for k in range(histories(scenario, args.seeds, args.small_seeds))]
        results = []
        with mp.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
            for r in pool.imap_unordered(run, jobs):  # each as it arrives: a long run shows progress
                print(json.dumps(r), flush=True)
                results.append(r)
    threads = os.environ.get("OMP_NUM_THREADS")
    command = ((f"OMP_NUM_THREADS={threads} " if threads else "") + "python benchmarks/bench_seeds.py"
               + (" --scenarios " + " ".join(args.scenarios) if args.scenarios != list(SCENARIOS) else "")
               + (f" --seeds {args.seeds}" if args.seeds != 3 else "")
               + (f" --small-seeds {args.small_seeds}" if args.small_seeds != 10 else "")
               + (f" --jobs {args.jobs}" if args.jobs > 1 else ""))
    Path(args.out).write_text(render(results, machine(), command, args.seeds, args.small_seeds))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
