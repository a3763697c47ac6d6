"""Supervisor: model versions and their cards; promote, or force with a recorded reason."""

import streamlit as st

from recommender.web.reports import card_summary
from recommender.web.ui import actor, service, show_refusal, text
from recommender.web.wording import local_times

svc, me = service(), actor()
st.title("Models")
if flash := st.session_state.pop("registry_flash", None):
    getattr(st, flash[0])(flash[1])
versions = svc.model_versions(me)
if versions.empty:
    st.info("No models yet.")
    st.stop()
st.dataframe(versions.assign(created_at=local_times(versions["created_at"])), hide_index=True,
             key="mr_versions")
version = int(st.selectbox("Version", list(versions["version"])[::-1], key="mr_version",
                           format_func=lambda v: f"v{v}"))
st.subheader(f"Model card of v{version}")
for label_text, value in card_summary(svc.model_card(me, version)):
    st.text(f"{label_text}: {value}")
force = st.checkbox("Force despite the promotion gate", key="mr_force")
reason = st.text_input("Reason (required to force)", key="mr_reason")
if st.button(f"Promote v{version}", key="mr_promote"):
    try:
        with st.spinner("Running the promotion gate…"):
            verdict = svc.promote(me, version, force=force, reason=reason)
        st.session_state["registry_flash"] = ("success" if verdict.passed or force else "error",
                                              f"Promotion gate: {text(verdict.message)}")
        st.rerun()
    except Exception as exc:  # noqa: BLE001
        show_refusal(exc)
