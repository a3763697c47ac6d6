"""Therapist: one patient's course of care — progress against the plan's prediction,
visits (recorded and corrected), and a review that re-plans to the patient's tolerance."""

import streamlit as st

from recommender.contract.columns import INTENSITIES, REGIONS
from recommender.contract.visits import VISIT_KINDS
from recommender.outputs.fhir import care_bundle_json
from recommender.services import PLAN_CHANGE_REASONS
from recommender.web.course_view import (
    CONTRAINDICATION_FIELDS,
    KIND_LABELS,
    SECTIONS,
    discomfort_chart,
    discomfort_frame,
    episode_choices,
    flag_lines,
    pain_chart,
    plan_comparison,
    plan_history_table,
    visit_from_form,
    visits_table,
)
from recommender.web.plan_form import plan_lines
from recommender.web.ui import actor, safe_file_name, service, show_refusal, text
from recommender.web.wording import INTERVAL_HELP, PAIN_SCALE_HELP, local_time, today

svc, me = service(), actor()
st.title("Course of care")

query = st.text_input("Search any episode or patient id", key="course_search",
                      help="Empty: patients in care.")
found = svc.find_episodes(me, query)
found = found[found["status"] != "imported history"]
wanted = st.session_state.get("course_episode")
options, index = episode_choices(list(found["episode_id"]), wanted, query,
                                 st.session_state.get("course_last_query"))
st.session_state["course_last_query"] = query
if not options:
    st.info("No matching episodes in care.")
    st.stop()
episode = st.selectbox("Episode", options, index=index, key=f"course_pick-{query}-{wanted}")
st.session_state["course_episode"] = episode
progress = svc.progress(me, episode)

st.subheader(f"Patient {text(progress.patient_id)} · episode {text(episode)}")
if saved_message := st.session_state.pop("course_saved", None):
    st.success(text(saved_message))
for line in flag_lines(progress):
    st.error(line, icon="🚩")
if progress.cap is not None:
    st.warning(f"{progress.cap.message} ({progress.cap.rule_id}, rules {progress.cap.ruleset_version})",
               icon="🔻")
if progress.plan is None:
    st.info("No accepted plan yet: recommend and accept one on the Plan treatment page first.")
    st.stop()
if progress.ended:
    st.info("This programme has ended.")
elif progress.due.review_due:
    st.warning("Review due: " + "; ".join(progress.due.review_reasons))

now = progress.pain_now
m1, m2, m3, m4 = st.columns(4)
m1.metric("Pain at intake", f"{progress.baseline_pain:.0f}/10", help=PAIN_SCALE_HELP)
change = now - progress.baseline_pain
m2.metric("Pain at follow-up" if progress.followup else "Pain now", f"{now:g}/10",
          f"{change:+g}" if change else "±0", delta_color="inverse" if change else "off")
m3.metric("Visits", len(progress.visits))
m4.metric("Own exercise done", "—" if progress.adherence is None else f"{progress.adherence:.0%}",
          help="Share of the planned own-exercise days reported at visits.")
st.caption("Current plan: " + "; ".join(plan_lines(progress.plan)))

if progress.visits or progress.path:
    st.altair_chart(pain_chart(progress), use_container_width=True)
    st.caption("Red: pain at each visit" + (" and at follow-up" if progress.followup else "")
               + ". Dashed: the pain the accepted plan predicted, with its likely "
               "range (shaded; " + INTERVAL_HELP.lower().rstrip(".") + ") — drawn as a straight "
               "path to the end of the programme, the only point the model predicts.")
if not discomfort_frame(progress).empty:
    st.markdown("**Discomfort during treatment (0–10)**")
    st.altair_chart(discomfort_chart(progress).properties(height=180), use_container_width=True)

# a keyed control, not tabs: the chosen section stays chosen across reruns
section = st.segmented_control("Section", SECTIONS, default=SECTIONS[0], key=f"section-{episode}",
                               label_visibility="collapsed") or SECTIONS[0]

