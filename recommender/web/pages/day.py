"""Therapist: the day's list of open episodes (flagged first, then reviews and visits due);
one click opens a patient's course of care."""

import datetime as dt

import streamlit as st

from recommender.web.ui import actor, open_patient, service, text

DAY_LIST_LIMIT = 60  # rows shown; the rest are reached by search on the other pages

svc, me = service(), actor()
st.title("My day")
everyone = st.toggle("Whole clinic", key="day_everyone",
                     help="Off: episodes you entered, planned or saw. On: every open episode.")
day = svc.day_list(me, everyone=everyone)
if day.empty and not everyone:
    st.info("You have no open episodes yet: showing the whole clinic.")
    day = svc.day_list(me, everyone=True)
if day.empty:
    st.info("No open episodes: enter a new intake on the Plan treatment page.")
    st.stop()

flagged = int((day["flags"] != "").sum())
due = int((day["due"] != "").sum())
st.caption(f"{len(day)} open episode(s): {flagged} flagged, {due} with something due.")
header = st.columns([2, 3, 3, 1, 1, 1])
for column, title in zip(header, ("Patient", "Flags", "Due", "Last visit", "Pain now", "")):
    column.markdown(f"**{title}**")
for row in day.head(DAY_LIST_LIMIT).itertuples(index=False):
    cells = st.columns([2, 3, 3, 1, 1, 1])
    cells[0].text(f"{row.patient_id}\n{row.episode_id}")
    if row.flags:
        cells[1].error(text(row.flags), icon="🚩")
    cells[2].text(row.due or "—")
    cells[3].text(row.last_visit.isoformat() if isinstance(row.last_visit, dt.date) else "—")
    cells[4].text(f"{int(row.pain_now)}/10")
    if cells[5].button("Open", key=f"open-{row.episode_id}", help=f"Open {row.episode_id}"):
        open_patient(row.episode_id)
if len(day) > DAY_LIST_LIMIT:
    st.caption(f"Showing the first {DAY_LIST_LIMIT}; find others by id on the Course of care page.")
