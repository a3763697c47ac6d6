"""Sub-commands on the clinic database: schema, users, models, audit, export.

Commands that act on the database sign in first (``--user``; the password from
``$RECOMMENDER_PASSWORD`` or a prompt), so the CLI is held to the same roles
and audit trail as the app.  Two exceptions need only access to the server: creating the
first administrator of an empty database, and ``users recover-admin`` when no administrator
can sign in (every admin locked or disabled).
"""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # identity and settings load zxcvbn, argon2 and pydantic: only when used
    from recommender.services.identity import Actor


def _service(args):
    from recommender.services import open_service

    return open_service(getattr(args, "database_url", None))


def _password(args) -> str:
    if not args.user:
        raise ValueError("this command needs --user NAME (a signed-in account)")
    from recommender.settings import get_settings

    secret = get_settings().password
    return secret.get_secret_value() if secret else getpass.getpass(f"password for {args.user}: ")


@contextmanager
def _signed_in(service, args) -> Iterator[Actor]:
    """A session for this one command, ended when it finishes."""
    actor = service.sign_in(args.user, _password(args))
    try:
        _warn_if_published_password(service, actor)
        yield actor
    finally:
        service.sign_out(actor)


def _warn_if_published_password(service, actor: Actor) -> None:
    """On stderr, as the app's sidebar does on every page: this account's password is printed
    in the README."""
    if service.has_published_password(actor):
        print(f"warning: {actor.username} signs in with the password the README prints for it, "
              "so anyone can; disable the demo accounts or reset their passwords (users "
              "reset-password) before real patients' data is entered", file=sys.stderr)


def _new_password(args) -> str:
    from recommender.settings import get_settings

    secret = get_settings().new_password
    return secret.get_secret_value() if secret else getpass.getpass("new password: ")


def cmd_db_upgrade(args) -> int:
    from recommender.services import upgrade_installation

    revision, made = upgrade_installation(args.database_url)
    print(f"database at schema revision {revision}")
    for line in made:
        print(line)
    return 0


def cmd_users(args) -> int:
    service = _service(args)
    if args.action == "add" and not service.has_users():
        if args.role != "admin":
            raise ValueError("the first account of an empty database must be an admin")
        from recommender.services.identity import SYSTEM

        service.add_user(SYSTEM, args.username, args.role, _new_password(args))
        print(f"user {args.username}: add done (the first administrator)")
        return 0
    if args.action == "recover-admin":
        if not args.username:
            raise UsageError("users recover-admin needs the USERNAME of an administrator account")
        service.recover_admin(args.username, _new_password(args) if args.new_password else None,
                              operator=f"{getpass.getuser()}@{socket.gethostname()}")
        print(f"user {args.username}: unlocked"
              + (", password reset" if args.new_password else "") + " (break-glass, audited)")
        return 0
    with _signed_in(service, args) as actor:
        if args.action == "list":
            print(service.list_users(actor).to_string(index=False))
            if demo := service.published_password_accounts(actor):
                print("warning: accounts still signing in with the password the README prints "
                      f"for them: {', '.join(demo)}; disable them or reset their passwords before "
                      "real patients' data is entered", file=sys.stderr)
            return 0
        if not args.username:
            raise UsageError(f"users {args.action} needs a USERNAME")
        if args.action == "add":
            service.add_user(actor, args.username, args.role, _new_password(args))
        elif args.action == "disable":
            service.disable_user(actor, args.username)
        elif args.action == "enable":
            service.enable_user(actor, args.username)
        elif args.action == "reset-password":
            service.reset_password(actor, args.username, _new_password(args))
        elif args.action == "set-role":
            service.set_role(actor, args.username, args.role)
    print(f"user {args.username}: {args.action} done")
    return 0


def cmd_models(args) -> int:
    service = _service(args)
    if args.action == "gc":
        with _signed_in(service, args) as actor:
            removed = service.collect_garbage(actor)
        print(f"removed {len(removed)} orphaned file(s)" + "".join(f"\n  {p}" for p in removed))
        return 0
    with _signed_in(service, args) as actor:
        if args.action == "list":
            frame = service.model_versions(actor)
            print(frame.to_string(index=False) if len(frame) else "no model versions yet")
        elif args.action == "register":
            print(f"registered version {service.register_artifact(actor, args.artifact)}")
        elif args.action == "promote":
            verdict = service.promote(actor, args.version, force=args.force, reason=args.reason or "",
                                      cohort_file=args.cohort)
            now = service.current_version()
            print(f"promotion gate: {verdict.message}")
            print(f"current model: v{now.version}" if now else "no current model")
            return 0 if (verdict.passed or args.force) else 1
        elif args.action == "rollback":
            print(f"current model is now v{service.rollback(actor, reason=args.reason)}")
    return 0


