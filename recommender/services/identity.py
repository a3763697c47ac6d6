"""Passwords and sign-in: Argon2id at OWASP's minimum parameters, lockout after 5 failures."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP Password Storage Cheat Sheet: Argon2id, m = 19 MiB, t = 2, p = 1 (minimum).
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
MAX_FAILED_ATTEMPTS = 5
MIN_PASSWORD_LENGTH = 10
SIGN_IN_FAILED = ("Unknown username or wrong password. "
                  f"After {MAX_FAILED_ATTEMPTS} failed attempts an account is locked; "
                  "an administrator can unlock it.")
_DUMMY_HASH = HASHER.hash("not-a-real-password-for-timing")


class SignInFailed(PermissionError):
    """Deliberately the same for unknown users, wrong passwords and locked accounts."""

    def __init__(self) -> None:
        super().__init__(SIGN_IN_FAILED)


@dataclass(frozen=True)
class Actor:
    """Who is acting: a signed-in user, or the system itself (setup and demo seeding)."""

    username: str
    role: str


SYSTEM = Actor("system", "system")


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    return HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant work whether or not the user exists."""
    try:
        return HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False
