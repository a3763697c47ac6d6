"""Therapist: record how an episode ended (or that the patient was lost to follow-up)."""

import streamlit as st

from recommender.web.ui import actor, service, show_refusal

svc, me = service(), actor()
st.title("Record follow-up")
found = svc.find_episodes(me, st.text_input("Search by episode or patient id", key="fu_search"))
if found.empty:
    st.info("No matching episodes.")
    st.stop()
episode = st.selectbox("Episode", list(found["episode_id"]), key="fu_episode")
with st.form("followup"):
    lost = st.checkbox("Lost to follow-up", key="fu_lost")
    pain = st.number_input("Follow-up pain score (0–10)", 0.0, 10.0, value=None, step=0.5, key="fu_pain")
    adherence = st.number_input("Adherence (share of planned sessions, 0–1)", 0.0, 1.0, value=None,
                                step=0.05, key="fu_adherence")
    grip = st.number_input("Grip strength kg (optional)", 0.0, 100.0, value=None, key="fu_grip")
    sleep = st.number_input("Sleep quality 0–10 (optional)", 0, 10, value=None, step=1, key="fu_sleep")
    anxiety = st.number_input("Anxiety GAD-2 0–6 (optional)", 0, 6, value=None, step=1, key="fu_anx")
    depression = st.number_input("Depression PHQ-2 0–6 (optional)", 0, 6, value=None, step=1, key="fu_dep")
    adverse = st.checkbox("Adverse event attributed to treatment", key="fu_adverse")
    if st.form_submit_button("Save follow-up", type="primary"):
        outcome = {"followup_pain_score": pain, "adherence": adherence,
                   "followup_grip_strength_kg": grip, "followup_sleep_quality": sleep,
                   "followup_anxiety_score": anxiety, "followup_depression_score": depression,
                   "adverse_event": adverse}
        try:
            svc.record_followup(me, episode, {k: v for k, v in outcome.items() if v is not None},
                                lost_to_followup=lost)
            st.success(f"Follow-up saved for {episode}.")
        except Exception as exc:  # noqa: BLE001
            show_refusal(exc)