if section == SECTIONS[0]:
    if progress.ended:
        st.info("The programme has ended; correct a visit in the Visits tab if needed.")
    else:
        k = f"visit-{episode}-{len(progress.records)}"
        with st.form(k):
            c1, c2, c3 = st.columns(3)
            day = c1.date_input("Visit date", value=today(), max_value=today(), key=f"{k}-date")
            kind = c1.selectbox("Kind of visit", VISIT_KINDS, format_func=KIND_LABELS.get, key=f"{k}-kind")
            pain = c1.number_input("Pain now (0–10)", 0, 10, value=None, step=1, key=f"{k}-pain",
                                   help=PAIN_SCALE_HELP)
            massage = c2.selectbox("Massage given", INTENSITIES, key=f"{k}-massage")
            training = c2.checkbox("Muscle training given", key=f"{k}-training")
            discomfort_now = c2.number_input("Discomfort during treatment (0–10)", 0, 10, value=None,
                                             step=1, key=f"{k}-discomfort",
                                             help="How much the treatment itself hurt; needed when "
                                                  "treatment was given.")
            exercise = c3.number_input("Own exercise days in the last 7 days", 0, 7, value=None, step=1,
                                       key=f"{k}-exercise")
            adverse = c3.checkbox("Adverse event since the last visit", key=f"{k}-adverse")
            note = c3.text_input("Note", key=f"{k}-note")
            with st.expander("Contraindication found at this visit"):
                found = {}
                for name, label, kind_of in CONTRAINDICATION_FIELDS:
                    if kind_of == "region list":
                        found[name] = st.multiselect(label, REGIONS, key=f"{k}-{name}",
                                                     format_func=lambda r: r.replace("_", " "))
                    else:
                        found[name] = st.checkbox(label, key=f"{k}-{name}")
            saved = st.form_submit_button("Save visit", type="primary")
        if saved:
            try:
                svc.record_visit(me, episode, visit_from_form(day, kind, pain, discomfort_now, massage,
                                                             training, exercise, adverse, note, found))
                st.session_state["course_saved"] = f"Visit saved for {episode}."
                st.session_state.get("reviews", {}).pop(episode, None)
                st.rerun()
            except Exception as exc:  # noqa: BLE001 - every refusal is shown, nothing stored
                show_refusal(exc)

elif section == SECTIONS[1]:
    reviews = st.session_state.setdefault("reviews", {})
    if progress.ended:
        st.info("The programme has ended.")
    elif st.button("Ask for a review", key=f"review-{episode}",
                   help="Re-plan from the patient's pain now, the discomfort reported and any "
                        "contraindication found since."):
        try:
            with st.spinner("Re-planning from the patient's current state…"):
                reviews[episode] = svc.review(me, episode)
        except Exception as exc:  # noqa: BLE001
            show_refusal(exc)
    review = reviews.get(episode)
    if review is not None and not progress.ended:
        best = review.recommendation.best
        st.text(f"Re-planned from: pain {review.state['pain_score']}/10, tolerance "
                f"{review.state.get('pain_tolerance')}, {len(progress.visits)} visit(s).")
        if review.cap is not None:
            st.warning(f"Massage capped: {review.cap.message}", icon="🔻")
        for reason in review.recommendation.gate.reasons:
            st.warning(f"{reason.message} {reason.evidence}", icon="⛔")
        st.dataframe(plan_comparison(review.current_plan, best.plan), hide_index=True)
        r1, r2 = st.columns(2)
        r1.metric("Reviewed plan: expected reduction", f"{best.predicted_reduction:.1f} points",
                  help=INTERVAL_HELP)
        r1.caption(f"Likely range {best.interval_low:.1f} to {best.interval_high:.1f}; "
                   f"evidence {best.evidence_level}.")
        if review.current_prediction is not None:
            cur = review.current_prediction
            r2.metric("Current plan, from today", f"{cur.predicted_reduction:.1f} points")
            r2.caption(f"Likely range {cur.interval_low:.1f} to {cur.interval_high:.1f}; evidence "
                       f"{cur.evidence_level}."
                       + (f" Not allowed now: {', '.join(cur.blocked_by)}." if cur.blocked_by else ""))
        st.caption(f"Why: {review.recommendation.explanation}")
        if review.current_plan == best.plan:
            st.success("The review keeps the current plan.")
        else:
            rk = f"rv-{episode}-{review.recommendation_id}"
            code = st.selectbox("Reason for the change", list(PLAN_CHANGE_REASONS),
                                format_func=PLAN_CHANGE_REASONS.get, index=None, key=f"{rk}-code",
                                placeholder="Choose a reason")
            why = st.text_input("Note", key=f"{rk}-note")
            if st.button("Accept the reviewed plan", type="primary", key=f"{rk}-accept"):
                try:
                    svc.accept(me, review.recommendation_id, best.plan, change_code=code,
                               change_reason=why)
                    reviews.pop(episode, None)
                    st.session_state["course_saved"] = "Reviewed plan accepted."
                    st.rerun()
                except Exception as exc:  # noqa: BLE001
                    show_refusal(exc)

