"""Where things live, from environment variables with working defaults under the current folder."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "RECOMMENDER_DATA_DIR"  # database, audit key and chain head
MODEL_DIR_ENV = "RECOMMENDER_MODEL_DIR"  # model artifacts and their cards


def data_dir() -> Path:
    return Path(os.environ.get(DATA_DIR_ENV) or Path.cwd() / "data")


def model_dir() -> Path:
    return Path(os.environ.get(MODEL_DIR_ENV) or Path.cwd() / "models")
