"""Data staff: upload a contract CSV, see every bad cell, import a valid file.

A small file is checked on the page at once; a larger one (checking takes about a second
per 6 MB) is checked by the import job in the worker, which lists the bad cells if any."""

import hashlib

import streamlit as st

from recommender.contract.csv_io import ContractFileError, read_episodes, to_csv_bytes
from recommender.services.base import clinic_today
from recommender.services.data import import_refusal
from recommender.services.jobs import JobKind
from recommender.settings import get_settings
from recommender.web.jobs import show_job, submit
from recommender.web.ui import actor, errors_table, service, text

ERROR_LINES = 200  # the downloadable report has every error
INLINE_CHECK_MAX_BYTES = 3_000_000  # checked on the page within about half a second

svc, me = service(), actor()
st.title("Import data")
kind = st.radio("File kind", ["training", "intake"], horizontal=True, key="imp_kind",
                format_func={"training": "Past episodes (plan and outcome)",
                             "intake": "New patients (intake only)"}.get)
limit = get_settings().max_file_mb
upload = st.file_uploader(f"Contract CSV (UTF-8, at most {limit:g} MB)", type=["csv"], key="imp_file",
                          help="The format is docs/data-contract.md in the project.")
if upload is None:
    show_job(svc, me, JobKind.IMPORT, "Importing")
    st.stop()
data = upload.getvalue()
name = text(upload.name)
digest = hashlib.sha256(data).hexdigest()[:12]
if len(data) <= INLINE_CHECK_MAX_BYTES:
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
    refusal = import_refusal(parsed, kind, clinic_today())
    if refusal is not None:  # valid cells, but the import would still refuse it: say so now
        st.error(f"{name}: {text(refusal[0])}")
        if refusal[1]:
            st.dataframe(errors_table(refusal[1]), hide_index=True)
        st.stop()
    if clashes := svc.already_imported(me, parsed):
        st.error(f"{name}: {len(clashes)} episode(s) already imported; the import would refuse "
                 "the file and import nothing.")
        st.dataframe(errors_table(clashes), hide_index=True)
        st.stop()
    st.success(f"{name}: {parsed.report.n_rows} valid row(s) (sha256 {digest}…)")
else:
    st.info(f"{name}: {len(data) / 1e6:.1f} MB (sha256 {digest}…) — every cell is checked when "
            "you import; nothing is imported if any is bad.")
if st.button("Import", type="primary", key="imp_go"):
    submit(svc, me, JobKind.IMPORT, {"file_name": upload.name, "kind": kind}, payload=data)
show_job(svc, me, JobKind.IMPORT, "Importing")
