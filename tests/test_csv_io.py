"""Contract reading and writing: round trip, every error class, and refusals."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from recommender.contract.columns import Kind, columns_for
from recommender.contract.csv_io import (
    ContractFileError,
    escape_formula,
    read_episodes,
    to_csv_bytes,
    write_csv,
)


def _rows(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def test_simulated_file_round_trips_exactly(training_csv, tmp_path):
    first = read_episodes(training_csv, Kind.TRAINING)
    assert first.report.valid, first.report.format(5)
    again = tmp_path / "again.csv"
    write_csv(first.frame, again)
    assert again.read_bytes() == training_csv.read_bytes()


def test_bom_quotes_column_order_and_boolean_spellings(training_csv):
    df = _rows(training_csv).head(5)
    df = df[list(reversed(df.columns))]
    df["heart_condition"] = ["TRUE", "No", "1", "yes", "False"]
    df.loc[0, "patient_id"] = "Smith, Ann"  # needs quoting; read as one cell, then refused
    df.loc[1, "patient_id"] = "P-2:a/b.c_d"  # every character the identifier rule allows
    data = b"\xef\xbb\xbf" + _bytes(df)
    parsed = read_episodes(data, Kind.TRAINING)
    assert [str(e) for e in parsed.report.errors] == [
        "row 2, column 'patient_id': 'Smith, Ann' — expected 1 to 64 characters: letters, digits "
        "and - _ . : / (no spaces)"]
    assert list(parsed.frame["heart_condition"]) == [True, False, True, True, False]
    assert parsed.frame.loc[1, "patient_id"] == "P-2:a/b.c_d"


@pytest.mark.parametrize("value, ok", [("E-1", True), ("-E-minus", True), ("x" * 64, True),
                                       ("x" * 65, False), ("A B", False), ("a'b", False),
                                       ("a#b", False), ("ünï", False), ("", False)])
def test_identifiers_follow_contract_1_1(training_csv, value, ok):
    df = _rows(training_csv).head(2)
    df.loc[0, "episode_id"] = value
    errors = read_episodes(_bytes(df), Kind.TRAINING).report.errors
    assert (errors == []) is ok, errors
    if not ok:
        assert errors[0].row == 2 and errors[0].column == "episode_id" and errors[0].value == value


def test_pain_duration_has_an_upper_bound(training_csv):
    df = _rows(training_csv).head(2)
    df.loc[0, "pain_duration_months"] = "1201"
    errors = read_episodes(_bytes(df), Kind.TRAINING).report.errors
    assert [(e.row, e.column, e.value) for e in errors] == [(2, "pain_duration_months", "1201")]


@pytest.mark.parametrize(
    "column, value, expected_fragment",
    [
        ("age", "17", "integer from 18 to 100"),
        ("age", "forty", "integer from 18 to 100"),
        ("age", "40.5", "integer from 18 to 100"),
        ("pain_score", "11", "integer from 0 to 10"),
        ("pain_score", "", "a value (required)"),
        ("sex", "female", "one of F, M, X"),
        ("pain_region", "elbow", "one of neck"),
        ("heart_condition", "maybe", "true or false"),
        ("infected_regions", "neck;elbow", "region names"),
        ("intake_date", "31/12/2024", "ISO 8601"),
        ("bmi", "9", "number from 12 to 70"),
        ("followup_pain_score", "nan", "number from 0 to 10"),
        ("massage_sessions_per_week", "5", "integer from 0 to 4"),
        ("adherence", "1.5", "number from 0 to 1"),
        ("patient_id", "", "a value (required)"),
    ],
)
def test_each_bad_value_is_reported_with_row_column_value(training_csv, column, value,
                                                          expected_fragment):
    df = _rows(training_csv).head(10)
    df.loc[3, column] = value
    report = read_episodes(_bytes(df), Kind.TRAINING).report
    assert not report.valid
    [error] = [e for e in report.errors if e.column == column]
    assert error.row == 5  # header is row 1, data row index 3 is file row 5
    assert error.value == value
    assert expected_fragment in error.expected


def test_every_bad_row_is_named_and_nothing_dropped(training_csv):
    df = _rows(training_csv).head(50)
    bad = {4: ("age", "500"), 17: ("sex", "q"), 33: ("pain_cause", "magic")}
    for i, (col, val) in bad.items():
        df.loc[i, col] = val
    parsed = read_episodes(_bytes(df), Kind.TRAINING)
    assert parsed.report.bad_rows == [i + 2 for i in bad]
    assert len(parsed.frame) == 50
    assert len(parsed.valid_rows()) == 47


def test_duplicate_episode_and_inconsistent_intensity(training_csv):
    df = _rows(training_csv).head(6)
    df.loc[4, "episode_id"] = df.loc[1, "episode_id"]
    df.loc[2, "massage_sessions_per_week"] = "0"
    df.loc[2, "massage_intensity"] = "firm"
    report = read_episodes(_bytes(df), Kind.TRAINING).report
    messages = {(e.row, e.column): e.expected for e in report.errors}
    assert "first used in row 3" in messages[(6, "episode_id")]
    assert messages[(4, "massage_intensity")].startswith("none")


def test_ragged_row_is_a_row_error(training_csv):
    text = training_csv.read_text().splitlines()
    text[3] = text[3] + ",extra"
    report = read_episodes("\n".join(text).encode(), Kind.TRAINING).report
    assert [(e.row, e.column) for e in report.errors] == [(4, "*")]


def test_unknown_columns_warn_not_fail(training_csv):
    df = _rows(training_csv).head(3)
    df["therapist_notes"] = "x"
    parsed = read_episodes(_bytes(df), Kind.TRAINING)
    assert parsed.report.valid
    assert "therapist_notes" in parsed.report.warnings[0]


def test_intake_file_needs_no_plan_or_outcome(training_csv):
    df = _rows(training_csv).head(3)
    intake_cols = [c.name for c in columns_for(Kind.INTAKE) if c.name in df]
    assert read_episodes(_bytes(df[intake_cols]), Kind.INTAKE).report.valid


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"  \n\n", "empty"),
        (b"episode_id,patient_id\nE1,P1\n", "missing required column"),
        (b"\xff\xfeh\x00i\x00", "binary"),
        (b"age,sex\n\xe9t\xe9,F\n", "not UTF-8"),
        (b"just some words\nmore words\n", "does not look like comma-separated"),
        (b'a,b\n"unterminated,1\n', "not valid CSV near line 2"),
    ],
)
def test_whole_file_refusals(data, message):
    with pytest.raises(ContractFileError, match=message):
        read_episodes(data, Kind.TRAINING)


def test_missing_columns_are_named_with_case_hint(training_csv):
    df = _rows(training_csv).head(3).rename(columns={"age": "Age"}).drop(columns=["sex"])
    with pytest.raises(ContractFileError) as exc:
        read_episodes(_bytes(df), Kind.TRAINING)
    assert "age (found 'Age'" in str(exc.value) and "sex" in str(exc.value)


def test_header_only_file_is_refused(training_csv):
    header = training_csv.read_text().splitlines()[0] + "\n"
    with pytest.raises(ContractFileError, match="no episode rows"):
        read_episodes(header.encode(), Kind.TRAINING)


def test_size_limit_is_configurable(training_csv, monkeypatch):
    with pytest.raises(ContractFileError, match="over the"):
        read_episodes(training_csv, Kind.TRAINING, max_bytes=1000)
    monkeypatch.setenv("RECOMMENDER_MAX_FILE_MB", "0.001")
    with pytest.raises(ContractFileError, match="RECOMMENDER_MAX_FILE_MB"):
        read_episodes(training_csv, Kind.TRAINING)
    with pytest.raises(ContractFileError, match="over the"):
        read_episodes(io.BytesIO(training_csv.read_bytes()), Kind.TRAINING)


@pytest.mark.parametrize("text", ["=1+2", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_formula_cells_are_escaped_and_read_back(text):
    frame = pd.DataFrame({"episode_id": [text], "score": [-1.5]})
    out = to_csv_bytes(frame).decode()
    assert "'" + text.strip("\r") in out or "'\r" in out
    assert ",-1.5" in out  # numbers are not text: never escaped
    assert escape_formula("plain") == "plain"


def test_escaped_ids_round_trip(training_csv, tmp_path):
    df = _rows(training_csv).head(3)
    df.loc[0, "episode_id"] = "-E-minus"  # a valid id that a spreadsheet would run as a formula
    parsed = read_episodes(_bytes(df), Kind.TRAINING)
    assert parsed.frame.loc[0, "episode_id"] == "-E-minus"
    path = tmp_path / "out.csv"
    write_csv(parsed.frame, path)
    assert "\n'-E-minus," in path.read_text()
    assert read_episodes(path, Kind.TRAINING).frame.loc[0, "episode_id"] == "-E-minus"


def test_write_is_atomic_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "recs.csv"
    path.write_text("old content\n")
    import recommender.contract.atomic as atomic

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", boom)
    with pytest.raises(OSError):
        write_csv(pd.DataFrame({"a": [1]}), path)
    assert path.read_text() == "old content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["recs.csv"]
