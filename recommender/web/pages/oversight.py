"""Supervisor: overrides and contraindication blocks by therapist and over time; follow-up."""

import streamlit as st

from recommender.contract.csv_io import to_csv_bytes
from recommender.web.reports import override_stats, weekly, weekly_chart
from recommender.web.ui import actor, service
from recommender.web.wording import REASON_LABELS, label, local_times

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
st.bar_chart(stats.set_index("therapist")[["overrides", "massage_blocked"]])
st.subheader("Over time")
st.altair_chart(weekly_chart(weekly(decisions)), use_container_width=True)
st.subheader("Decisions that departed from the recommendation")
departed = decisions[decisions["overridden"]]
shown = departed.assign(
    decided_at=local_times(departed["decided_at"]),
    reason=departed["reason_code"].map(lambda c: REASON_LABELS.get(c, label(c))),
    changed=departed["changed_components"])[
    ["decided_at", "therapist", "episode_id", "reason", "reason_text", "changed"]]
st.dataframe(shown, hide_index=True, key="ov_departed")
st.download_button("Download all decisions (CSV)", to_csv_bytes(decisions), "decisions.csv",
                   mime="text/csv", key="ov_csv")
