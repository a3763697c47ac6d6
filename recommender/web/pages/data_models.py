"""Data staff: retrain, read the evaluation, compare with the current model, promote or roll back.

Training, evaluation, comparison, promotion and rollback run as jobs in the worker; this
page submits them and follows their progress, and shows evaluations from storage."""

import altair as alt
import pandas as pd
import streamlit as st

from recommender.services.jobs import JobKind
from recommender.web.jobs import show_job, submit
from recommender.web.reports import card_summary
from recommender.web.ui import actor, service
from recommender.web.wording import local_times

svc, me = service(), actor()
st.title("Train and evaluate")

if st.button("Retrain on the recorded history", type="primary", key="retrain"):
    submit(svc, me, JobKind.TRAIN)
show_job(svc, me, JobKind.TRAIN, "Retraining")

versions = svc.model_versions(me)
if versions.empty:
    st.info("No models yet.")
    st.stop()
shown = versions.assign(created_at=local_times(versions["created_at"]))
st.dataframe(shown, hide_index=True, key="versions")
newest = int(versions["version"].max())
choices = list(versions["version"])[::-1]
# keyed by the newest version: after a retrain the box starts on the new one
version = int(st.selectbox("Model version", choices, key=f"eval_version-{newest}",
                           format_func=lambda v: f"v{v}"))
with st.expander(f"Model card of v{version}"):
    for label_text, value in card_summary(svc.model_card(me, version)):
        st.text(f"{label_text}: {value}")

stored = svc.stored_evaluation(me, version)
if stored is None:  # registered before evaluations were stored with their version
    st.info(f"v{version} has not been evaluated yet.")
    if st.button(f"Evaluate v{version}", key="evaluate"):
        submit(svc, me, JobKind.EVALUATE, {"version": version})
    show_job(svc, me, JobKind.EVALUATE, f"Evaluating v{version}", version=version)
elif stored[0] is None:
    st.info("This version has no held-out episodes of this clinic to evaluate on.")
else:
    report, rows = stored
    p = report["prediction"]
    c1, c2, c3 = st.columns(3)
    c1.metric("Mean absolute error", f"{p['mae']:.2f} points")
    c2.metric("90% interval coverage", f"{p['interval_coverage']:.1%}")
    c3.metric("Held-out episodes", f"{report['rows']} ({report['lost_to_followup']} lost)")
    left, right = st.columns(2)
    with left:
        st.markdown("**Predicted against observed**")
        st.altair_chart(alt.Chart(rows).mark_circle(opacity=0.35).encode(
            x=alt.X("predicted:Q", title="predicted reduction"),
            y=alt.Y("observed:Q", title="observed reduction"),
            color=alt.Color("covered:N", title="inside interval")))
    with right:
        st.markdown("**Policy value (mean pain reduction, 95% CI)**")
        pv = pd.DataFrame([{"policy": k, **{kk: v[kk] for kk in ("estimate", "ci_low", "ci_high")}}
                           for k, v in report["policy_value"].items()])
        base = alt.Chart(pv).encode(y=alt.Y("policy:N", title=None))
        st.altair_chart(base.mark_rule().encode(x=alt.X("ci_low:Q", title="points"), x2="ci_high:Q")
                        + base.mark_point(filled=True, size=80).encode(x="estimate:Q"))
    st.markdown("**Subgroups**")
    st.dataframe(pd.DataFrame(report["subgroups"]), hide_index=True, key="subgroups")

st.subheader("Compare and promote")
current = versions[versions["current"]]
st.text(f"Current model: v{int(current['version'].iloc[0])}" if len(current) else "No current model.")
if st.button(f"Compare v{version} with the current model", key="compare"):
    submit(svc, me, JobKind.COMPARE, {"version": version})
compared = show_job(svc, me, JobKind.COMPARE, f"Comparing v{version}", version=version)
if compared is not None and compared.result:
    verdict = compared.result
    table = [{"model": f"v{version} (candidate)", "policy value": verdict["candidate_value"],
              "95% CI": verdict["candidate_ci"]}]
    if verdict["current_value"] is not None:
        table.append({"model": "current", "policy value": verdict["current_value"],
                      "95% CI": verdict["current_ci"]})
    if verdict.get("difference") is not None:
        table.append({"model": "difference (same patients)", "policy value": verdict["difference"],
                      "95% CI": verdict["difference_ci"]})
    st.dataframe(table, hide_index=True)
    st.caption(verdict["message"])
c1, c2 = st.columns(2)
with c1:
    if st.button(f"Promote v{version} if the promotion gate passes it", key="promote",
                 help="The gate evaluates it afresh on recorded episodes it was not trained on: no "
                      "contraindicated plan, and a policy value not clearly below the current "
                      "model's. A supervisor may force a promotion with a reason."):
        submit(svc, me, JobKind.PROMOTE, {"version": version, "force": False, "reason": ""})
    show_job(svc, me, JobKind.PROMOTE, f"Promoting v{version}", version=version)
with c2:
    with st.form("rollback_form", clear_on_submit=True, border=False):  # the reason never carries over
        reason = st.text_input("Reason for rollback", key="rollback_reason")
        if st.form_submit_button("Roll back to the previous model"):
            submit(svc, me, JobKind.ROLLBACK, {"reason": reason})
    show_job(svc, me, JobKind.ROLLBACK, "Rolling back")
