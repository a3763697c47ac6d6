"""Shared fixtures: small simulated clinic files built once per session."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=150, deadline=None)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def small_cohort():
    from recommender.simulator import simulate

    return simulate(400, seed=7)


@pytest.fixture(scope="session")
def training_csv(tmp_path_factory, small_cohort):
    from recommender.csv_io import write_csv

    path = tmp_path_factory.mktemp("data") / "train.csv"
    write_csv(small_cohort.episodes, path)
    return path


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A model trained on 3,000 simulated episodes, saved with its card."""
    from recommender.csv_io import read_episodes, write_csv
    from recommender.simulator import simulate
    from recommender.training import train_from_file

    folder = tmp_path_factory.mktemp("model")
    cohort = simulate(3000, seed=21)
    path = folder / "train.csv"
    write_csv(cohort.episodes, path)
    parsed = read_episodes(path, "training")
    card = train_from_file(path, parsed, folder / "model.joblib", seed=0)
    from recommender.artifacts import load_model

    model, _ = load_model(folder / "model.joblib")
    return {"model": model, "card": card, "path": folder / "model.joblib", "train_csv": path,
            "cohort": cohort}


@pytest.fixture(scope="session")
def test_cohort():
    from recommender.simulator import simulate

    return simulate(300, seed=99)


@pytest.fixture(scope="session")
def typed_test_rows(test_cohort):
    from recommender.csv_io import read_episodes, to_csv_bytes

    return read_episodes(to_csv_bytes(test_cohort.episodes), "training").frame
