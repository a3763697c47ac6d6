"""Supervisor: model versions and their cards; promote, or force with a recorded reason.

The promotion gate runs as a job in the worker; this page submits it and follows it."""

import streamlit as st

from recommender.services.jobs import JobKind
from recommender.web.jobs import show_job, submit
from recommender.web.reports import card_summary
from recommender.web.ui import actor, service
from recommender.web.wording import local_times

svc, me = service(), actor()
st.title("Models")
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
# One form, emptied after each submit: a ticked "force" and its reason never carry over to
# the next version promoted.
with st.form("mr_promote_form", clear_on_submit=True):
    force = st.checkbox("Force despite the promotion gate", key="mr_force")
    reason = st.text_input("Reason (required to force)", key="mr_reason")
    if st.form_submit_button(f"Promote v{version}"):
        submit(svc, me, JobKind.PROMOTE, {"version": version, "force": force, "reason": reason})
show_job(svc, me, JobKind.PROMOTE, f"Promoting v{version}", version=version)
