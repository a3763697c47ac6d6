"""Therapist: find or enter a patient, get the recommended plan, tune it, accept it."""

import streamlit as st

from recommender.outputs.fhir import care_plan_json
from recommender.outputs.handout import handout_html, handout_markdown
from recommender.services import OVERRIDE_REASONS, InputRejected
from recommender.web.plan_form import (
    INTAKE_FIELDS,
    build_plan,
    differs,
    errors_by_column,
    form_to_intake,
    plan_controls,
)
from recommender.web.ui import actor, service, show_refusal

svc, me = service(), actor()
st.title("Plan treatment")

mode = st.radio("Patient", ["Find a patient", "New intake"], horizontal=True, key="patient_mode")
if mode == "New intake":
    errors = st.session_state.get("intake_errors", {})
    with st.form("intake"):
        values = {}
        cols = st.columns(3)
        for i, (column, label, kind, opts) in enumerate(INTAKE_FIELDS):
            with cols[i % 3]:
                if kind == "text":
                    values[column] = st.text_input(label, key=f"f_{column}")
                elif kind == "int":
                    values[column] = st.number_input(label, min_value=opts[0], max_value=opts[1],
                                                     value=opts[2], step=1, key=f"f_{column}")
                elif kind == "float":
                    values[column] = st.number_input(label, min_value=opts[0], max_value=opts[1],
                                                     value=opts[2], key=f"f_{column}")
                elif kind in ("optint", "optfloat"):
                    values[column] = st.number_input(label, min_value=opts[0], max_value=opts[1],
                                                     value=None, step=1 if kind == "optint" else None,
                                                     key=f"f_{column}")
                elif kind == "choice":
                    values[column] = st.selectbox(label, opts, key=f"f_{column}")
                elif kind == "bool":
                    values[column] = st.checkbox(label, key=f"f_{column}")
                else:
                    values[column] = st.multiselect(label, opts, key=f"f_{column}")
                if column in errors:
                    st.error(errors[column])
        saved = st.form_submit_button("Save intake", type="primary")
    if saved:
        try:
            episode = svc.save_intake(me, form_to_intake(values))
            st.session_state.pop("intake_errors", None)
            st.session_state["episode"] = episode
            st.session_state["patient_mode"] = "Find a patient"
            st.rerun()
        except InputRejected as exc:
            st.session_state["intake_errors"] = errors_by_column(exc.errors) or {"episode_id": str(exc)}
            st.rerun()
    st.stop()

query = st.text_input("Search by episode or patient id", key="search")
found = svc.find_episodes(me, query)
if found.empty:
    st.info("No matching episodes.")
    st.stop()
options = list(found["episode_id"])
current = st.session_state.get("episode")
patient_of = dict(zip(found["episode_id"], found["patient_id"]))
episode = st.selectbox("Episode", options, index=options.index(current) if current in options else 0,
                       format_func=lambda e: f"{e} — patient {patient_of[e]}")
st.session_state["episode"] = episode

recs = st.session_state.setdefault("recommendations", {})
if episode not in recs:
    if st.button("Recommend a plan", type="primary", key="recommend"):
        try:
            recs[episode] = svc.recommend(me, episode)
            st.rerun()
        except Exception as exc:  # noqa: BLE001 - shown to the user, nothing is stored
            show_refusal(exc)
    st.stop()

rec_id, rec = recs[episode]
best = rec.best
st.subheader("Recommended plan")
st.markdown(f"**{best.plan.describe()}**")
c1, c2, c3, c4 = st.columns(4)
c1.metric("Expected pain reduction", f"{best.predicted_reduction:.1f} points")
c2.metric("90% interval", f"{best.interval_low:.1f} to {best.interval_high:.1f}")
c3.metric("Chance of clinically important relief", f"{best.prob_improvement:.0%}")
c4.metric("Evidence", best.evidence_level)
st.caption(rec.explanation)

for reason in rec.gate.reasons:
    st.warning(f"**{reason.rule_id}** — {reason.message}  \n{reason.evidence}  \n_{reason.citation}_")

