"""Data staff: retrain, read the evaluation, compare with the current model, promote or roll back."""

import altair as alt
import pandas as pd
import streamlit as st

from recommender.web.reports import card_summary
from recommender.web.ui import actor, service, show_refusal, text
from recommender.web.wording import local_times

svc, me = service(), actor()
st.title("Train and evaluate")

if flash := st.session_state.pop("models_flash", None):
    getattr(st, flash[0])(flash[1])

if st.button("Retrain on the recorded history", type="primary", key="retrain"):
    bar = st.progress(0.0, text="starting")
    try:
        version = svc.train(me, progress=lambda f, m: bar.progress(min(f, 1.0), text=m))
        st.session_state["models_flash"] = ("success", f"Trained model version {version}.")
        st.rerun()
    except Exception as exc:  # noqa: BLE001
        show_refusal(exc)

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

with st.spinner(f"Evaluating v{version} on its held-out episodes…"):
    report, rows = svc.evaluate_version(me, version)
if report is None:
    st.info("This version has no held-out episodes of this clinic to evaluate on.")
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
    try:
        with st.spinner("Evaluating both models on episodes the candidate never saw…"):
            verdict = svc.compare_with_current(me, version)
        table = [{"model": f"v{version} (candidate)", "policy value": verdict.candidate_value,
                  "95% CI": verdict.candidate_ci}]
        if verdict.current_value is not None:
            table.append({"model": "current", "policy value": verdict.current_value,
                          "95% CI": verdict.current_ci})
        st.dataframe(table, hide_index=True)
        (st.success if verdict.passed else st.warning)(f"Promotion gate would say: {text(verdict.message)}")
    except Exception as exc:  # noqa: BLE001
        show_refusal(exc)
c1, c2 = st.columns(2)
if c1.button(f"Request promotion of v{version}", key="promote"):
    try:
        with st.spinner("Running the promotion gate…"):
            verdict = svc.promote(me, version)
        st.session_state["models_flash"] = ("success" if verdict.passed else "error",
                                            f"Promotion gate: {text(verdict.message)}")
        st.rerun()
    except Exception as exc:  # noqa: BLE001
        show_refusal(exc)
reason = c2.text_input("Reason for rollback", key="rollback_reason")
if c2.button("Roll back to the previous model", key="rollback"):
    try:
        with st.spinner("Checking the previous model again…"):
            restored = svc.rollback(me, reason)
        st.session_state["models_flash"] = ("success", f"Current model is now v{restored}.")
        st.rerun()
    except Exception as exc:  # noqa: BLE001
        show_refusal(exc)
