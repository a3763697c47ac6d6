"""Therapist: find or enter a patient, get the recommended plan, tune it, accept it."""

import streamlit as st

from recommender.outputs.fhir import care_bundle_json
from recommender.outputs.handout import Clinic, handout, handout_html, handout_lines
from recommender.services import OVERRIDE_REASONS, PLAN_CHANGE_REASONS, InputRejected
from recommender.services.sessions import SessionEnded
from recommender.settings import get_settings
from recommender.web.plan_form import (
    ASKED_REGION_LISTS,
    INTAKE_FIELDS,
    YES_NO,
    answer,
    build_plan,
    contraindicated_plan_warning,
    differs,
    form_to_intake,
    intake_refusal,
    intake_summary,
    permitted,
    plan_controls,
    plan_lines,
    region_answer_errors,
)
from recommender.web.ui import (
    actor,
    keep_session_alive,
    open_patient,
    safe_file_name,
    service,
    show_refusal,
    text,
)
from recommender.web.wording import (
    EVIDENCE_HELP,
    INTERVAL_HELP,
    PAIN_SCALE_HELP,
    labels,
    local_time,
    signed,
    today,
)

svc, me = service(), actor()
st.title("Plan treatment")

# A saved intake opens its patient: applied before the widgets below exist.
if goto := st.session_state.pop("goto_episode", None):
    st.session_state["patient_mode"] = "Find a patient"
    st.session_state["episode"] = goto
    st.session_state["search"] = goto

mode = st.radio("Patient", ["Find a patient", "New intake"], horizontal=True, key="patient_mode")
if mode == "New intake":
    errors = st.session_state.get("intake_errors", {})
    with st.form("intake"):
        values, answers = {}, {}
        cols = st.columns(3)
        for i, (column, label, kind, opts) in enumerate(INTAKE_FIELDS):
            with cols[i % 3]:
                if kind == "text":
                    values[column] = st.text_input(label, key=f"f_{column}")
                elif kind == "int":
                    values[column] = st.number_input(label, min_value=opts[0], max_value=opts[1],
                                                     value=opts[2], step=1, key=f"f_{column}",
                                                     help=PAIN_SCALE_HELP if column == "pain_score" else None)
                elif kind == "float":
                    values[column] = st.number_input(label, min_value=opts[0], max_value=opts[1],
                                                     value=opts[2], key=f"f_{column}")
                elif kind in ("optint", "optfloat"):
                    values[column] = st.number_input(label, min_value=opts[0], max_value=opts[1],
                                                     value=None, step=1 if kind == "optint" else None,
                                                     key=f"f_{column}")
                elif kind == "choice":  # no preselected answer: a default reads as assessed
                    values[column] = st.selectbox(label, opts, key=f"f_{column}", index=None,
                                                  placeholder="Choose",
                                                  format_func=lambda v: v.replace("_", " "))
                elif kind == "bool":
                    values[column] = answer(st.radio(label, YES_NO, index=None, horizontal=True,
                                                     key=f"f_{column}"))
                else:
                    if column in ASKED_REGION_LISTS:
                        answers[column] = answer(st.radio(f"{label}: any?", YES_NO, index=None,
                                                          horizontal=True, key=f"f_{column}_any"))
                    values[column] = st.multiselect(label, opts, key=f"f_{column}",
                                                    format_func=lambda v: v.replace("_", " "))
                if column in errors:
                    st.error(errors[column])
        saved = st.form_submit_button("Save intake", type="primary")
    if saved:
        problems = region_answer_errors(answers, values)
        try:
            if problems:  # every problem at once: the form's own questions and the contract's
                svc.validate_intake(form_to_intake(values))
                raise InputRejected("the intake has unanswered questions", [])
            episode = svc.save_intake(me, form_to_intake(values))
            st.session_state.pop("intake_errors", None)
            st.session_state["goto_episode"] = episode
            st.rerun()
        except InputRejected as exc:
            errors = problems + exc.errors
            st.session_state["intake_errors"] = intake_refusal(str(exc), errors)
            st.rerun()
    st.stop()

query = st.text_input("Search any episode or patient id", key="search",
                      help="Empty: your patients in care. Type an id to find any episode, "
                           "including imported history.")
found = svc.find_episodes(me, query)
if found.empty:
    st.info("No matching episodes." if query else "No patients in care: enter a new intake.")
    st.stop()
options = list(found["episode_id"])
status = dict(zip(found["episode_id"], found["status"]))
patient_of = dict(zip(found["episode_id"], found["patient_id"]))
current = st.session_state.get("episode")
episode = st.selectbox("Episode", options, index=options.index(current) if current in options else 0,
                       format_func=lambda e: f"{e} — patient {patient_of[e]} ({status[e]})")
st.session_state["episode"] = episode
if status[episode] == "imported history":
    st.info("This episode is imported history: its plan and outcome are already recorded, so it "
            "cannot be planned again.")
    st.stop()

