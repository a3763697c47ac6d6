"""Supervisor: overrides and contraindication blocks by therapist and over time; follow-up."""

import streamlit as st

from recommender.contract.csv_io import to_csv_bytes
from recommender.web.reports import override_stats, weekly
from recommender.web.ui import actor, service

svc, me = service(), actor()
st.title("Oversight")
decisions = svc.decisions_frame(me)
if decisions.empty:
    st.info("No decisions recorded yet.")
    st.stop()
stats = override_stats(decisions)
c1, c2, c3 = st.columns(3)
c1.metric("Decisions", len(decisions))
c2.metric("Departed from the recommendation", f"{decisions['overridden'].mean():.0%}")
c3.metric("Followed up", f"{decisions['followed_up'].mean():.0%}")
st.subheader("By therapist")
st.dataframe(stats, hide_index=True, key="ov_stats")
st.bar_chart(stats.set_index("therapist")[["overrides", "massage_blocked"]], key="ov_bar")
st.subheader("Over time")
st.line_chart(weekly(decisions).set_index("week"), key="ov_line")
st.subheader("Decisions that departed from the recommendation")
departed = decisions[decisions["overridden"]][["decided_at", "therapist", "episode_id", "reason_code",
                                               "reason_text", "differences"]]
st.dataframe(departed, hide_index=True, key="ov_departed")
st.download_button("Download all decisions (CSV)", to_csv_bytes(decisions), "decisions.csv",
                   mime="text/csv", key="ov_csv")
