"""Streamlit glue shared by the page scripts: the cached service, the signed-in actor,
and showing refusals.  No clinical logic lives here."""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from recommender.services import ClinicService, InputRejected, open_service
from recommender.services.identity import Actor
from recommender.services.permissions import PermissionDenied
from recommender.settings import get_settings


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


def touch() -> None:
    st.session_state["last_active"] = time.time()


def errors_table(errors) -> pd.DataFrame:
    return pd.DataFrame([{"row": e.row, "column": e.column, "value": e.value, "expected": e.expected}
                         for e in errors])


def show_refusal(exc: Exception) -> None:
    """A refusal in plain words, with the offending values when there are any."""
    if isinstance(exc, PermissionDenied):
        st.error(f"Not allowed: {exc}")
    elif isinstance(exc, InputRejected):
        st.error(str(exc))
        if exc.errors:
            st.dataframe(errors_table(exc.errors), hide_index=True)
    else:
        st.error(str(exc))
