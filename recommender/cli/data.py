"""Data commands on contract files: validate, simulate, train, recommend, evaluate.

Heavy libraries are imported inside each command, so ``recommender --help`` stays fast.
"""

from __future__ import annotations

import argparse
import math
import sys


def positive_number(text: str) -> float:
    """argparse type: a finite number above zero (``nan``, ``inf`` and ``-1`` are refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def scenario_name(text: str) -> str:
    """argparse type: a simulator scenario (the simulator loads only when one is named)."""
    from recommender.devtools.simulator import SCENARIOS

    if text not in SCENARIOS:
        raise argparse.ArgumentTypeError(f"unknown scenario {text!r}: one of " + ", ".join(sorted(SCENARIOS)))
    return text


def _add_max_mb(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-mb", type=positive_number, default=None,
                   help="refuse files larger than this many MB (10^6 bytes; default 50, or "
                        "$RECOMMENDER_MAX_FILE_MB)")


def _max_bytes(args: argparse.Namespace) -> int | None:
    from recommender.contract.csv_io import BYTES_PER_MB

    return None if args.max_mb is None else int(args.max_mb * BYTES_PER_MB)


def cmd_validate(args: argparse.Namespace) -> int:
    from recommender.contract.csv_io import read_episodes

    parsed = read_episodes(args.file, args.kind, max_bytes=_max_bytes(args))
    for warning in parsed.report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if parsed.report.valid:
        print(f"{args.file}: valid {args.kind} file, {parsed.report.n_rows} row(s)")
        return 0
    print(f"{args.file}: invalid", file=sys.stderr)
    print(parsed.report.format(), file=sys.stderr)
    return 1


def cmd_simulate(args: argparse.Namespace) -> int:
    from recommender.contract.csv_io import write_csv
    from recommender.devtools.simulator import simulate

    cohort = simulate(args.episodes, seed=args.seed, scenario=args.scenario)
    write_csv(cohort.episodes, args.out)
    lost = int(cohort.episodes["followup_pain_score"].isna().sum())
    print(f"wrote {len(cohort.episodes)} episodes ({args.scenario}, seed {args.seed}, "
          f"{lost} lost to follow-up) to {args.out}")
    return 0


def _read_valid(path: str, kind: str, args: argparse.Namespace):
    """Read a file; refuse it with the full report unless --skip-invalid."""
    from recommender.contract.csv_io import read_episodes

    parsed = read_episodes(path, kind, max_bytes=_max_bytes(args))
    for warning in parsed.report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not parsed.report.valid:
        if not getattr(args, "skip_invalid", False):
            print(f"{path}: invalid (nothing was written; use --skip-invalid to use the valid rows)",
                  file=sys.stderr)
            print(parsed.report.format(), file=sys.stderr)
            return None
        print(f"warning: skipping {len(parsed.report.bad_rows)} invalid row(s):", file=sys.stderr)
        print(parsed.report.format(), file=sys.stderr)
    return parsed


def cmd_train(args: argparse.Namespace) -> int:
    from recommender.model.training import train_from_file

    parsed = _read_valid(args.file, "training", args)
    if parsed is None:
        return 1
    card = train_from_file(args.file, parsed, args.out, seed=args.seed,
                           progress=lambda f, m: print(f"  {f:4.0%} {m}", file=sys.stderr))
    s = card["training"]
    print(f"trained on {s['followed_up']} followed-up episode(s) of {s['valid_rows']} valid row(s) "
          f"({s['lost_to_followup']} lost to follow-up, {s['skipped_invalid_rows']} invalid row(s) "
          f"skipped, {s['contraindicated_history']} historical plan(s) broke a contraindication)")
    for note in s["notes"]:
        print(f"note: {note}")
    print(f"saved {args.out} (sha256 {card['artifact_sha256'][:12]}…) and its model card")
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    from recommender.contract.csv_io import write_csv
    from recommender.model.artifacts import load_model
    from recommender.model.engine import recommendations_frame

    parsed = _read_valid(args.file, "intake", args)
    if parsed is None:
        return 1
    rows = parsed.valid_rows()
    if not len(rows):
        print(f"{args.file}: no valid row to recommend for; nothing was written", file=sys.stderr)
        return 1
    model, card = load_model(args.model)
    recs = model.recommend_frame(rows)
    frame = recommendations_frame(recs)
    frame["model_sha256"] = card["artifact_sha256"]
    write_csv(frame, args.out)
    fallback = sum(r.fallback for r in recs)
    print(f"wrote {len(recs)} recommendation(s) to {args.out} "
          f"({fallback} guideline fallback(s); rule set {recs[0].ruleset_version if recs else '-'})")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from recommender.model.artifacts import load_model
    from recommender.model.evaluation import evaluate, format_report

    parsed = _read_valid(args.file, "training", args)
    if parsed is None:
        return 1
    model, _ = load_model(args.model)
    cohort = None
    if args.simulated:
        from recommender.devtools.simulator import simulate

        cohort = simulate(parsed.report.n_rows, seed=args.seed, scenario=args.simulated)
    report = evaluate(model, parsed.valid_rows(), cohort)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def cmd_contract_doc(args: argparse.Namespace) -> int:
    from recommender.contract.atomic import atomic_write_bytes
    from recommender.contract.document import render_markdown, render_visits_markdown

    text = render_visits_markdown() if args.visits else render_markdown()
    if args.out is None:
        print(text, end="")
        return 0
    atomic_write_bytes(args.out, text.encode("utf-8"))
    print(f"wrote the {'visits file format' if args.visits else 'data contract'} to {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from recommender.devtools.demo import DEMO_ACCOUNTS, seed

    seed(args.database_url, progress=lambda f, m: print(f"  {f:4.0%} {m}", file=sys.stderr),
         episodes=args.episodes)
    print("demo clinic ready; accounts: " + ", ".join(f"{u} / {pw}" for u, _, pw in DEMO_ACCOUNTS))
    return 0


def register(sub) -> None:
    """Add the data commands to the ``recommender`` parser."""
    p = sub.add_parser("validate", help="check a contract CSV file and report every bad row")
    p.add_argument("file")
    p.add_argument("--kind", choices=["intake", "training"], default="training")
    _add_max_mb(p)
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("simulate", help="write a simulated clinic history as a training file")
    p.add_argument("--episodes", type=int, default=None, help="default: the scenario's size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scenario", type=scenario_name, default="large_clinic",
                   help="a scenario of docs/simulator.md (default large_clinic)")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=cmd_simulate)

    p = sub.add_parser("train", help="train a model on a contract training file")
    p.add_argument("file")
    p.add_argument("--out", required=True, help="model path (a .card.json is written beside it)")
    p.add_argument("--skip-invalid", action="store_true", help="train on the valid rows only")
    p.add_argument("--seed", type=int, default=0)
    _add_max_mb(p)
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("recommend", help="recommend a plan for every episode of an intake file")
    p.add_argument("file")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--skip-invalid", action="store_true")
    _add_max_mb(p)
    p.set_defaults(handler=cmd_recommend)

    p = sub.add_parser("evaluate", help="evaluate a model on a held-out training file")
    p.add_argument("file")
    p.add_argument("--model", required=True)
    p.add_argument("--json", action="store_true")
    p.add_argument("--skip-invalid", action="store_true")
    p.add_argument("--simulated", type=scenario_name, default=None, metavar="SCENARIO",
                   help="the file came from `recommender simulate` with this scenario: "
                        "also report exact values")
    p.add_argument("--seed", type=int, default=0, help="with --simulated: the simulation seed")
    _add_max_mb(p)
    p.set_defaults(handler=cmd_evaluate)

    p = sub.add_parser("contract-doc", help="write the data contract document (docs/data-contract.md)")
    p.add_argument("--out", default=None, help="file to write (default: print it)")
    p.add_argument("--visits", action="store_true",
                   help="the visits file format instead (docs/visits-format.md)")
    p.set_defaults(handler=cmd_contract_doc)

    p = sub.add_parser("demo", help="seed the demo clinic into a new, empty database")
    p.add_argument("action", choices=["seed"])
    p.add_argument("--database-url", default=None)
    p.add_argument("--episodes", type=int, default=None, help="simulated past episodes (default 4000)")
    p.set_defaults(handler=cmd_demo)
