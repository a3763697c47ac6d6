"""Supervisor: the audit log with filters, the chain-integrity badge, and CSV export."""

import datetime as dt
import tempfile
from pathlib import Path

import streamlit as st

from recommender.web.reports import filter_events
from recommender.web.ui import actor, service, text
from recommender.web.wording import clinic_zone, local_time, local_times

svc, me = service(), actor()
st.title("Audit log")
result = svc.verify_audit(me)
if result.ok:
    st.success(f"✅ Chain verified — {result.checked} events, none edited, deleted or inserted.")
else:
    st.error(f"❌ {text(result)}")

events = svc.audit_events(me)
c1, c2, c3, c4 = st.columns(4)
dates = c1.date_input("Dates", value=(), key="au_dates")
users = c2.multiselect("Users", sorted(events["actor"].unique()), key="au_users")
actions = c3.multiselect("Actions", sorted(events["action"].unique()), key="au_actions",
                         format_func=lambda a: a.replace("_", " "))
patient = c4.text_input("Patient or episode", key="au_patient",
                        help="An id or part of one: the events naming it, and every event of the "
                             "episodes they belong to (a patient's whole trail).")
start, end = (dates[0], dates[-1]) if dates else (None, None)
named = svc.find_episodes(me, patient, limit=1000)["episode_id"] if patient else ()
shown = filter_events(events, start, end, users, actions, patient, zone=clinic_zone(), episodes=named)
st.caption(f"{len(shown)} of {len(events)} events; times in the clinic's time zone (the export "
           "keeps UTC to the microsecond).")
st.dataframe(shown.sort_values("seq", ascending=False).assign(ts=lambda f: local_times(f["ts"])),
             hide_index=True, key="au_table",
             column_order=["seq", "ts", "actor", "role", "action", "target", "reason", "after"],
             column_config={"ts": "time"})
# The export is the whole trail, never the filtered view: a verifier needs every event of the
# chain to check it (README, audit trail).
if st.button("Prepare CSV export of the whole trail", key="au_export",
             help="Every event with its chain hashes, whatever the filters show, so it can be verified."):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audit.csv"
        n = svc.export_audit(me, path)
        st.session_state["audit_csv"] = (path.read_bytes(), n, local_time(dt.datetime.now(dt.timezone.utc)))
if "audit_csv" in st.session_state:
    data, n, when = st.session_state["audit_csv"]
    st.download_button(f"Download audit.csv ({n} events, prepared {when})", data, file_name="audit.csv",
                       mime="text/csv", key="au_download")
