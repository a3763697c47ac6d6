"""Supervisor: model versions and their cards; promote, or force with a recorded reason."""

import streamlit as st

from recommender.web.ui import actor, service, show_refusal

svc, me = service(), actor()
st.title("Models")
versions = svc.model_versions(me)
if versions.empty:
    st.info("No models yet.")
    st.stop()
st.dataframe(versions, hide_index=True, key="mr_versions")
version = st.selectbox("Version", list(versions["version"])[::-1], key="mr_version")
st.json(svc.model_card(me, int(version)), expanded=False)
force = st.checkbox("Force despite the promotion gate", key="mr_force")
reason = st.text_input("Reason (required to force)", key="mr_reason")
if st.button(f"Promote v{version}", key="mr_promote"):
    try:
        verdict = svc.promote(me, int(version), force=force, reason=reason)
        (st.success if verdict.passed or force else st.error)(f"Promotion gate: {verdict.message}")
    except Exception as exc:  # noqa: BLE001
        show_refusal(exc)
