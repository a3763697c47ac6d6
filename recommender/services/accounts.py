"""Sign-in and sessions, and account management (admin)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pandas as pd
from sqlalchemy import func, select

from recommender.contract.validation import RowError
from recommender.services.base import AccessControl, AuditedStore, InputRejected
from recommender.services.identity import (
    MAX_FAILED_ATTEMPTS,
    PUBLISHED_PASSWORDS,
    SYSTEM,
    Actor,
    SignInFailed,
    hash_password,
    is_published_password,
    verify_password,
)
from recommender.services.permissions import Action, Role
from recommender.services.sessions import SessionEnded
from recommender.storage.database import NUL
from recommender.storage.schema import User

USERNAME_MAX_LENGTH = 80
# Plain lower-case ASCII: a name is read in the audit trail and the oversight pages, where
# "Therapist", a Cyrillic "therapіst", a zero-width space or a newline passed for another
# account; "system" and "unknown" are the trail's own actors.
USERNAME_PATTERN = re.compile(rf"[a-z][a-z0-9._-]{{0,{USERNAME_MAX_LENGTH - 1}}}")
RESERVED_USERNAMES = frozenset({"system", "unknown"})


class AccountService:
    """Sign-in and sessions, and account management (admin)."""

    def __init__(self, store: AuditedStore, access: AccessControl) -> None:
        self.store = store
        self.access = access

    def _check_password(self, username: str, password: str, s) -> User | None:
        """The account, if the password is right and the account usable; else SignInFailed,
        counting the failure (and locking after MAX_FAILED_ATTEMPTS) in ``s``."""
        user = _find_user(s, username)
        ok = verify_password(user.password_hash if user else None, password)
        if user and ok and user.active and not user.locked:
            user.failed_attempts = 0
            return user
        if user is None:  # the actor is the trail's own "unknown": a tried name is no actor
            shown = username.encode("unicode_escape").decode("ascii")[:USERNAME_MAX_LENGTH]
            self.store.log(s, Actor("unknown", "unknown"), "failed_login", f"user:{shown}",
                           reason="unknown user")
        else:
            why = "account locked" if user.locked else "account disabled" if not user.active \
                else "wrong password"
            if not user.locked and user.active:
                user.failed_attempts += 1
            self.store.log(s, Actor(user.username, user.role), "failed_login", f"user:{username}",
                           reason=why)
            if not user.locked and user.failed_attempts >= MAX_FAILED_ATTEMPTS:
                user.locked = True
                self.store.log(s, Actor(user.username, user.role), "lockout", f"user:{username}",
                               after={"locked": True},
                               reason=f"{MAX_FAILED_ATTEMPTS} failed sign-in attempts")
        return None

    def sign_in(self, username: str, password: str) -> Actor:
        """A new session for the account; the same failure for unknown users, wrong
        passwords and locked or disabled accounts."""
        with self.store.write() as s:
            user = self._check_password(username, password, s)
            if user is not None:
                token = self.access.sessions.issue(s, user.username)
                actor = Actor(user.username, user.role, token)
                self.store.log(s, actor, "login", f"user:{username}")
                return actor
        raise SignInFailed()

    def authenticate(self, username: str, password: str) -> Actor:
        """Check credentials without writing anything (no session, no event): a read-only
        actor, for `audit verify` on a trail that may refuse writes.  A failure is still
        counted when the trail can be written."""
        with self.store.read() as s:
            user = _find_user(s, username)
            ok = verify_password(user.password_hash if user else None, password)
            if user and ok and user.active and not user.locked:
                return Actor(user.username, user.role, self.access.grant_read_only(user.username))
        try:
            with self.store.write() as s:
                self._check_password(username, password, s)
        except Exception:  # noqa: BLE001 - the refusal below stands whatever the trail says
            pass
        raise SignInFailed()

    def resume(self, token: str) -> Actor:
        """The actor of a live session (a browser reload, another app process); raises SessionEnded."""
        return self.access.sessions.resolve(token)

    def sign_out(self, actor: Actor) -> None:
        try:
            actor = self.access.current(actor)
        except SessionEnded:
            return
        with self.store.write() as s:
            self.store.log(s, actor, "logout", f"user:{actor.username}")
        if actor.session_token:
            self.access.sessions.end(actor.session_token, "signed out")

    def add_user(self, actor: Actor, username: str, role: str, password: str,
                 demo_account: bool = False) -> None:
        """``demo_account``: the demo seeding (the system, never a person) creating a demo
        account with its password published in the README."""
        actor = self.access.require(actor, Action.MANAGE_USERS, f"user:{username}")
        _check_role(role)
        if not USERNAME_PATTERN.fullmatch(username) or username in RESERVED_USERNAMES:
            shown = username.encode("unicode_escape").decode("ascii")[:USERNAME_MAX_LENGTH]
            rule = (f"1 to {USERNAME_MAX_LENGTH} characters: lower-case letters a-z, digits and "
                    ". _ - , starting with a letter, and not " + " or ".join(sorted(RESERVED_USERNAMES)))
            raise InputRejected(f"invalid username {shown!r}: use {rule}",
                                [RowError(1, "username", shown, rule)])
        password_hash = hash_password(password, username, demo_account and actor is SYSTEM)
        with self.store.write() as s:
            if s.execute(select(User).where(User.username == username)).scalar_one_or_none():
                raise InputRejected(f"user {username!r} already exists")
            s.add(User(username=username, role=role, password_hash=password_hash))
            self.store.log(s, actor, "user_change", f"user:{username}", None,
                           {"username": username, "role": role, "active": True}, "user added")

    def _change_user(self, actor: Actor, username: str, change: Callable[[User], dict], reason: str,
                     ends_sessions: bool) -> None:
        with self.store.write() as s:
            user = s.execute(select(User).where(User.username == username)).scalar_one_or_none()
            if user is None:
                raise InputRejected(f"no user {username!r}")
            before = {"role": user.role, "active": user.active, "locked": user.locked}
            after = change(user)
            if before["role"] == Role.ADMIN.value and before["active"] and not (
                    user.active and user.role == Role.ADMIN.value):
                others = s.execute(select(func.count(User.id)).where(
                    User.role == Role.ADMIN.value, User.active.is_(True), User.id != user.id)).scalar()
                if not others:
                    raise InputRejected(f"{username!r} is the last active administrator: add or "
                                        "enable another admin first")
            ended = self.access.sessions.end_all_for(s, username, reason) if ends_sessions else 0
            self.store.log(s, actor, "user_change", f"user:{username}", before,
                           {**after, "sessions_ended": ended}, reason)

    def disable_user(self, actor: Actor, username: str) -> None:
        actor = self.access.require(actor, Action.MANAGE_USERS, f"user:{username}")

        def change(u: User) -> dict:
            u.active = False
            return {"role": u.role, "active": False, "locked": u.locked}

        self._change_user(actor, username, change, "user disabled", ends_sessions=True)

    def enable_user(self, actor: Actor, username: str) -> None:
        actor = self.access.require(actor, Action.MANAGE_USERS, f"user:{username}")

        def change(u: User) -> dict:
            u.active, u.locked, u.failed_attempts = True, False, 0
            return {"role": u.role, "active": True, "locked": False}

        self._change_user(actor, username, change, "user enabled and unlocked", ends_sessions=False)

    def recover_admin(self, username: str, password: str | None = None, operator: str = "") -> None:
        """Break glass, from the server's command line only: unlock a *locked* administrator
        account (and set a new password, if given) when no administrator can sign in.  Five
        wrong guesses at the sign-in page, by anyone, locked the last admin for good, and only
        an admin can unlock.  While one admin can sign in this is refused, so it is never a way
        around that admin; an account an admin disabled stays disabled (reviving it would hand
        over a retired account); each use is an audit event of the system naming ``operator``
        (who ran it, on which host)."""
        new_hash = hash_password(password, username) if password is not None else None
        with self.store.write() as s:
            usable = s.execute(select(func.count(User.id)).where(
                User.role == Role.ADMIN.value, User.active.is_(True), User.locked.is_(False))).scalar()
            if usable:
                raise InputRejected(f"{usable} administrator account(s) can still sign in: one of "
                                    "them unlocks or resets accounts (recover-admin is for when "
                                    "none can)")
            user = _find_user(s, username)
            if user is None or user.role != Role.ADMIN.value:
                raise InputRejected(f"{username!r} is not an administrator account")
            if not user.active:
                raise InputRejected(f"{username!r} was disabled by an administrator: recover-admin "
                                    "only unlocks a locked administrator account")
            if not user.locked:
                raise InputRejected(f"{username!r} is not locked")
            before = {"role": user.role, "active": user.active, "locked": user.locked}
            user.locked, user.failed_attempts = False, 0
            if new_hash is not None:
                user.password_hash = new_hash
            ended = self.access.sessions.end_all_for(s, username, "break-glass recovery")
            self.store.log(s, SYSTEM, "user_change", f"user:{username}", before,
                           {"role": user.role, "active": True, "locked": False,
                            "password": "reset" if new_hash else "unchanged", "sessions_ended": ended,
                            "operator": operator},
                           f"break-glass recovery from the server's command line by {operator or 'an operator'}: "
                           "no administrator could sign in")

    def reset_password(self, actor: Actor, username: str, password: str) -> None:
        actor = self.access.require(actor, Action.MANAGE_USERS, f"user:{username}")
        new_hash = hash_password(password, username)

        def change(u: User) -> dict:
            u.password_hash, u.locked, u.failed_attempts = new_hash, False, 0
            return {"role": u.role, "active": u.active, "locked": False, "password": "reset"}

        self._change_user(actor, username, change, "password reset", ends_sessions=True)

    def set_role(self, actor: Actor, username: str, role: str) -> None:
        actor = self.access.require(actor, Action.MANAGE_USERS, f"user:{username}")
        _check_role(role)

        def change(u: User) -> dict:
            u.role = role
            return {"role": role, "active": u.active, "locked": u.locked}

        self._change_user(actor, username, change, "role changed", ends_sessions=True)

    def list_users(self, actor: Actor) -> pd.DataFrame:
        self.access.require(actor, Action.MANAGE_USERS)
        with self.store.read() as s:
            rows = s.execute(select(User).order_by(User.username)).scalars().all()
            return pd.DataFrame([{"username": u.username, "role": u.role, "active": u.active,
                                  "locked": u.locked, "failed_attempts": u.failed_attempts}
                                 for u in rows],
                                columns=["username", "role", "active", "locked", "failed_attempts"])

    def published_password_accounts(self, actor: Actor) -> list[str]:
        """Enabled accounts that still sign in with the password the README prints for them
        (the demo seeding's).  Anyone who has read it can sign in as them, so an installation
        that kept the demo must disable them or reset their passwords before real patients'
        data is entered; the users page and ``users list`` say so."""
        self.access.require(actor, Action.MANAGE_USERS)
        with self.store.read() as s:
            rows = s.execute(select(User.username, User.password_hash).where(
                User.username.in_(sorted(PUBLISHED_PASSWORDS)), User.active.is_(True))).all()
        return sorted(name for name, stored in rows if is_published_password(name, stored))

    def has_published_password(self, actor: Actor) -> bool:
        """Whether the signed-in account's own password is the one the README prints for
        it: the app then warns on every page that anyone can sign in as this account."""
        actor = self.access.current(actor)
        if actor.username not in PUBLISHED_PASSWORDS:
            return False  # no database read for the accounts a clinic creates
        with self.store.read() as s:
            user = _find_user(s, actor.username)
            return is_published_password(actor.username, user.password_hash if user else None)

    def has_users(self) -> bool:
        with self.store.read() as s:
            return bool(s.execute(select(func.count(User.id))).scalar())


def _check_role(role: str) -> None:
    if role not in {r.value for r in Role}:
        raise InputRejected(f"unknown role {role!r}: one of " + ", ".join(r.value for r in Role))


def _find_user(s, username: str) -> User | None:
    """The account of a sign-in name; none has a NUL character (the database refuses to look
    one up), so such a name fails like any unknown one."""
    if NUL in username:
        return None
    return s.execute(select(User).where(User.username == username)).scalar_one_or_none()