with st.expander("Ranked alternatives"):
    st.dataframe([{"plan": p.plan.describe(), "expected reduction": round(p.predicted_reduction, 2),
                   "interval": f"{p.interval_low:.1f} to {p.interval_high:.1f}",
                   "P(relief)": f"{p.prob_improvement:.0%}", "evidence": p.evidence_level}
                  for p in rec.ranked()], hide_index=True)

st.subheader("Tune")
controls = plan_controls(rec.gate)
bp = best.plan
k = f"{episode}-{rec_id}"
t1, t2, t3 = st.columns(3)
with t1:
    sessions = st.select_slider("Massage sessions / week", controls.massage_sessions,
                                value=bp.massage_sessions_per_week, key=f"ms-{k}",
                                disabled=len(controls.massage_sessions) == 1)
    intensity = st.radio("Massage intensity", controls.intensities, horizontal=True, key=f"mi-{k}",
                         index=controls.intensities.index(bp.massage_intensity)
                         if bp.massage_intensity in controls.intensities else 0,
                         disabled=sessions == 0 or controls.intensities == ("none",))
    if controls.locked_reason:
        st.caption(f"🔒 {controls.locked_reason}")
with t2:
    training = st.select_slider("Muscle training / week", controls.training_sessions,
                                value=bp.muscle_training_sessions_per_week, key=f"mt-{k}")
    exercise = st.select_slider("Own exercise days / week", controls.exercise_days,
                                value=bp.exercise_days_per_week, key=f"ex-{k}")
with t3:
    minutes = st.select_slider("Minutes per session", controls.minutes, value=bp.session_minutes,
                               key=f"mn-{k}")
    weeks = st.select_slider("Programme weeks", controls.weeks, value=bp.programme_weeks, key=f"wk-{k}")

plan = build_plan(sessions, intensity if sessions else "none", training, exercise, minutes, weeks)
changed = differs(bp, plan)
audited = st.session_state.setdefault("tuned", {})
tuned = svc.tune(me, episode, plan, audit=changed != [] and audited.get(k) != plan)
if changed:
    audited[k] = plan
m1, m2, m3 = st.columns(3)
m1.metric("Tuned: expected reduction", f"{tuned.predicted_reduction:.1f}",
          f"{tuned.predicted_reduction - best.predicted_reduction:+.1f} vs recommended")
m2.metric("90% interval", f"{tuned.interval_low:.1f} to {tuned.interval_high:.1f}")
m3.metric("Chance of relief", f"{tuned.prob_improvement:.0%}")
if tuned.evidence_level == "limited":
    st.warning("Limited evidence: few past patients like this had a plan like this.")

st.subheader("Accept")
reason_code, note = None, ""
if changed:
    st.info("The plan differs from the recommendation in: " + ", ".join(changed))
    reason_code = st.selectbox("Reason for the change", list(OVERRIDE_REASONS),
                               format_func=OVERRIDE_REASONS.get, index=None, key=f"rc-{k}",
                               placeholder="Choose a reason")
    note = st.text_input("Note", key=f"note-{k}")
if st.button("Accept plan", type="primary", key=f"accept-{k}"):
    try:
        decision = svc.accept(me, rec_id, plan, reason_code=reason_code, reason_text=note,
                                   idempotency_key=f"rec{rec_id}:{plan.as_dict()}")
        st.session_state.setdefault("accepted", {})[episode] = (decision, plan)
    except Exception as exc:  # noqa: BLE001 - every refusal is shown, nothing half-stored
        show_refusal(exc)

accepted = st.session_state.get("accepted", {}).get(episode)
if accepted:
    decision_id, accepted_plan = accepted
    st.success(f"Accepted (decision {decision_id}): {accepted_plan.describe()}")
    record = svc.intake(me, episode)
    handout = handout_markdown(record["patient_id"], accepted_plan, rec.gate)
    with st.expander("Patient handout", expanded=True):
        st.markdown(handout)
    d1, d2 = st.columns(2)
    d1.download_button("Printable handout", handout_html(record["patient_id"], accepted_plan, rec.gate),
                       file_name=f"plan-{episode}.html", mime="text/html", key="dl-handout")
    d2.download_button("Download FHIR CarePlan", care_plan_json(episode, record["patient_id"],
                                                                accepted_plan, rec.gate),
                       file_name=f"careplan-{episode}.json", mime="application/fhir+json",
                       key="dl-fhir")
