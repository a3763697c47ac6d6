"""The ``recommender`` command line: one sub-command per data-staff or supervisor task.

Exit codes: 0 success, 1 the input or action was refused (with a report),
2 usage errors (argparse's own convention).  Heavy libraries load only inside
the command that needs them, so ``recommender --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    from recommender.cli import admin, data, worker

    parser = argparse.ArgumentParser(prog="recommender", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    data.register(sub)
    admin.register(sub)
    worker.register(sub)
    return parser


def _refusal(exc: Exception, args: argparse.Namespace) -> str | None:
    """The message for an error that is a refusal with a reason (None: a bug, re-raised)."""
    from recommender.contract.csv_io import ContractFileError
    from recommender.safety.gate import GateViolation
    from recommender.services import InputRejected
    from recommender.storage.audit import AuditUnavailable
    from recommender.storage.database import DatabaseOutOfDate

    if isinstance(exc, ContractFileError) and getattr(args, "file", None):
        return f"error: {args.file}: {exc}"
    if isinstance(exc, InputRejected):
        return "\n".join([f"error: {exc}", *(f"  {e}" for e in exc.errors)])
    # bad values, denied or failed sign-in, unsafe plan, old schema, a refused artifact,
    # an audit trail that refuses writes, a file that cannot be read or written
    if isinstance(exc, (ContractFileError, ValueError, PermissionError, OSError, GateViolation,
                        DatabaseOutOfDate, AuditUnavailable)):
        return f"error: {exc}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from recommender.cli.admin import UsageError

    try:
        return args.handler(args)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"recommender: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        message = _refusal(exc, args)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 1
