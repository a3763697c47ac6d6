"""Sign-in, sign-out and account management (admin)."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
from sqlalchemy import func, select

from recommender.services.base import AccessControl, AuditedStore
from recommender.services.identity import (
    MAX_FAILED_ATTEMPTS,
    Actor,
    SignInFailed,
    hash_password,
    verify_password,
)
from recommender.services.permissions import Action, Role
from recommender.storage.schema import User


class AccountService:
    """Sign-in, sign-out and account management (admin)."""

    def __init__(self, store: AuditedStore, access: AccessControl) -> None:
        self.store = store
        self.access = access

    def sign_in(self, username: str, password: str) -> Actor:
        """The same failure for unknown users, wrong passwords and locked accounts."""
        with self.store.write() as s:
            user = s.execute(select(User).where(User.username == username)).scalar_one_or_none()
            ok = verify_password(user.password_hash if user else None, password)
            if user and ok and user.active and not user.locked:
                user.failed_attempts = 0
                actor = Actor(user.username, user.role)
                self.store.log(s, actor, "login", f"user:{username}")
                return actor
            if user is None:
                self.store.log(s, Actor(username[:80], "unknown"), "failed_login", f"user:{username[:80]}",
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
        raise SignInFailed()

    def sign_out(self, actor: Actor) -> None:
        with self.store.write() as s:
            self.store.log(s, actor, "logout", f"user:{actor.username}")

    def add_user(self, actor: Actor, username: str, role: str, password: str) -> None:
        self.access.require(actor, Action.MANAGE_USERS, f"user:{username}")
        Role(role)  # raises ValueError for an unknown role
        if not username or len(username) > 80:
            raise ValueError("username must have 1 to 80 characters")
        with self.store.write() as s:
            if s.execute(select(User).where(User.username == username)).scalar_one_or_none():
                raise ValueError(f"user {username!r} already exists")
            s.add(User(username=username, role=role, password_hash=hash_password(password)))
            self.store.log(s, actor, "user_change", f"user:{username}", None,
                      {"username": username, "role": role, "active": True}, "user added")

    def _change_user(self, actor: Actor, username: str, change: Callable[[User], dict], reason: str):
        self.access.require(actor, Action.MANAGE_USERS, f"user:{username}")
        with self.store.write() as s:
            user = s.execute(select(User).where(User.username == username)).scalar_one_or_none()
            if user is None:
                raise ValueError(f"no user {username!r}")
            before = {"role": user.role, "active": user.active, "locked": user.locked}
            after = change(user)
            self.store.log(s, actor, "user_change", f"user:{username}", before, after, reason)

    def disable_user(self, actor: Actor, username: str) -> None:
        def change(u: User) -> dict:
            u.active = False
            return {"role": u.role, "active": False, "locked": u.locked}

        self._change_user(actor, username, change, "user disabled")

    def enable_user(self, actor: Actor, username: str) -> None:
        def change(u: User) -> dict:
            u.active, u.locked, u.failed_attempts = True, False, 0
            return {"role": u.role, "active": True, "locked": False}

        self._change_user(actor, username, change, "user enabled and unlocked")

    def reset_password(self, actor: Actor, username: str, password: str) -> None:
        new_hash = hash_password(password)

        def change(u: User) -> dict:
            u.password_hash, u.locked, u.failed_attempts = new_hash, False, 0
            return {"role": u.role, "active": u.active, "locked": False, "password": "reset"}

        self._change_user(actor, username, change, "password reset")

    def set_role(self, actor: Actor, username: str, role: str) -> None:
        Role(role)

        def change(u: User) -> dict:
            u.role = role
            return {"role": role, "active": u.active, "locked": u.locked}

        self._change_user(actor, username, change, "role changed")

    def list_users(self, actor: Actor) -> pd.DataFrame:
        self.access.require(actor, Action.MANAGE_USERS)
        with self.store.read() as s:
            rows = s.execute(select(User).order_by(User.username)).scalars().all()
            return pd.DataFrame([{"username": u.username, "role": u.role, "active": u.active,
                                  "locked": u.locked, "failed_attempts": u.failed_attempts}
                                 for u in rows])

    def has_users(self) -> bool:
        with self.store.read() as s:
            return bool(s.execute(select(func.count(User.id))).scalar())