def cmd_audit(args) -> int:
    service = _service(args)
    if args.action == "verify":
        # read-only: signs in without writing, so a tampered head file or trail is seen as it is
        actor = service.authenticate(args.user or "", _password(args))
        _warn_if_published_password(service, actor)
        result = service.verify_audit(actor, record=False)
        print(result)
        if result.ok:
            try:  # the check itself is recorded afterwards, once its result is known
                service.verify_audit(service.sign_in(args.user, _password(args)), record=True)
            except Exception as exc:  # noqa: BLE001 - the verdict above stands either way
                print(f"note: the check could not be recorded: {exc}")
        return 0 if result.ok else 1
    with _signed_in(service, args) as actor:
        n = service.export_audit(actor, args.out)
    print(f"wrote {n} audit event(s) to {args.out}")
    return 0


def cmd_export_training(args) -> int:
    service = _service(args)
    with _signed_in(service, args) as actor:
        n = service.export_training(actor, args.out)
    print(f"wrote {n} episode(s) to {args.out}")
    return 0


def cmd_visits(args) -> int:
    service = _service(args)
    with _signed_in(service, args) as actor:
        n = service.export_visits(actor, args.out)
    print(f"wrote {n} visit record(s) to {args.out} (format: docs/visits-format.md)")
    return 0


class UsageError(ValueError):
    """A command line that is missing something (exit 2, like argparse)."""


def register(sub) -> None:
    from recommender.services.permissions import Role

    def common(p: argparse.ArgumentParser, user: bool = True) -> None:
        p.add_argument("--database-url", default=None,
                       help="default: $RECOMMENDER_DATABASE_URL, else SQLite in "
                            "$RECOMMENDER_DATA_DIR (default ./data)")
        if user:
            p.add_argument("--user", default=None, help="account to act as")

    p = sub.add_parser("db", help="database schema")
    p.add_argument("action", choices=["upgrade"])
    common(p, user=False)
    p.set_defaults(handler=cmd_db_upgrade)

    p = sub.add_parser("users", help="manage accounts (admin)")
    p.add_argument("action", choices=["add", "disable", "enable", "reset-password", "set-role", "list",
                                      "recover-admin"],
                   help="recover-admin: unlock an administrator when no admin can sign in "
                        "(needs only access to this server; audited)")
    p.add_argument("username", nargs="?", default="")
    p.add_argument("--role", choices=[r.value for r in Role], default=Role.THERAPIST.value)
    p.add_argument("--new-password", action="store_true",
                   help="recover-admin: also set a new password ($RECOMMENDER_NEW_PASSWORD or a prompt)")
    common(p)
    p.set_defaults(handler=cmd_users)

    models = sub.add_parser("models", help="model registry: list, register, promote, rollback, gc")
    actions = models.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("list", help="every registered version")
    common(p)
    p = actions.add_parser("register", help="register an artifact this installation trained")
    p.add_argument("artifact", help="model file (its signed card must lie beside it)")
    common(p)
    p = actions.add_parser("promote", help="make a version current, if the promotion gate passes")
    p.add_argument("version", type=int)
    p.add_argument("--cohort", default=None,
                   help="supervisor, with --reason: a training file of held-out episodes to judge on "
                        "instead of the recorded episodes the version was not trained on (the "
                        "default, which nobody picks)")
    p.add_argument("--force", action="store_true", help="supervisor: promote despite the gate")
    p.add_argument("--reason", default=None)
    common(p)
    p = actions.add_parser("rollback", help="return to the version promoted before the current one")
    p.add_argument("--reason", required=True)
    common(p)
    p = actions.add_parser("gc", help="remove orphaned temporary and unregistered registry files")
    common(p)
    for p in actions.choices.values():
        p.set_defaults(handler=cmd_models)

    audit = sub.add_parser("audit", help="verify or export the audit trail (supervisor)")
    actions = audit.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("verify", help="check the hash chain and the head file (writes nothing first)")
    common(p)
    p = actions.add_parser("export", help="write every event as formula-safe CSV")
    p.add_argument("out", help="CSV path")
    common(p)
    for p in actions.choices.values():
        p.set_defaults(handler=cmd_audit)

    p = sub.add_parser("export-training", help="write a contract training file from recorded episodes")
    p.add_argument("out")
    common(p)
    p.set_defaults(handler=cmd_export_training)

    visits = sub.add_parser("visits", help="visit records of the course of care")
    vsub = visits.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = vsub.add_parser("export", help="write every visit record (docs/visits-format.md) as CSV; "
                                       "data staff or supervisor")
    p.add_argument("out")
    common(p)
    p.set_defaults(handler=cmd_visits)
