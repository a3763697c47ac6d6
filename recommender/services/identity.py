"""Who is acting, and passwords: Argon2id at OWASP's minimum, NIST SP 800-63B rules, lockout.

An :class:`Actor` carries the session handle the service issued at sign-in; the
service re-reads the account behind it on every call, so a hand-made ``Actor``
proves nothing.  ``SYSTEM`` (setup and demo seeding) is recognised by identity,
not by its fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

# OWASP Password Storage Cheat Sheet: Argon2id, m = 19 MiB, t = 2, p = 1 (minimum).
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
MAX_FAILED_ATTEMPTS = 5
# NIST SP 800-63B §3.1.1.2: at least 15 characters when the password is the only factor,
# checked against commonly used or compromised passwords; no composition rules.
MIN_PASSWORD_LENGTH = 15
MAX_PASSWORD_LENGTH = 256
# zxcvbn's 0–4 guessability score; below this the password is refused as easy to guess.
MIN_STRENGTH_SCORE = 3
COMMON_PASSWORDS = frozenset(FREQUENCY_LISTS["passwords"])
# The demo accounts' passwords, printed in the README: known to anyone, so no password a
# person sets may be one of them (NIST SP 800-63B: refuse values known to be compromised).
# The demo seeding alone (the system, for its own demo accounts) may set them.
PUBLISHED_PASSWORDS = {
    "therapist": "gentle-harbour-lamp-42",
    "datastaff": "copper-meadow-ledger-17",
    "supervisor": "quiet-summit-lantern-58",
    "admin": "amber-orchard-window-93",
}
SIGN_IN_FAILED = ("Unknown username or wrong password. "
                  f"After {MAX_FAILED_ATTEMPTS} failed attempts in a row an account is locked "
                  "until an administrator unlocks it.")
_DUMMY_HASH = HASHER.hash("not-a-real-password-for-timing")


class SignInFailed(PermissionError):
    """Deliberately the same for unknown users, wrong passwords and locked accounts."""

    def __init__(self) -> None:
        super().__init__(SIGN_IN_FAILED)


class WeakPassword(ValueError):
    """A new password that the policy refuses, with the reason in plain words."""


@dataclass(frozen=True)
class Actor:
    """Who is acting, as the service issued it: the session handle is what counts."""

    username: str
    role: str
    session_token: str | None = field(default=None, repr=False, compare=False)


SYSTEM = Actor("system", "system")


def _letters(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


_PUBLISHED_LETTERS = frozenset(_letters(p) for p in PUBLISHED_PASSWORDS.values())


def password_problem(password: str, username: str, demo_account: bool = False) -> str | None:
    """Why ``password`` may not be used by ``username`` (None when it may).

    ``demo_account``: the demo seeding sets a demo account's own published password."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"use at least {MIN_PASSWORD_LENGTH} characters (a few unrelated words work well)"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"use at most {MAX_PASSWORD_LENGTH} characters"
    if not password.strip():
        return "a password of only spaces is not allowed"
    name, pw = _letters(username), _letters(password)
    if name and len(name) >= 3 and (name in pw or name[::-1] in pw):
        return "the password may not contain the username"
    if password.lower() in COMMON_PASSWORDS or pw in COMMON_PASSWORDS:
        return "this is a commonly used password"
    if pw in _PUBLISHED_LETTERS and not (
            demo_account and PUBLISHED_PASSWORDS.get(username) == password):
        return "this is a demo password printed in the README: anyone can sign in with it"
    result = zxcvbn(password[:100], user_inputs=[username])
    if result["score"] < MIN_STRENGTH_SCORE:
        hint = result["feedback"]["warning"] or "it is easy to guess"
        return f"this password is easy to guess ({hint.rstrip('.')})"
    return None


def hash_password(password: str, username: str, demo_account: bool = False) -> str:
    """The Argon2id hash of an acceptable new password; raises WeakPassword otherwise."""
    problem = password_problem(password, username, demo_account)
    if problem:
        raise WeakPassword(f"password refused: {problem}")
    return HASHER.hash(password)


def is_published_password(username: str, stored_hash: str | None) -> bool:
    """Whether an account's stored hash is of the password the README prints for it."""
    printed = PUBLISHED_PASSWORDS.get(username)
    return printed is not None and stored_hash is not None and verify_password(stored_hash, printed)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant work whether or not the user exists."""
    try:
        return HASHER.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False
