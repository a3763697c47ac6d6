"""The train / recommend / evaluate commands, including refusals that write nothing."""

from __future__ import annotations

import json

import pandas as pd

from recommender.cli import main
from recommender.contract.csv_io import write_csv
from recommender.devtools.simulator import simulate


def test_train_refuses_invalid_rows_then_skips_them(tmp_path, capsys):
    cohort = simulate(600, seed=8)
    ep = cohort.episodes.copy().astype(object)
    ep.loc[4, "age"] = 300
    ep.loc[9, "pain_region"] = "elbow"
    path = tmp_path / "train.csv"
    write_csv(ep, path)
    out = tmp_path / "model.joblib"
    assert main(["train", str(path), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "row 6, column 'age': '300'" in err and "row 11, column 'pain_region': 'elbow'" in err
    assert not out.exists()
    assert main(["train", str(path), "--out", str(out), "--skip-invalid"]) == 0
    captured = capsys.readouterr()
    assert "2 invalid row(s) skipped" in captured.out
    assert out.exists() and (tmp_path / "model.joblib.card.json").exists()


def test_recommend_and_evaluate(trained, tmp_path, capsys):
    cohort = simulate(150, seed=77)
    test_csv = tmp_path / "test.csv"
    write_csv(cohort.episodes, test_csv)
    recs = tmp_path / "recs.csv"
    assert main(["recommend", str(test_csv), "--model", str(trained["path"]), "--out", str(recs)]) == 0
    frame = pd.read_csv(recs)
    assert len(frame) == 150 and frame["episode_id"].is_unique
    assert frame["model_sha256"].nunique() == 1
    capsys.readouterr()
    assert main(["evaluate", str(test_csv), "--model", str(trained["path"]), "--json",
                 "--simulated", "large_clinic", "--seed", "77"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["gate_violations"] == 0 and "normalised_value" in report["simulated"]


def test_recommend_refuses_tampered_model(trained, tmp_path, capsys):
    model = tmp_path / "m.joblib"
    model.write_bytes(trained["path"].read_bytes() + b"x")
    (tmp_path / "m.joblib.card.json").write_text(
        (trained["path"].parent / "model.joblib.card.json").read_text())
    intake = tmp_path / "in.csv"
    write_csv(simulate(5, seed=1).intakes(), intake)
    assert main(["recommend", str(intake), "--model", str(model), "--out", str(tmp_path / "r.csv")]) == 1
    assert "refusing to load" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()
