"""The command line at its edges: bad targets, nothing to do, missing arguments, clear messages."""

from __future__ import annotations

import subprocess
import sys

import pytest

from recommender.cli import main
from recommender.contract.csv_io import read_episodes, to_csv_bytes, write_csv
from recommender.devtools.simulator import simulate


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "recommender.cli", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})})


def test_out_to_a_directory_or_a_device_is_a_clear_error(tmp_path):
    for target in (str(tmp_path), "/dev/full"):
        done = run("simulate", "--episodes", "60", "--out", target)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert ("is a directory" in done.stderr) or ("not a regular file" in done.stderr)
    import os
    import stat

    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)  # the device was never replaced


def test_recommend_with_no_valid_row_refuses(trained, tmp_path):
    intakes = simulate(5, seed=3).intakes().astype(object)
    intakes["age"] = 7
    write_csv(intakes, tmp_path / "bad.csv")
    out = tmp_path / "recs.csv"
    code = main(["recommend", str(tmp_path / "bad.csv"), "--model", str(trained["path"]),
                 "--out", str(out), "--skip-invalid"])
    assert code == 1 and not out.exists()


@pytest.mark.parametrize("args", [["models", "promote"], ["models", "register"], ["audit", "export"]])
def test_missing_arguments_are_usage_errors(args):
    done = run(*args)
    assert done.returncode == 2 and "usage:" in done.stderr and "Traceback" not in done.stderr


def test_bad_sizes_get_a_clear_message(training_csv):
    done = run("validate", str(training_csv), "--max-mb", "nan")
    assert done.returncode == 2 and "not a positive number" in done.stderr
    done = run("validate", str(training_csv), env={"RECOMMENDER_MAX_FILE_MB": "lots"})
    assert done.returncode == 1 and "RECOMMENDER_MAX_FILE_MB" in done.stderr
    assert "Traceback" not in done.stderr
    done = run("validate", str(training_csv), "--max-mb", "0.001")
    assert done.returncode == 1 and "over the 0.001 MB limit" in done.stderr


def test_blank_lines_keep_their_row_numbers(training_csv):
    lines = training_csv.read_text().splitlines()
    lines.insert(2, "")  # a blank line after the first data row
    lines.insert(3, ",,,")
    bad = lines[5].split(",")
    header = lines[0].split(",")
    bad[header.index("age")] = "7"
    lines[5] = ",".join(bad)
    errors = read_episodes("\n".join(lines).encode(), "training").report.errors
    assert [(e.row, e.column) for e in errors] == [(6, "age")]  # line 6, as a spreadsheet shows


def test_every_bad_row_in_a_file_is_named_once(small_cohort):
    frame = small_cohort.episodes.head(20).astype(object)
    frame.loc[4, "sex"] = "Female"
    report = read_episodes(to_csv_bytes(frame), "training").report
    assert [str(e) for e in report.errors] == [
        "row 6, column 'sex': 'Female' — expected one of F, M, X"]


def test_demo_seed_into_a_clinic_with_users_is_a_one_line_refusal(sqlite_service, capsys):
    """Seeding the demo where a clinic already has users or episodes is refused (it would add
    accounts with published passwords): one line naming why, no traceback, nothing added."""
    before = set(sqlite_service.list_users(sqlite_service.actors["admin"])["username"])
    assert main(["demo", "seed", "--database-url", sqlite_service.db.url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the database already has users or episodes")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert set(sqlite_service.list_users(sqlite_service.actors["admin"])["username"]) == before
