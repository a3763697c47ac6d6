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
