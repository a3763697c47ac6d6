"""Data staff: retrain, read the evaluation, compare with the current model, promote or roll back."""

import altair as alt
import pandas as pd
import streamlit as st

from recommender.web.ui import actor, service, show_refusal

svc, me = service(), actor()
st.title("Train and evaluate")

if st.button("Retrain on the recorded history", type="primary", key="retrain"):
    bar = st.progress(0.0, text="starting")
    try:
        version = svc.train(me, progress=lambda f, m: bar.progress(min(f, 1.0), text=m))
        st.success(f"Trained model version {version}.")
    except Exception as exc:  # noqa: BLE001
        show_refusal(exc)

versions = svc.model_versions(me)
if versions.empty:
    st.info("No models yet.")
    st.stop()
st.dataframe(versions, hide_index=True, key="versions")
version = st.selectbox("Model version", list(versions["version"])[::-1], key="eval_version")

report, rows = svc.evaluate_version(me, version)
if report is None:
    st.info("This version has no held-out cohort to evaluate on.")
else:
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
            color=alt.Color("covered:N", title="inside interval")), key="scatter")
    with right:
        st.markdown("**Policy value (mean pain reduction, 95% CI)**")
        pv = pd.DataFrame([{"policy": k, **{kk: v[kk] for kk in ("estimate", "ci_low", "ci_high")}}
                           for k, v in report["policy_value"].items()])
        base = alt.Chart(pv).encode(y=alt.Y("policy:N", title=None))
        st.altair_chart(base.mark_rule().encode(x=alt.X("ci_low:Q", title="points"), x2="ci_high:Q")
                        + base.mark_point(filled=True, size=80).encode(x="estimate:Q"), key="pv")
    st.markdown("**Subgroups**")
    st.dataframe(pd.DataFrame(report["subgroups"]), hide_index=True, key="subgroups")

st.subheader("Compare and promote")
current = versions[versions["current"]]
st.write(f"Current model: v{int(current['version'].iloc[0])}" if len(current) else "No current model.")
if st.button(f"Compare v{version} with the current model", key="compare"):
    try:
        verdict = svc.compare_with_current(me, int(version))
        rows = [{"model": f"v{version} (candidate)", "policy value": verdict.candidate_value,
                 "95% CI": verdict.candidate_ci}]
        if verdict.current_value is not None:
            rows.append({"model": "current", "policy value": verdict.current_value,
                         "95% CI": verdict.current_ci})
        st.table(rows)
        (st.success if verdict.passed else st.warning)(f"Promotion gate would say: {verdict.message}")
    except Exception as exc:  # noqa: BLE001
        show_refusal(exc)
c1, c2 = st.columns(2)
if c1.button(f"Request promotion of v{version}", key="promote"):
    try:
        verdict = svc.promote(me, int(version))
        (st.success if verdict.passed else st.error)(f"Promotion gate: {verdict.message}")
    except Exception as exc:  # noqa: BLE001
        show_refusal(exc)
reason = c2.text_input("Reason for rollback", key="rollback_reason")
if c2.button("Roll back to the previous model", key="rollback"):
    try:
        st.success(f"Current model is now v{svc.rollback(me, reason)}.")
    except Exception as exc:  # noqa: BLE001
        show_refusal(exc)
