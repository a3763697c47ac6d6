"""Streamlit glue shared by the page scripts: the cached service, the signed-in actor and its
session cookie, and showing refusals and user data safely.  No clinical logic lives here."""

from __future__ import annotations

import json
import re
import time

import pandas as pd
import streamlit as st
import streamlit.components.v1 as components

from recommender.safety.gate import GateViolation
from recommender.services import (
    AuditUnavailable,
    ClinicService,
    InputRejected,
    open_service,
)
from recommender.services.identity import Actor
from recommender.services.permissions import PermissionDenied
from recommender.services.sessions import SessionEnded
from recommender.settings import get_settings
from recommender.web.navigation import PAGES_DIR
from recommender.web.wording import PUBLISHED_PASSWORD_WARNING, plain, sentence

SESSION_COOKIE = "recommender_session"


@st.cache_resource(show_spinner=False)
def service() -> ClinicService:
    return open_service()


def idle_timeout_seconds() -> float:
    return get_settings().idle_minutes * 60


def is_idle(last_active: float | None, now: float, timeout: float) -> bool:
    return last_active is not None and now - last_active > timeout


def actor() -> Actor:
    """The signed-in actor; pages are only reachable signed in, so this always exists there."""
    current = st.session_state.get("actor")
    if current is None:
        st.stop()
    return current


def open_patient(episode: str, script: str = "course.py") -> None:
    """Open a patient's episode on another page (one click from a list)."""
    st.session_state["course_episode"] = episode
    st.switch_page(PAGES_DIR / script)


def touch() -> None:
    st.session_state["last_active"] = time.time()


def keep_session_alive() -> None:
    """First thing in a fragment, whose reruns skip ``app.py``: a user idle too long is handed
    to a full run (which signs them out); anyone else's idle clock starts again."""
    if is_idle(st.session_state.get("last_active"), time.time(), idle_timeout_seconds()):
        st.rerun()
    touch()


# ---------------------------------------------------------------------------- session cookie


def resume_from_cookie() -> Actor | None:
    """After a reload (or on another app process), the session named by the browser's cookie."""
    token = st.context.cookies.get(SESSION_COOKIE)
    if not isinstance(token, str) or not token or st.session_state.get("cookie_cleared") == token:
        return None
    try:
        return service().resume(token)
    except SessionEnded:
        return None


def warn_if_published_password(current: Actor) -> None:
    """On every page, while the signed-in account's password is the one the README prints
    (checked once per session: a password hash check takes tens of milliseconds)."""
    cached = st.session_state.get("published_password")
    if cached is None or cached[0] != current.session_token:
        try:
            cached = (current.session_token, service().has_published_password(current))
        except (SessionEnded, AuditUnavailable):
            return  # the next run signs the user out
        st.session_state["published_password"] = cached
    if cached[1]:
        st.warning(PUBLISHED_PASSWORD_WARNING, icon="⚠️")


def write_cookie(token: str | None) -> None:
    """Set (or, with None, clear) the session cookie in the browser: it holds only the random
    token; the session itself lives, hashed, in the database."""
    max_age = int(idle_timeout_seconds()) if token else 0
    value = json.dumps(token or "")
    components.html(
        "<script>window.parent.document.cookie = "
        f"'{SESSION_COOKIE}=' + encodeURIComponent({value}) + "
        f"'; path=/; max-age={max_age}; SameSite=Strict';</script>", height=0)


# ---------------------------------------------------------------------------- showing things


def errors_table(errors) -> pd.DataFrame:
    """Bad cells as a table with the file's row numbers (shown as plain text)."""
    return pd.DataFrame([{"row": e.row, "column": e.column, "value": e.value, "expected": e.expected}
                         for e in errors], columns=["row", "column", "value", "expected"])


def show_refusal(exc: Exception) -> None:
    """A refusal in plain words, with the offending values when there are any (as text)."""
    if isinstance(exc, SessionEnded):
        st.error(f"Your session has ended: {plain(exc)}")
    elif isinstance(exc, PermissionDenied):
        st.error(f"Not allowed: {plain(exc)}")
    elif isinstance(exc, InputRejected):
        st.error(plain(sentence(exc)))
        if exc.errors:
            st.dataframe(errors_table(exc.errors), hide_index=True)
    elif isinstance(exc, (ValueError, AuditUnavailable, GateViolation)):
        st.error(plain(sentence(exc)))
    else:
        raise exc


def text(value: object) -> str:
    """User or file data made safe for Markdown-rendering elements (no links, images, HTML)."""
    return plain(value)


def safe_file_name(name: str) -> str:
    """A download file name with only letters, digits, dot, dash and underscore."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)
