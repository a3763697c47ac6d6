"""Sub-commands on the clinic database: schema, users, models, audit, export.

Commands that act on the database sign in first (``--user``; the password from
``$RECOMMENDER_PASSWORD`` or a prompt), so the CLI is held to the same roles
and audit trail as the app.  The one exception is creating the first
administrator of an empty database.
"""

from __future__ import annotations

import argparse
import getpass

from recommender.services.identity import SYSTEM, Actor
from recommender.settings import get_settings


def _service(args):
    from recommender.services import open_service

    return open_service(getattr(args, "database_url", None))


def _sign_in(service, args) -> Actor:
    if not args.user:
        raise ValueError("this command needs --user NAME (a signed-in account)")
    secret = get_settings().password
    password = secret.get_secret_value() if secret else getpass.getpass(f"password for {args.user}: ")
    return service.sign_in(args.user, password)


def _new_password(args) -> str:
    secret = get_settings().new_password
    return secret.get_secret_value() if secret else getpass.getpass("new password: ")


def cmd_db_upgrade(args) -> int:
    from recommender.storage.database import Database

    db = Database(args.database_url)
    print(f"database at schema revision {db.upgrade()} ({db.url.split('@')[-1]})")
    return 0


def cmd_users(args) -> int:
    service = _service(args)
    if args.action == "add" and not service.has_users():
        if args.role != "admin":
            raise ValueError("the first account of an empty database must be an admin")
        actor = SYSTEM
    else:
        actor = _sign_in(service, args)
    if args.action == "add":
        service.add_user(actor, args.username, args.role, _new_password(args))
    elif args.action == "disable":
        service.disable_user(actor, args.username)
    elif args.action == "enable":
        service.enable_user(actor, args.username)
    elif args.action == "reset-password":
        service.reset_password(actor, args.username, _new_password(args))
    elif args.action == "list":
        print(service.list_users(actor).to_string(index=False))
        return 0
    print(f"user {args.username}: {args.action} done")
    return 0


def cmd_models(args) -> int:
    service = _service(args)
    actor = _sign_in(service, args)
    if args.action == "list":
        frame = service.model_versions(actor)
        print(frame.to_string(index=False) if len(frame) else "no model versions yet")
    elif args.action == "register":
        print(f"registered version {service.register_artifact(actor, args.target)}")
    elif args.action == "promote":
        verdict = service.promote(actor, int(args.target), force=args.force, reason=args.reason or "")
        now = service.current_version()
        print(f"promotion gate: {verdict.message}")
        print(f"current model: v{now.version}" if now else "no current model")
        return 0 if (verdict.passed or args.force) else 1
    elif args.action == "rollback":
        print(f"current model is now v{service.rollback(actor, reason=args.reason or '')}")
    return 0


def cmd_audit(args) -> int:
    service = _service(args)
    actor = _sign_in(service, args)
    if args.action == "verify":
        result = service.verify_audit(actor)
        print(result)
        return 0 if result.ok else 1
    n = service.export_audit(actor, args.out)
    print(f"wrote {n} audit event(s) to {args.out}")
    return 0


def cmd_export_training(args) -> int:
    service = _service(args)
    actor = _sign_in(service, args)
    print(f"wrote {service.export_training(actor, args.out)} episode(s) to {args.out}")
    return 0


def register(sub) -> None:
    def common(p: argparse.ArgumentParser, user: bool = True) -> None:
        p.add_argument("--database-url", default=None,
                       help="default: $RECOMMENDER_DATABASE_URL, else SQLite under data/")
        if user:
            p.add_argument("--user", default=None, help="account to act as")

    p = sub.add_parser("db", help="database schema")
    p.add_argument("action", choices=["upgrade"])
    common(p, user=False)
    p.set_defaults(handler=cmd_db_upgrade)

    p = sub.add_parser("users", help="manage accounts (admin)")
    p.add_argument("action", choices=["add", "disable", "enable", "reset-password", "list"])
    p.add_argument("username", nargs="?", default="")
    p.add_argument("--role", choices=["therapist", "data_staff", "supervisor", "admin"], default="therapist")
    common(p)
    p.set_defaults(handler=cmd_users)

    p = sub.add_parser("models", help="model registry: list, register, promote, rollback")
    p.add_argument("action", choices=["list", "register", "promote", "rollback"])
    p.add_argument("target", nargs="?", help="version (promote) or artifact path (register)")
    p.add_argument("--force", action="store_true", help="supervisor: promote despite the gate")
    p.add_argument("--reason", default=None)
    common(p)
    p.set_defaults(handler=cmd_models)

    p = sub.add_parser("audit", help="verify or export the audit trail (supervisor)")
    p.add_argument("action", choices=["verify", "export"])
    p.add_argument("out", nargs="?", help="CSV path for export")
    common(p)
    p.set_defaults(handler=cmd_audit)

    p = sub.add_parser("export-training", help="write a contract training file from recorded episodes")
    p.add_argument("out")
    common(p)
    p.set_defaults(handler=cmd_export_training)

