"""Words a therapist understands: labels for codes, and times in the clinic's zone.

Codes stay in exports and the audit trail; the screen shows these labels.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pandas as pd

from recommender.contract.columns import PLAN, Kind, columns_for
from recommender.services.base import OVERRIDE_REASONS
from recommender.settings import get_settings

COLUMN_LABELS = {c.name: c.label for c in columns_for(Kind.TRAINING)}
PLAN_LABELS = {c.name: c.label for c in PLAN}
ROLE_LABELS = {"therapist": "Therapist", "data_staff": "Data staff", "supervisor": "Supervisor",
               "admin": "Administrator"}
REASON_LABELS = dict(OVERRIDE_REASONS)
EVIDENCE_TEXT = {"limited": "limited", "moderate": "moderate", "strong": "strong"}

PAIN_SCALE_HELP = "Pain is rated 0–10 (0 no pain, 10 worst imaginable); a reduction of 2 points or 30 % matters to patients."
INTERVAL_HELP = "9 in 10 patients like this one are expected to end up inside this range."
PUBLISHED_PASSWORD_WARNING = (
    "Demo account: its password is printed in the README, so anyone can sign in with it. "
    "Enter no real patient's data until the demo accounts are disabled or their passwords "
    "reset (an administrator's Users and roles page).")
EVIDENCE_HELP = ("How many past patients of this clinic had a similar plan, and how close the plan is "
                 "to what patients like this one were given: strong, moderate or limited.")


def published_accounts_warning(usernames: list[str]) -> str:
    """What the users page says while demo accounts keep the README's passwords."""
    return (f"These enabled accounts still have the password the README prints for them: "
            f"{', '.join(usernames)}. Anyone who has read it can sign in with them: disable them "
            "or reset their passwords below before real patients' data is entered. (A clinic's own "
            "installation sets RECOMMENDER_DEMO=0, so no demo is seeded.)")


def users_table(users: pd.DataFrame) -> pd.DataFrame:
    """The accounts as the users page shows them: role labels, readable column names."""
    shown = users.assign(role=users["role"].map(lambda r: ROLE_LABELS.get(r, r)))
    return shown.rename(columns={"username": "Username", "role": "Role", "active": "Enabled",
                                 "locked": "Locked", "failed_attempts": "Failed sign-ins"})


def label(code: str | None) -> str:
    """The label of any code shown on screen (a column, reason or role); unknown codes as text."""
    if code is None:
        return ""
    for table in (COLUMN_LABELS, REASON_LABELS, ROLE_LABELS):
        if code in table:
            return table[code]
    return str(code).replace("_", " ")


def labels(codes) -> str:
    return ", ".join(label(c).lower() for c in codes)


def clinic_zone() -> ZoneInfo:
    return ZoneInfo(get_settings().clinic_timezone)


def local_time(value) -> str:
    """A timestamp (datetime or ISO text, UTC) in the clinic's zone, to the minute."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert(clinic_zone()).strftime("%Y-%m-%d %H:%M")


def local_times(series: pd.Series) -> pd.Series:
    """:func:`local_time` for a whole column at once (audit logs run to many thousands)."""
    stamps = pd.to_datetime(series, utc=True, format="mixed")
    return stamps.dt.tz_convert(clinic_zone()).dt.strftime("%Y-%m-%d %H:%M").fillna("")


def today() -> dt.date:
    return dt.datetime.now(clinic_zone()).date()


_MARKDOWN_PUNCTUATION = "\\`*_{}[]()#+-.!|<>~$&:"
_ZERO_WIDTH = "\u200b"


def signed(difference: float) -> str:
    """A difference to one decimal with its sign, never "-0.0" (which reads as a loss)."""
    rounded = round(difference, 1)
    return f"{rounded + 0.0:+.1f}" if rounded else "±0.0"


def sentence(message: object) -> str:
    """A refusal as a sentence: its first word capitalised when it is a plain lower-case word
    (the services write "a rollback needs a reason"); a message that opens with a file name,
    a quoted username or a version is left as it is, since those are data."""
    text = str(message)
    first = text.split(" ", 1)[0]
    return text[:1].upper() + text[1:] if first.isascii() and first.isalpha() and first.islower() else text


def plain(value: object) -> str:
    """User or file data made inert for Streamlit's Markdown: every Markdown punctuation mark is
    backslash-escaped (it renders as itself) and autolinks (``://``, ``www.``, ``@``) are broken
    with a zero-width space, so no link, image or HTML can appear."""
    out = "".join("\\" + ch if ch in _MARKDOWN_PUNCTUATION else ch for ch in str(value))
    for trigger in ("\\:/", "www", "@"):
        out = out.replace(trigger, trigger + _ZERO_WIDTH)
    return out.replace("\n", " ")