intake = svc.intake(me, episode)
accepted = svc.current_decision(me, episode)
cap = svc.discomfort_cap(me, episode)
if cap is not None:
    st.warning(f"Massage capped: {cap.message} ({cap.rule_id})", icon="🔻")
recs = st.session_state.setdefault("recommendations", {})
digest = svc.state_digest(me, episode)
if episode in recs and recs[episode][2] != digest:  # a visit changed the patient since
    del recs[episode]
    st.info("The patient's record changed after this plan was recommended (a visit, a new "
            "contraindication or the discomfort rule): recommend again.")
ended = status[episode] == "closed"
if ended:  # the follow-up or end-of-programme visit is recorded: its plan is part of the outcome
    recs.pop(episode, None)
    st.info("This programme has ended: its plan can no longer be changed.")
if episode not in recs and not ended:
    slot = st.empty()  # the button goes once the plan is there: drawn in this same run, not a rerun
    if slot.button("Recommend a plan", type="primary", key="recommend"):
        try:
            with st.spinner("Scoring every allowed plan for this patient…"):
                recs[episode] = (*svc.recommend(me, episode), digest)
            slot.empty()
        except Exception as exc:  # noqa: BLE001 - shown to the user, nothing is stored
            show_refusal(exc)
if accepted and (warning := contraindicated_plan_warning(accepted["plan"], accepted["gate_now"], ended)):
    st.error(warning, icon="🚩")
if episode not in recs:
    if accepted:
        st.success("Accepted plan (decision {}): {}".format(accepted["decision_id"],
                                                            accepted["plan"].describe()))
        if st.button("Record visits and follow progress", key=f"course-{episode}"):
            open_patient(episode)
    st.stop()

rec_id, rec, made_from = recs[episode]
best = rec.best
left, right = st.columns([2, 1])
with right:
    st.subheader("Patient")
    for label_text, value in intake_summary(intake, rec.gate):
        st.text(f"{label_text}: {value}")
with left:
    st.subheader("Recommended plan")
    for line in plan_lines(best.plan):
        st.text(line)
    c1, c2 = st.columns(2)
    c3, c4 = st.columns(2)
    c1.metric("Expected pain reduction", f"{best.predicted_reduction:.1f} points", help=PAIN_SCALE_HELP)
    c2.metric("Likely range (9 in 10)", f"{best.interval_low:.1f} to {best.interval_high:.1f}",
              help=INTERVAL_HELP)
    c3.metric("Chance of a relief that matters", f"{best.prob_improvement:.0%}",
              help="Chance of at least 2 points (or 30 %) less pain.")
    c4.metric("Evidence", best.evidence_level, help=EVIDENCE_HELP)
    st.caption(f"Why: {rec.explanation} Evidence means: {EVIDENCE_HELP.lower()}")

for reason in rec.gate.reasons:
    st.warning(f"{reason.message} {reason.evidence} (Source: {reason.citation})", icon="⛔")

with st.expander("Other plans, ranked"):
    st.caption("The recommendation comes first; the rest by expected reduction less a margin "
               "for how uncertain it is, plans with at least moderate evidence first. So a plan "
               "with a higher expected reduction but less evidence behind it can rank lower.")
    st.dataframe([{"plan": p.plan.describe(), "expected reduction": round(p.predicted_reduction, 1),
                   "likely range": f"{p.interval_low:.1f} to {p.interval_high:.1f}",
                   "chance of relief": f"{p.prob_improvement:.0%}", "evidence": p.evidence_level}
                  for p in rec.ranked()], hide_index=True)


