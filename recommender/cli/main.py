"""The ``recommender`` command line: one sub-command per data-staff task.

Exit codes: 0 success, 1 the input or action was refused (with a report),
2 usage errors (argparse's own convention).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from recommender.contract.csv_io import ContractFileError
from recommender.safety.gate import GateViolation
from recommender.services import InputRejected
from recommender.storage.database import DatabaseOutOfDate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recommender", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from recommender.cli import admin, data

    data.register(sub)
    admin.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ContractFileError as exc:
        print(f"error: {getattr(args, 'file', '')}: {exc}".replace(": : ", ": "), file=sys.stderr)
        return 1
    except InputRejected as exc:
        print(f"error: {exc}", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    # refusals with a reason: bad values, denied or failed sign-in, unsafe plan, old schema,
    # an artifact that fails verification
    except (ValueError, PermissionError, FileNotFoundError, GateViolation, DatabaseOutOfDate) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

