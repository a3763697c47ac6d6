"""The ``recommender`` command line: one sub-command per data-staff task.

Exit codes: 0 success, 1 the input or action was refused (with a report),
2 usage errors (argparse's own convention).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from .csv_io import ContractFileError

Handler = Callable[[argparse.Namespace], int]


def _add_max_mb(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-mb", type=float, default=None,
                   help="refuse files larger than this (default 50, or $RECOMMENDER_MAX_FILE_MB)")


def _max_bytes(args: argparse.Namespace) -> int | None:
    return None if args.max_mb is None else int(args.max_mb * 1024 * 1024)


def cmd_validate(args: argparse.Namespace) -> int:
    from .csv_io import read_episodes

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
    from .csv_io import write_csv
    from .simulator import simulate

    cohort = simulate(args.episodes, seed=args.seed, scenario=args.scenario)
    write_csv(cohort.episodes, args.out)
    lost = int(cohort.episodes["followup_pain_score"].isna().sum())
    print(f"wrote {len(cohort.episodes)} episodes ({args.scenario}, seed {args.seed}, "
          f"{lost} lost to follow-up) to {args.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .simulator import SCENARIOS

    parser = argparse.ArgumentParser(prog="recommender", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a contract CSV file and report every bad row")
    p.add_argument("file")
    p.add_argument("--kind", choices=["intake", "training"], default="training")
    _add_max_mb(p)
    p.set_defaults(handler=cmd_validate)

    p = sub.add_parser("simulate", help="write a simulated clinic history as a training file")
    p.add_argument("--episodes", type=int, default=None, help="default: the scenario's size")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scenario", choices=sorted(SCENARIOS), default="large_clinic")
    p.add_argument("--out", required=True)
    p.set_defaults(handler=cmd_simulate)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ContractFileError as exc:
        print(f"error: {getattr(args, 'file', '')}: {exc}".replace(": : ", ": "), file=sys.stderr)
        return 1
    except (ValueError, PermissionError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