@st.fragment
def tune_and_accept() -> None:
    """Tuning reruns only this part of the page: the patient, the search and the ranked plans
    above it stay as they are (a slider move costs a prediction, not the whole page).  The
    service re-checks the session on every call; the idle clock and a session that ended are
    handed to the full run, which signs the user out."""
    keep_session_alive()
    try:
        now = svc.current_decision(me, episode)
        if ((now or {}).get("decision_id") != (accepted or {}).get("decision_id")
                or svc.state_digest(me, episode) != made_from):
            st.rerun()  # accepted, or the patient changed, meanwhile (another tab or colleague):
            # redraw the whole page, which drops a recommendation made before the change
        st.subheader("Tune")
        controls = plan_controls(rec.gate, cap)
        # tuning starts from the accepted plan, unless it is no longer allowed (a cap, a finding)
        start = accepted["plan"] if accepted and permitted(accepted["plan"], rec.gate, cap) else best.plan
        k = f"{episode}-{rec_id}-{accepted['decision_id'] if accepted else 0}"
        t1, t2, t3 = st.columns(3)
        with t1:
            sessions = st.select_slider("Massage sessions / week", controls.massage_sessions,
                                        value=start.massage_sessions_per_week, key=f"ms-{k}",
                                        disabled=len(controls.massage_sessions) == 1)
            intensity = st.radio("Massage intensity", controls.intensities, horizontal=True, key=f"mi-{k}",
                                 index=controls.intensities.index(start.massage_intensity)
                                 if start.massage_intensity in controls.intensities else 0,
                                 disabled=sessions == 0 or controls.intensities == ("none",))
            if controls.locked_reason:
                st.caption(f"🔒 {controls.locked_reason}")
        with t2:
            training = st.select_slider("Muscle training / week", controls.training_sessions,
                                        value=start.muscle_training_sessions_per_week, key=f"mt-{k}")
            exercise = st.select_slider("Own exercise days / week", controls.exercise_days,
                                        value=start.exercise_days_per_week, key=f"ex-{k}")
        with t3:
            minutes = st.select_slider("Minutes per session", controls.minutes, value=start.session_minutes,
                                       key=f"mn-{k}")
            weeks = st.select_slider("Programme weeks", controls.weeks, value=start.programme_weeks, key=f"wk-{k}")

        plan = build_plan(sessions, intensity if sessions else "none", training, exercise, minutes, weeks)
        changed = differs(best.plan, plan)
        audited = st.session_state.setdefault("tuned", {})
        # audited when the therapist moved a control: not for the plan tuning starts from (after
        # an accept that is the accepted plan, which once logged a "tune" nobody made)
        moved = plan != start and audited.get(k) != plan
        tuned = svc.tune(me, episode, plan, audit=moved)
        if moved:
            audited[k] = plan
        m1, m2, m3 = st.columns(3)
        diff = signed(tuned.predicted_reduction - best.predicted_reduction)
        m1.metric("This plan: expected reduction", f"{tuned.predicted_reduction:.1f} points",
                  f"{diff} vs recommended", delta_color="off" if diff == "±0.0" else "normal",
                  help=PAIN_SCALE_HELP)
        m2.metric("Likely range (9 in 10)", f"{tuned.interval_low:.1f} to {tuned.interval_high:.1f}",
                  help=INTERVAL_HELP)
        m3.metric("Chance of a relief that matters", f"{tuned.prob_improvement:.0%}")
        if tuned.evidence_level == "limited":
            st.warning("Limited evidence: few past patients like this had a plan like this.")
        if tuned.blocked_by:
            st.error("This plan is not allowed for the patient now (" + ", ".join(tuned.blocked_by)
                     + "): change it before accepting.", icon="⛔")

        st.subheader("Accept")
        reason_code, note, change_code, change_reason = None, "", None, ""
        to_accept = accepted is None or plan != accepted["plan"]
        if changed and to_accept:
            st.info("This plan differs from the recommendation in: " + labels(changed) + ".")
            reason_code = st.selectbox("Reason for the difference", list(OVERRIDE_REASONS),
                                       format_func=OVERRIDE_REASONS.get, index=None, key=f"rc-{k}",
                                       placeholder="Choose a reason")
            note = st.text_input("Note", key=f"note-{k}")
        changes_accepted = accepted is not None and to_accept
        if changes_accepted:
            st.warning("This episode already has an accepted plan. Accepting this one replaces it; both "
                       "stay on record.")
            change_code = st.selectbox("Why change the accepted plan?", list(PLAN_CHANGE_REASONS),
                                       format_func=PLAN_CHANGE_REASONS.get, index=None, key=f"chgc-{k}",
                                       placeholder="Choose a reason")
            change_reason = st.text_input("Note on the change", key=f"chg-{k}")
        if st.button("Accept plan" if not changes_accepted else "Replace the accepted plan", type="primary",
                     key=f"accept-{k}", disabled=not to_accept or bool(tuned.blocked_by)):
            try:
                svc.accept(me, rec_id, plan, reason_code=reason_code, reason_text=note,
                           change_code=change_code, change_reason=change_reason)
                st.rerun()
            except Exception as exc:  # noqa: BLE001 - every refusal is shown, nothing half-stored
                show_refusal(exc)
    except SessionEnded:
        st.rerun()


tune_and_accept()

if accepted:
    shown = accepted["plan"]
    st.success(f"Accepted plan (decision {accepted['decision_id']}, "
               f"{text(accepted['decided_by'])}, {local_time(accepted['decided_at'])}): {shown.describe()}")
    if st.button("Record visits and follow progress", key=f"course-{episode}"):
        open_patient(episode)
    settings = get_settings()
    sheet = handout(intake["patient_id"], shown, accepted["gate_now"],
                    Clinic(settings.clinic_name, settings.clinic_contact), accepted["decided_by"], today(),
                    cap=cap)
    with st.expander("Patient handout", expanded=True):
        st.text("\n".join(handout_lines(sheet)))
    d1, d2 = st.columns(2)
    d1.download_button("Printable handout (HTML)", handout_html(sheet), file_name=safe_file_name(f"plan-{episode}.html"),
                       mime="text/html", key="dl-handout", on_click="ignore")
    d2.download_button("FHIR CarePlan with pain scores (JSON)",
                       lambda: care_bundle_json(episode, intake["patient_id"], shown, accepted["gate_now"],
                                                svc.progress(me, episode).pain_scores(), cap=cap,
                                                ended=ended),
                       file_name=safe_file_name(f"careplan-{episode}.json"), mime="application/fhir+json", key="dl-fhir",
                       on_click="ignore")