elif section == SECTIONS[2]:
    table = visits_table(progress)
    if table.empty:
        st.info("No visits recorded yet.")
    else:
        st.dataframe(table, hide_index=True)
        with st.expander("Correct a visit"):
            current_ids = [v.id for v in progress.visits]
            target = st.selectbox("Visit to correct", current_ids, key=f"fix-{episode}",
                                  format_func=lambda i: f"visit {i}")
            old = next(v for v in progress.visits if v.id == target)
            fk = f"fix-{episode}-{target}"
            with st.form(fk):
                c1, c2 = st.columns(2)
                day = c1.date_input("Visit date", value=old.visit_date, max_value=today(), key=f"{fk}-date")
                kind = c1.selectbox("Kind of visit", VISIT_KINDS, index=VISIT_KINDS.index(old.kind),
                                    format_func=KIND_LABELS.get, key=f"{fk}-kind")
                pain = c1.number_input("Pain (0–10)", 0, 10, value=old.pain_score, step=1, key=f"{fk}-pain")
                massage = c2.selectbox("Massage given", INTENSITIES,
                                       index=INTENSITIES.index(old.massage_intensity), key=f"{fk}-massage")
                training = c2.checkbox("Muscle training given", value=old.training_given, key=f"{fk}-training")
                discomfort_fix = c2.number_input("Discomfort (0–10)", 0, 10, value=old.discomfort, step=1,
                                                 key=f"{fk}-discomfort")
                exercise = c1.number_input("Own exercise days in the last 7 days", 0, 7,
                                           value=old.exercise_days_last_week, step=1, key=f"{fk}-exercise")
                adverse = c2.checkbox("Adverse event", value=old.adverse_event, key=f"{fk}-adverse")
                note = st.text_input("Note", value=old.note, key=f"{fk}-note")
                reason = st.text_input("Why correct it?", key=f"{fk}-reason")
                fixed = st.form_submit_button("Save correction")
            if fixed:
                try:
                    svc.correct_visit(me, target, visit_from_form(
                        day, kind, pain, discomfort_fix, massage, training, exercise, adverse, note,
                        old.contraindications), reason=reason)
                    st.session_state["course_saved"] = f"Visit {target} corrected."
                    st.rerun()
                except Exception as exc:  # noqa: BLE001
                    show_refusal(exc)

else:
    st.dataframe(plan_history_table(progress), hide_index=True)
    last = progress.plans[-1]
    st.caption(f"Current since {local_time(last.decided_at)}, by {text(last.decided_by)}.")
    st.download_button("FHIR CarePlan with pain scores (JSON)",
                       lambda: care_bundle_json(episode, progress.patient_id, progress.plan,
                                                progress.gate_now, progress.pain_scores(),
                                                cap=progress.cap, ended=progress.ended),
                       file_name=safe_file_name(f"care-{episode}.json"), mime="application/fhir+json",
                       key="dl-course-fhir", on_click="ignore")
