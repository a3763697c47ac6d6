"""Benchmark the recommender against the guideline plan and two learned peers, on every
scenario of the simulator (the foreign one included), with the caution settings swept.

    python benchmarks/bench_engine.py            # writes docs/benchmarks.md
    python benchmarks/bench_engine.py --quick    # smaller, for a smoke run

Each method runs in a fresh process (so peak RSS is its own: the simulated data
plus the method), is trained on a simulated clinic history and scored on 2,000
new patients of the same clinic against the simulator's exact expected outcomes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("recommender", "guideline", "hgb_s_learner", "causal_forest_dml")
def _scenarios() -> dict[str, tuple[int, int, int]]:
    """name: (train episodes, train seed, test seed) for every simulator scenario."""
    from recommender.devtools.simulator import SCENARIOS as SIMULATED

    seeds = {"large_clinic": (1, 101), "small_confounded": (2, 102)}
    return {name: (sc.default_episodes, *seeds.get(name, (10 + i, 110 + i)))
            for i, (name, sc) in enumerate(SIMULATED.items())}


SCENARIOS = _scenarios()
# Caution settings swept on every scenario: (caution, switch_z).
CAUTION_GRID = tuple((c, z) for z in (0.0, 0.25, 0.5, 0.75, 1.0)
                     for c in (0.0, 1.0, 2.0, 3.0, 4.0))
N_TEST = 2_000
N_HONESTY = 10_000  # a larger held-out cohort for coverage and DR error (less sampling noise)
N_LATENCY = 50


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _data(scenario: str, n_train: int, train_seed: int, test_seed: int):
    from recommender.contract.csv_io import read_episodes, to_csv_bytes
    from recommender.devtools.simulator import simulate

    train = simulate(n_train, seed=train_seed, scenario=scenario)
    test = simulate(N_TEST, seed=test_seed, scenario=scenario)
    typed_train = read_episodes(to_csv_bytes(train.episodes), "training").frame
    typed_test = read_episodes(to_csv_bytes(test.intakes()), "intake").frame
    return typed_train, test, typed_test


class _Guideline:
    def fit(self, train):
        return self

    def recommend(self, intakes):
        from recommender.model.evaluation import guideline_plans

        return guideline_plans(intakes)


class _HGBSLearner:
    """Intake and plan features in, one gradient-boosted model, argmax over allowed plans."""

    def fit(self, train):
        from sklearn.ensemble import HistGradientBoostingRegressor

        from recommender.model.features import PatientFeaturizer
        from recommender.safety.plans import encode_frame

        obs = train["followup_pain_score"].notna().to_numpy()
        self.featurizer = PatientFeaturizer.fit(train)
        X = np.hstack([self.featurizer.transform(train), encode_frame(train)])[obs]
        y = (train["pain_score"] - train["followup_pain_score"]).to_numpy(float)[obs]
        self.model = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.08,
                                                   random_state=0).fit(X, y)
        return self

    def recommend(self, intakes):
        from recommender.safety import gate
        from recommender.safety.plans import PLAN_SPACE

        grid = PLAN_SPACE.matrix
        Xp = self.featurizer.transform(intakes)
        allowed = gate.allowed_matrix(gate.max_levels(gate.evaluate_frame(intakes)), grid)
        out = np.empty((len(Xp), grid.shape[1]))
        for i in range(len(Xp)):
            scores = self.model.predict(np.hstack([np.repeat(Xp[i:i + 1], len(grid), 0), grid]))
            out[i] = grid[np.argmax(np.where(allowed[i], scores, -np.inf))]
        return out


class _CausalForest:
    """EconML CausalForestDML over a featurised plan vector (components and their squares)."""

    @staticmethod
    def _treat(plans):
        p = np.asarray(plans, float)
        return np.hstack([p, p**2])

    def fit(self, train):
        from econml.dml import CausalForestDML
        from sklearn.ensemble import HistGradientBoostingRegressor
        from sklearn.multioutput import MultiOutputRegressor

        from recommender.model.features import PatientFeaturizer
        from recommender.safety.plans import encode_frame

        obs = train["followup_pain_score"].notna().to_numpy()
        self.featurizer = PatientFeaturizer.fit(train)
        X = self.featurizer.transform(train)[obs]
        T = self._treat(encode_frame(train))[obs]
        y = (train["pain_score"] - train["followup_pain_score"]).to_numpy(float)[obs]
        self.model = CausalForestDML(
            model_y=HistGradientBoostingRegressor(max_iter=100, random_state=0),
            model_t=MultiOutputRegressor(HistGradientBoostingRegressor(max_iter=100, random_state=0)),
            n_estimators=100, min_samples_leaf=20, cv=2, random_state=0,
        ).fit(y, T, X=X)
        return self

    def recommend(self, intakes):
        from recommender.safety import gate
        from recommender.safety.plans import PLAN_SPACE

        grid = PLAN_SPACE.matrix
        theta = self.model.const_marginal_effect(self.featurizer.transform(intakes))  # (n, d_T)
        theta = theta.reshape(len(intakes), -1)
        scores = theta @ self._treat(grid).T
        allowed = gate.allowed_matrix(gate.max_levels(gate.evaluate_frame(intakes)), grid)
        return grid[np.argmax(np.where(allowed, scores, -np.inf), axis=1)]


class _Ours:
    def fit(self, train):
        from recommender.model.engine import TreatmentRecommender

        self.model = TreatmentRecommender().fit(train)
        return self

    def recommend(self, intakes):
        self.recs = self.model.recommend_frame(intakes)
        return np.array([r.best.plan.encode() for r in self.recs])

    def recommend_one(self, intake: dict):
        return self.model.recommend(intake)


def _make(method: str):
    return {"recommender": _Ours, "guideline": _Guideline, "hgb_s_learner": _HGBSLearner,
            "causal_forest_dml": _CausalForest}[method]()


def run_method(method: str, scenario: str, n_train: int, train_seed: int, test_seed: int) -> dict:
    """Train, recommend and score one method (runs in its own process)."""
    from recommender.safety import gate
    from recommender.safety.plans import encode_frame

    train, cohort, test = _data(scenario, n_train, train_seed, test_seed)
    runner = _make(method)
    t0 = time.perf_counter()
    runner.fit(train)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    plans = runner.recommend(test)
    batch_s = time.perf_counter() - t0

    rows = test.to_dict("records")
    latencies = []
    for i in range(N_LATENCY):
        t0 = time.perf_counter()
        if method == "recommender":
            runner.recommend_one(rows[i])
        else:
            runner.recommend(test.iloc[[i]])
        latencies.append(time.perf_counter() - t0)

    value = cohort.expected_reduction(plans, paired=True)
    hist = cohort.expected_reduction(encode_frame(cohort.episodes), paired=True)
    _, oracle = cohort.oracle()
    result = {
        "method": method, "scenario": scenario, "n_train": n_train,
        "value": float(value.mean()), "historical": float(hist.mean()), "oracle": float(oracle.mean()),
        "normalised_value": float((value.mean() - hist.mean()) / (oracle.mean() - hist.mean())),
        "regret": float(oracle.mean() - value.mean()),
        "harmed_share": float(np.mean(value < hist - 1.0)),
        "gate_violations": int(gate.violations(test, plans).sum()),
        "fit_s": fit_s, "batch_s": batch_s,
        "latency_ms_median": float(np.median(latencies) * 1000),
        "peak_rss_mb": _peak_rss_mb(),
    }
    if method == "recommender":
        result["selection"] = runner.model.estimator_.selection_
        result["stack_selection"] = runner.model.estimator_.stack_selection_
        result["caution_sweep"] = _caution_sweep(runner, cohort, test, hist, oracle)
        result.update(_honesty(runner, scenario, test_seed + 1000))
    return result


def _caution_sweep(runner: "_Ours", cohort, test, hist, oracle) -> list[dict]:
    """Normalised value and harm of the same fitted model at each caution setting."""
    model = runner.model
    default = model.get_params()
    out = []
    for caution, switch_z in CAUTION_GRID:
        model.set_params(caution=caution, switch_z=switch_z)
        plans = np.array([r.best.plan.encode() for r in model.recommend_frame(test)])
        value = cohort.expected_reduction(plans, paired=True)
        out.append({"caution": caution, "switch_z": switch_z,
                    "normalised_value": float((value.mean() - hist.mean()) / (oracle.mean() - hist.mean())),
                    "harmed_share": float(np.mean(value < hist - 1.0))})
    model.set_params(caution=default["caution"], switch_z=default["switch_z"])
    return out


def _honesty(runner: _Ours, scenario: str, seed: int) -> dict:
    """On N_HONESTY new patients: interval coverage for observed and recommended plans, and
    the doubly-robust policy value against the exact one."""
    from recommender.contract.csv_io import read_episodes, to_csv_bytes
    from recommender.devtools.simulator import simulate
    from recommender.model.evaluation import DoublyRobust
    from recommender.safety.plans import encode_frame

    cohort = simulate(N_HONESTY, seed=seed, scenario=scenario)
    episodes = read_episodes(to_csv_bytes(cohort.episodes), "training").frame
    recs = runner.model.recommend_frame(episodes)
    plans = np.array([r.best.plan.encode() for r in recs])
    preds = runner.model.predict_paired(episodes, encode_frame(episodes))
    obs = episodes["followup_pain_score"].notna().to_numpy()
    y = (episodes["pain_score"] - episodes["followup_pain_score"]).to_numpy(float)
    cover_obs = np.mean((y[obs] >= preds["low"][obs]) & (y[obs] <= preds["high"][obs]))
    sampled = cohort.sample_outcomes(plans, seed=7)
    low = np.array([r.best.interval_low for r in recs])
    high = np.array([r.best.interval_high for r in recs])
    cover_rec = np.mean((sampled >= low) & (sampled <= high))
    dr = DoublyRobust(runner.model, episodes).value(plans)
    # the same estimate with the simulator's true P(followed up): separates the estimator's
    # own error from what outcome-dependent loss to follow-up costs (not identifiable)
    dr_true = DoublyRobust(runner.model, episodes, cohort.followup_probability()).value(plans)
    exact = cohort.expected_reduction(plans, paired=True).mean()
    return {"coverage_observed": float(cover_obs), "coverage_recommended": float(cover_rec),
            "dr_estimate": dr["estimate"], "dr_ci": [dr["ci_low"], dr["ci_high"]],
            "dr_exact": float(exact), "dr_error": float(dr["estimate"] - exact),
            "dr_error_true_followup": float(dr_true["estimate"] - exact),
            "fallback_share": float(np.mean([r.fallback for r in recs]))}


def _in_child(args) -> dict:
    return run_method(*args)


def scale_run(n: int, recommend: bool = False) -> dict:
    """`recommender simulate` then `recommender train` end to end, as a data-staff user would;
    with ``recommend``, also `recommender recommend` for 2,000 new patients (Python start
    included)."""
    def cli(*args: str) -> tuple[float, float]:
        code = (f"import resource, sys; from recommender.cli import main; rc = main({list(args)!r}); "
                f"print('PEAK_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); "
                f"sys.exit(rc)")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr)
        return seconds, int(proc.stderr.rsplit("PEAK_KB", 1)[1].split()[0]) / 1024

    with tempfile.TemporaryDirectory() as tmp:
        csv, model = Path(tmp) / "history.csv", str(Path(tmp) / "m.joblib")
        subprocess.run([sys.executable, "-m", "recommender.cli", "simulate", "--episodes", str(n),
                        "--seed", "5", "--out", str(csv)], check=True, capture_output=True)
        size_mb = csv.stat().st_size / 1e6
        train_s, peak = cli("train", str(csv), "--out", model, "--max-mb", "2000")
        result = {"episodes": n, "csv_mb": size_mb, "train_s": train_s, "peak_rss_mb": peak}
        if recommend:
            intake = Path(tmp) / "intake.csv"
            subprocess.run([sys.executable, "-m", "recommender.cli", "simulate", "--episodes",
                            str(N_TEST), "--seed", "6", "--out", str(intake)], check=True,
                           capture_output=True)
            result["recommend_s"], result["recommend_rss_mb"] = cli(
                "recommend", str(intake), "--model", model, "--out", str(Path(tmp) / "rec.csv"))
    return result


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import sklearn

    return {"cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "scikit-learn": sklearn.__version__, "date": dt.date.today().isoformat(),
            "threads": os.environ.get("OMP_NUM_THREADS", "default"),
            "load": os.getloadavg()[1]}


def load_note(load: float, cores: int) -> str:
    """What the 5-minute load average at the end says about the timings beside it."""
    if load > cores:
        return (f"5-minute load average {load:.1f} at the end, above the {cores} cores: other work "
                "shared the machine")
    return f"5-minute load average {load:.1f} at the end, within the {cores} cores"


def render(results: list[dict], scale: list[dict], command: str, info: dict) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Measured on {info['date']} on this project's machine: {info['cores']} cores ({info['cpu']}),",
        f"Python {info['python']}, scikit-learn {info['scikit-learn']}, OpenMP/BLAS threads "
        f"{info['threads']}; {load_note(info['load'], info['cores'])}. Reproduce with:",
        "",
        "```bash",
        command,
        "```",
        "",
        "Each method is trained on a simulated clinic history and recommends for 2,000 new",
        "patients of the same clinic; values are the simulator's exact expected pain reduction",
        "(NRS points). Normalised value: 0 = the therapists' historical plans, 1 = the oracle.",
        "Harmed: share of patients whose plan is > 1 point worse than their therapist's.",
        "Peak RSS is the whole benchmark child process (simulated data included).",
        "Scenarios are described in `docs/simulator.md`; `foreign_clinic` shares no functional",
        "form with the others. Timings are on this machine; the load average above says whether",
        "other work shared it.",
        "Where the remaining loss lies (by plan component and patient group) is in",
        "`docs/benchmarks-losses.md` (`python benchmarks/bench_losses.py`); how much these figures",
        "move with the training history drawn, in `docs/benchmarks-seeds.md`",
        "(`python benchmarks/bench_seeds.py`).",
        "",
    ]
    lines += _summary(results)
    for scenario in SCENARIOS:
        rows = [r for r in results if r["scenario"] == scenario]
        if not rows:
            continue
        r0 = rows[0]
        lines += [
            f"## {scenario} ({r0['n_train']:,} training episodes)",
            "",
            f"Historical plans {r0['historical']:.3f}, oracle {r0['oracle']:.3f}.",
            "",
            "| method | value | normalised | regret | harmed | gate violations | fit s | batch 2,000 s | one patient ms (median) | peak RSS MB |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r['method']} | {r['value']:.3f} | {r['normalised_value']:.3f} | {r['regret']:.3f} "
                f"| {r['harmed_share']:.2%} | {r['gate_violations']} | {r['fit_s']:.1f} | "
                f"{r['batch_s']:.2f} | {r['latency_ms_median']:.1f} | {r['peak_rss_mb']:.0f} |")
        ours = next((r for r in rows if r["method"] == "recommender"), None)
        if ours:
            lines += [
                "",
                f"Recommender honesty, on {N_HONESTY:,} further held-out patients: 90 % intervals "
                f"cover {ours['coverage_observed']:.1%} of observed outcomes and "
                f"{ours['coverage_recommended']:.1%} of outcomes simulated under the recommended "
                f"plans; doubly-robust value of the recommended plans {ours['dr_estimate']:.3f} "
                f"(95 % CI {ours['dr_ci'][0]:.3f}–{ours['dr_ci'][1]:.3f}) vs exact "
                f"{ours['dr_exact']:.3f} (error {ours['dr_error']:+.3f}; "
                f"{ours['dr_error_true_followup']:+.3f} with the simulator's true follow-up "
                f"probabilities in place of the learned ones); guideline fallback for "
                f"{ours['fallback_share']:.1%} of patients. Effect model chosen by cross-fitted "
                f"policy value: `{ours['selection']['chosen']}` ({ours['selection']['reason']}); "
                f"weight of the direct (boosted) model in the stacked ranking "
                f"{ours['stack_selection']['chosen']:g} ({ours['stack_selection']['reason']}).",
            ]
        lines.append("")
    lines += _caution_table(results)
    if scale:
        lines += scale_section(scale)
    return "\n".join(lines)


def scale_section(scale: list[dict]) -> list[str]:
    """The "Training at scale" section (also rewritten alone by ``--only-scale``)."""
    lines = [SCALE_HEADING, "",
             "| episodes | CSV MB | seconds | peak RSS MB |", "|---|---|---|---|"]
    lines += [f"| {s['episodes']:,} | {s['csv_mb']:.0f} | {s['train_s']:.1f} | {s['peak_rss_mb']:.0f} |"
              for s in scale]
    for s in scale:
        if "recommend_s" in s:
            lines += ["", f"`recommender recommend` for {N_TEST:,} new patients with the "
                      f"{s['episodes']:,}-episode model: {s['recommend_s']:.1f} s end to end "
                      f"(Python start and CSV read and write included), peak RSS "
                      f"{s['recommend_rss_mb']:.0f} MB."]
    lines.append("")
    return lines


def _summary(results: list[dict]) -> list[str]:
    """One row per scenario: the recommender beside the best peer and the guideline."""
    lines = ["## Summary (normalised value; harmed share in brackets)", "",
             "| scenario | episodes | recommender | guideline | hgb_s_learner | causal_forest_dml | effect model chosen (stack weight) |",
             "|---|---|---|---|---|---|---|"]
    for scenario in SCENARIOS:
        rows = {r["method"]: r for r in results if r["scenario"] == scenario}
        if not rows:
            continue
        cells = [f"{rows[m]['normalised_value']:.3f} ({rows[m]['harmed_share']:.2%})" if m in rows else "–"
                 for m in METHODS]
        ours = rows.get("recommender")
        chosen = (f"`{ours['selection']['chosen']}` ({ours['stack_selection']['chosen']:g})"
                  if ours else "–")
        n = next(iter(rows.values()))["n_train"]
        lines.append(f"| {scenario} | {n:,} | " + " | ".join(cells) + f" | {chosen} |")
    return lines + [""]


def caution_grid_table(names: list[str], values: np.ndarray, harms: np.ndarray,
                       chosen: int | None = None, vs_best: list[str] | None = None) -> list[str]:
    """Normalised value (harmed share) per scenario at each caution setting, with the mean
    over scenarios; ``values`` and ``harms`` are (scenarios × settings). ``chosen`` marks one
    setting in bold, ``vs_best`` adds a column of ready-made cells."""
    head = "| caution | switch_z | " + " | ".join(names) + " | mean |"
    lines = [head + (" vs best |" if vs_best else ""),
             "|---|---|" + "---|" * (len(names) + 1 + bool(vs_best))]
    for j, (c, z) in enumerate(CAUTION_GRID):
        mark = "**" if j == chosen else ""
        cells = [f"{values[i, j]:.3f} ({harms[i, j]:.2%})" for i in range(len(names))]
        lines.append(f"| {mark}{c}{mark} | {mark}{z}{mark} | " + " | ".join(cells)
                     + f" | {values[:, j].mean():.3f} |" + (f" {vs_best[j]} |" if vs_best else ""))
    return lines


def _caution_table(results: list[dict]) -> list[str]:
    """Normalised value and harm at each caution setting, per scenario, and the setting a
    leave-one-scenario-out choice would make (the best mean on the other scenarios)."""
    ours = [r for r in results if r["method"] == "recommender" and "caution_sweep" in r]
    if not ours:
        return []
    names = [r["scenario"] for r in ours]
    lines = ["## Caution (ranking by mean − caution × sd; leave the guideline only when the gain "
             "exceeds switch_z × its sd)", "",
             "Normalised value (harmed share) of one fitted model per scenario at each setting (the",
             "model is fitted at the engine's default and ranked again at each setting). One history is",
             "one draw: the default is chosen over several histories of every scenario (ten of each",
             "clinic up to 5,000 episodes, three of each larger one), in `docs/benchmarks-seeds.md`.", ""]
    values = np.array([[s["normalised_value"] for s in r["caution_sweep"]] for r in ours])  # (scen, set)
    harms = np.array([[s["harmed_share"] for s in r["caution_sweep"]] for r in ours])
    lines += caution_grid_table(names, values, harms)
    loso = []
    for i, name in enumerate(names):
        others = np.delete(values, i, axis=0).mean(axis=0)
        j = int(np.argmax(others))
        loso.append(f"{name}: ({CAUTION_GRID[j][0]}, {CAUTION_GRID[j][1]}) → {values[i, j]:.3f}")
    lines += ["", "Leave-one-scenario-out choice (best mean on the other scenarios, scored on the "
              "held-out one): " + "; ".join(loso) + ".", ""]
    return lines


SCALE_HEADING = "## Training at scale (`recommender train` end to end, CSV read included)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes; no scale run")
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--no-scale", action="store_true",
                        help="skip the CLI scale runs; --out keeps its previous scale section")
    parser.add_argument("--only-scale", action="store_true",
                        help="run only the CLI scale runs and rewrite only that section of --out")
    parser.add_argument("--scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    if args.only_scale:
        return only_scale(Path(args.out))
    jobs = []
    for scenario in args.scenarios:
        n, train_seed, test_seed = SCENARIOS[scenario]
        n = min(n, 3000) if args.quick else n
        jobs += [(m, scenario, n, train_seed, test_seed) for m in args.methods]
    ctx = mp.get_context("spawn")
    results = []
    for job in jobs:  # one fresh process per method: clean timings and peak memory
        with ctx.Pool(1, maxtasksperchild=1) as pool:
            result = pool.apply(_in_child, (job,))
        print(json.dumps(result), flush=True)
        results.append(result)
    scale = []
    if not (args.quick or args.no_scale):
        for n in (20_000, 200_000):
            scale.append(scale_run(n, recommend=n == 20_000))
            print(json.dumps(scale[-1]), flush=True)
    threads = os.environ.get("OMP_NUM_THREADS")
    command = ((f"OMP_NUM_THREADS={threads} " if threads else "") + "python benchmarks/bench_engine.py"
               + (" --quick" if args.quick else ""))
    if args.quick:
        print(render(results, scale, command, machine()))
    else:
        write_keeping_scale(Path(args.out), render(results, scale, command, machine()))
        print(f"wrote {args.out}")
    return 0


def write_keeping_scale(out: Path, text: str) -> None:
    """Write ``text`` to ``out``; if it has no scale section (``--no-scale``), keep the one
    ``out`` already had, marked as measured by an earlier run, rather than lose it."""
    from doc_sections import read_section, write_section

    heading = SCALE_HEADING[3:]
    previous = None if f"\n{SCALE_HEADING}\n" in text else read_section(out, heading)
    out.write_text(text)
    if previous:
        note = ("Kept from an earlier run (this one used `--no-scale`): measured then, not on "
                "the date at the top.")
        body = previous if note in previous else f"{previous}\n\n{note}"
        write_section(out, heading, body)


def only_scale(out: Path) -> int:
    """The scale runs alone (they need a quiet machine more than the scenarios do)."""
    from doc_sections import write_section

    scale = []
    for n in (20_000, 200_000):
        scale.append(scale_run(n, recommend=n == 20_000))
        print(json.dumps(scale[-1]), flush=True)
    lines = scale_section(scale)
    body = "\n".join(lines[2:]).strip() + (
        f"\n\nThis section measured on {dt.date.today().isoformat()} on this {os.cpu_count()}-core machine "
        "with `OMP_NUM_THREADS=1 python benchmarks/bench_engine.py "
        f"--only-scale` (5-minute load average {os.getloadavg()[1]:.1f} at the end).")
    write_section(out, SCALE_HEADING[3:], body)
    print(f"wrote the scale section of {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
