"""Therapist: record how an episode ended (or that the patient was lost to follow-up)."""

import streamlit as st

from recommender.web.ui import actor, service, show_refusal, text
from recommender.web.wording import PAIN_SCALE_HELP

svc, me = service(), actor()
st.title("Record follow-up")
query = st.text_input("Search any episode or patient id", key="fu_search",
                      help="Empty: the clinic's patients in care.")
found = svc.find_episodes(me, query)
found = found[found["status"] != "imported history"]
if found.empty:
    st.info("No matching episodes in care.")
    st.stop()
patient_of = dict(zip(found["episode_id"], found["patient_id"]))
# keyed by the search: a new search is a new list, never a stale choice from the last one
episode = st.selectbox("Episode", list(found["episode_id"]), key=f"fu_episode-{query}",
                       format_func=lambda e: f"{e} — patient {patient_of[e]}")
# Every field is keyed by the episode: switching patients never carries values across.
k = f"fu-{episode}"
with st.form(f"followup-{episode}"):
    st.text(f"Follow-up for episode {episode} (patient {patient_of[episode]})")
    lost = st.checkbox("Lost to follow-up", key=f"{k}-lost")
    pain = st.number_input("Follow-up pain score (0–10)", 0.0, 10.0, value=None, step=0.5,
                           key=f"{k}-pain", help=PAIN_SCALE_HELP)
    adherence = st.number_input("Adherence (share of planned sessions, 0–1)", 0.0, 1.0, value=None,
                                step=0.05, key=f"{k}-adherence")
    grip = st.number_input("Grip strength kg (optional)", 0.0, 100.0, value=None, key=f"{k}-grip")
    sleep = st.number_input("Sleep quality 0–10 (optional)", 0, 10, value=None, step=1, key=f"{k}-sleep")
    anxiety = st.number_input("Anxiety GAD-2 0–6 (optional)", 0, 6, value=None, step=1, key=f"{k}-anx")
    depression = st.number_input("Depression PHQ-2 0–6 (optional)", 0, 6, value=None, step=1,
                                 key=f"{k}-dep")
    adverse = st.checkbox("Adverse event attributed to treatment", key=f"{k}-adverse")
    correction = st.text_input("Correcting a follow-up already recorded? Why", key=f"{k}-correction",
                               help="A second follow-up replaces the first only with a reason; both "
                                    "stay in the audit trail.")
    submitted = st.form_submit_button("Save follow-up", type="primary")
if submitted:
    outcome = {"followup_pain_score": pain, "adherence": adherence,
               "followup_grip_strength_kg": grip, "followup_sleep_quality": sleep,
               "followup_anxiety_score": anxiety, "followup_depression_score": depression,
               "adverse_event": adverse}
    try:
        svc.record_followup(me, episode, {k2: v for k2, v in outcome.items() if v is not None},
                            lost_to_followup=lost, correction_reason=correction)
        st.success(f"Follow-up saved for {text(episode)}.")
    except Exception as exc:  # noqa: BLE001
        show_refusal(exc)
