"""Data staff: upload a contract CSV, see every bad cell, import a valid file."""

import hashlib

import streamlit as st

from recommender.contract.csv_io import ContractFileError, read_episodes
from recommender.web.ui import actor, errors_table, service, show_refusal

svc, me = service(), actor()
st.title("Import data")
kind = st.radio("File kind", ["training", "intake"], horizontal=True, key="imp_kind",
                help="training: past episodes with plan and outcome; intake: new patients")
upload = st.file_uploader("Contract CSV (UTF-8, at most 50 MB)", type=["csv"], key="imp_file")
if upload is None:
    st.stop()
data = upload.getvalue()
try:
    parsed = read_episodes(data, kind)
except ContractFileError as exc:
    st.error(f"{upload.name}: {exc}")
    st.stop()
for warning in parsed.report.warnings:
    st.warning(warning)
if not parsed.report.valid:
    st.error(f"{upload.name}: {len(parsed.report.errors)} error(s) in {len(parsed.report.bad_rows)} "
             f"of {parsed.report.n_rows} row(s). Nothing can be imported until they are fixed.")
    report = errors_table(parsed.report.errors)
    if len(report) <= 200:
        st.table(report.set_index("row"))
    else:
        st.dataframe(report, hide_index=True, key="imp_errors")
    st.download_button("Download the error report", report.to_csv(index=False), "errors.csv",
                       key="imp_errors_csv")
    st.stop()
st.success(f"{upload.name}: {parsed.report.n_rows} valid row(s) "
           f"(sha256 {hashlib.sha256(data).hexdigest()[:12]}…)")
if st.button("Import", type="primary", key="imp_go"):
    try:
        import_id, _ = svc.import_file(me, data, upload.name, kind)
        st.success(f"Imported {parsed.report.n_rows} episode(s) (import {import_id}).")
    except Exception as exc:  # noqa: BLE001
        show_refusal(exc)
