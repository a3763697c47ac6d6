"""Streamlit entry point: first-start seeding, sign-in, idle timeout, role-based navigation."""

from __future__ import annotations

import time

import streamlit as st

from recommender.devtools import demo
from recommender.services.identity import SignInFailed
from recommender.web.navigation import ROLE_PAGES
from recommender.web.ui import idle_timeout_seconds, is_idle, service, touch

st.set_page_config(page_title="Pain plan recommender", page_icon="🩺", layout="wide")


def first_start() -> None:
    if st.session_state.get("seeded") or not demo.needs_seeding():
        st.session_state["seeded"] = True
        return
    st.title("Setting up the demo clinic")
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
            st.session_state["actor"] = service().sign_in(username, password)
            touch()
            st.rerun()
        except SignInFailed as exc:
            st.error(str(exc))
    st.caption("Demo accounts: see the README.")


def sign_out(reason: str = "") -> None:
    actor = st.session_state.pop("actor", None)
    if actor is not None:
        service().sign_out(actor)
    for key in list(st.session_state):
        del st.session_state[key]
    if reason:
        st.session_state["signed_out_reason"] = reason


first_start()
if is_idle(st.session_state.get("last_active"), time.time(), idle_timeout_seconds()) \
        and "actor" in st.session_state:
    sign_out(f"Signed out after {idle_timeout_seconds() / 60:.0f} minutes without activity.")

actor = st.session_state.get("actor")
if actor is None:
    if reason := st.session_state.pop("signed_out_reason", ""):
        st.info(reason)
    st.navigation([st.Page(sign_in_page, title="Sign in", icon="🔑")]).run()
else:
    touch()
    with st.sidebar:
        st.markdown(f"**{actor.username}** · {actor.role.replace('_', ' ')}")
        if st.button("Sign out", key="sign_out"):
            sign_out()
            st.rerun()
    pages = [st.Page(spec.path, title=spec.title, icon=spec.icon) for spec in ROLE_PAGES[actor.role]]
    st.navigation(pages).run()
