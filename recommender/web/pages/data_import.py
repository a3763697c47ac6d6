"""Data staff: upload a contract CSV, see every bad cell, import a valid file."""

import hashlib

import streamlit as st

from recommender.contract.csv_io import ContractFileError, read_episodes, to_csv_bytes
from recommender.settings import get_settings
from recommender.web.ui import actor, errors_table, service, show_refusal, text

ERROR_LINES = 200  # the downloadable report has every error

svc, me = service(), actor()
st.title("Import data")
kind = st.radio("File kind", ["training", "intake"], horizontal=True, key="imp_kind",
                format_func={"training": "Past episodes (plan and outcome)",
                             "intake": "New patients (intake only)"}.get)
limit = get_settings().max_file_mb
upload = st.file_uploader(f"Contract CSV (UTF-8, at most {limit:g} MB)", type=["csv"], key="imp_file",
                          help="The format is docs/data-contract.md in the project.")
if upload is None:
    st.stop()
data = upload.getvalue()
name = text(upload.name)
try:
    parsed = read_episodes(data, kind)
except ContractFileError as exc:
    st.error(f"{name}: {text(exc)}")
    st.stop()
for warning in parsed.report.warnings:
    st.warning(text(warning))
if not parsed.report.valid:
    st.error(f"{name}: {len(parsed.report.errors)} error(s) in {len(parsed.report.bad_rows)} "
             f"of {parsed.report.n_rows} row(s). Nothing can be imported until they are fixed.")
    report = errors_table(parsed.report.errors)
    # plain text, as the CLI prints it: file cells never become links, images or HTML
    st.code(parsed.report.format(limit=ERROR_LINES), language=None)
    st.download_button("Download the error report (CSV)", to_csv_bytes(report), "errors.csv",
                       mime="text/csv", key="imp_errors_csv")
    st.stop()
st.success(f"{name}: {parsed.report.n_rows} valid row(s) "
           f"(sha256 {hashlib.sha256(data).hexdigest()[:12]}…)")
if st.button("Import", type="primary", key="imp_go"):
    try:
        with st.spinner("Importing…"):
            import_id, _ = svc.import_file(me, data, upload.name, kind)
        st.success(f"Imported {parsed.report.n_rows} episode(s) (import {import_id}).")
    except Exception as exc:  # noqa: BLE001
        show_refusal(exc)
