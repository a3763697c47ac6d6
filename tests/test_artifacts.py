"""Model artifacts: card contents and refusal of tampered, truncated or unknown files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from recommender.model import artifacts
from recommender.model.artifacts import ArtifactError, card_path, load_model


def _copy(trained, tmp_path):
    dest = tmp_path / "m.joblib"
    shutil.copy(trained["path"], dest)
    shutil.copy(card_path(trained["path"]), card_path(dest))
    return dest


@pytest.fixture
def no_unpickling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an unverified artifact was unpickled")

    monkeypatch.setattr(artifacts, "_unpickle", refuse)


def test_card_records_provenance(trained):
    card = json.loads(card_path(trained["path"]).read_text())
    for key in ("training_file_sha256", "contract_version", "ruleset_version", "library_versions",
                "hyperparameters", "seed", "metrics", "created_at", "artifact_sha256"):
        assert key in card, key
    assert card["training"]["file_rows"] == 3000
    assert card["training"]["lost_to_followup"] > 0
    assert card["training_file_sha256"] == artifacts.sha256_file(trained["train_csv"])
    assert card["effect_model"]["chosen"] == "quadratic+0"  # 3,000 episodes: too few to contest
    assert card["effect_model"]["candidates"][0] == "quadratic+0"


def test_edited_byte_is_refused(trained, tmp_path, no_unpickling):
    path = _copy(trained, tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match its card"):
        load_model(path)


def test_truncated_file_is_refused(trained, tmp_path, no_unpickling):
    path = _copy(trained, tmp_path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ArtifactError, match="truncated"):
        load_model(path)


def test_unknown_artifact_without_card_is_refused(trained, tmp_path, no_unpickling):
    path = tmp_path / "stray.joblib"
    shutil.copy(trained["path"], path)
    with pytest.raises(ArtifactError, match="no model card"):
        load_model(path)


def test_registry_hash_must_agree(trained, tmp_path, no_unpickling):
    path = _copy(trained, tmp_path)
    with pytest.raises(ArtifactError, match="registry"):
        load_model(path, expected_sha256="0" * 64)


def test_verified_artifact_loads(trained):
    model, card = load_model(trained["path"], expected_sha256=trained["card"]["artifact_sha256"])
    assert card["kind"] == "TreatmentRecommender"
    assert hasattr(model, "estimator_")


def test_a_model_saved_before_pluggable_bases_still_predicts(trained):
    """Artifacts pickled before plan bases existed carry no ``phi_``: it is rebuilt."""
    import pickle

    est = trained["model"].estimator_
    state = est.__getstate__()
    for name in ("phi_", "basis_", "adaptive_rounds_", "selection_"):
        state.pop(name, None)
    old = pickle.loads(pickle.dumps(est))
    old.__dict__.clear()
    old.__setstate__(state)
    X = trained["model"].featurizer_.transform(trained["cohort"].episodes.head(5))
    plans = np.array([[2, 1, 2, 3, 30, 8]] * 5, dtype=float)
    assert old.basis_ == "quadratic"
    assert np.allclose(old.predict(np.hstack([X, plans])), est.predict(np.hstack([X, plans])))
