"""Streamlit entry point: first start, sign-in (kept across reloads), idle timeout, role navigation."""

from __future__ import annotations

import datetime as dt
import time

import streamlit as st

from recommender.settings import get_settings
from recommender.threads import limit_threads

limit_threads(get_settings().app_threads)  # before scikit-learn loads OpenMP: see recommender/threads.py

from recommender.devtools import demo  # noqa: E402
from recommender.services import AuditUnavailable  # noqa: E402
from recommender.services.identity import SignInFailed  # noqa: E402
from recommender.services.sessions import SessionEnded, duration_words  # noqa: E402
from recommender.web.jobs import ensure_worker  # noqa: E402
from recommender.web.navigation import ROLE_PAGES  # noqa: E402
from recommender.web.ui import (  # noqa: E402
    idle_timeout_seconds,
    is_idle,
    resume_from_cookie,
    service,
    touch,
    warn_if_published_password,
    write_cookie,
)
from recommender.web.wording import ROLE_LABELS  # noqa: E402

st.set_page_config(page_title="Pain plan recommender", page_icon="🩺", layout="wide")


def first_start() -> None:
    """Seed the demo clinic into a brand-new, empty database (never where RECOMMENDER_DEMO=0)."""
    if st.session_state.get("seeded") or not demo.needs_seeding():
        st.session_state["seeded"] = True
        return
    st.title("Setting up the demo clinic")
    st.caption("A simulated clinic history, a trained model and demo accounts — about 30 seconds.")
    bar = st.progress(0.0, text="starting")
    demo.seed(progress=lambda f, m: bar.progress(min(f, 1.0), text=m))
    service.clear()
    st.rerun()


def sign_in_page() -> None:
    st.title("Pain plan recommender")
    with st.form("sign_in"):
        username = st.text_input("Username")
        password = st.text_input("Password", type="password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            actor = service().sign_in(username, password)
            st.session_state["actor"] = actor
            touch()
            st.rerun()
        except (SignInFailed, AuditUnavailable) as exc:
            st.error(str(exc))
    st.caption("Demo accounts: see the README.")


def sign_out(reason: str = "") -> None:
    actor = st.session_state.get("actor")
    if actor is not None:
        try:
            service().sign_out(actor)
        except AuditUnavailable:
            pass  # the session still ends in this browser
    token = getattr(actor, "session_token", None)
    for key in list(st.session_state):
        if key != "seeded":
            del st.session_state[key]
    st.session_state["cookie_cleared"] = token
    st.session_state["clear_cookie"] = True
    if reason:
        st.session_state["signed_out_reason"] = reason


first_start()
ensure_worker(service())  # heavy work runs there; started here when no worker runs
if "actor" not in st.session_state and (resumed := resume_from_cookie()) is not None:
    st.session_state["actor"] = resumed
    touch()
elif "actor" in st.session_state:  # the account as it is now (disabled, demoted, timed out?)
    try:
        st.session_state["actor"] = service().resume(st.session_state["actor"].session_token)
    except SessionEnded as exc:
        sign_out(str(exc).capitalize() + ".")
if is_idle(st.session_state.get("last_active"), time.time(), idle_timeout_seconds()) \
        and "actor" in st.session_state:
    idle_for = duration_words(dt.timedelta(seconds=idle_timeout_seconds()))
    sign_out(f"Signed out after {idle_for} without activity.")

actor = st.session_state.get("actor")
if actor is None:
    if st.session_state.pop("clear_cookie", False):
        write_cookie(None)
    if reason := st.session_state.pop("signed_out_reason", ""):
        st.info(reason)
    st.navigation([st.Page(sign_in_page, title="Sign in", icon="🔑")]).run()
else:
    touch()
    with st.sidebar:
        # every run, not only right after sign-in: a page switch at once could drop a one-off
        # write before the browser ran it, and a reload would then sign the user out
        write_cookie(actor.session_token)
        st.text(f"{actor.username} · {ROLE_LABELS.get(actor.role, actor.role)}")
        warn_if_published_password(actor)
        if st.button("Sign out", key="sign_out"):
            sign_out()
            st.rerun()
    pages = [st.Page(spec.path, title=spec.title, icon=spec.icon) for spec in ROLE_PAGES[actor.role]]
    st.navigation(pages).run()
