"""Model artifacts: a joblib file plus a model card, and the one loader that verifies them.

Unpickling runs code, so an artifact is unpickled only after its SHA-256 has
been checked against its card (and, when given, against the hash the model
registry holds).  A missing card, a truncated or edited file is refused
without being unpickled.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import platform
from pathlib import Path

import joblib

from recommender.contract.atomic import atomic_write_bytes


class ArtifactError(ValueError):
    """A model artifact that must not be loaded, with the reason."""


def card_path(model_path: str | Path) -> Path:
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".card.json")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    import numpy
    import pandas
    import scipy
    import sklearn

    from recommender import __version__

    return {"python": platform.python_version(), "numpy": numpy.__version__,
            "scipy": scipy.__version__, "pandas": pandas.__version__,
            "scikit-learn": sklearn.__version__, "joblib": joblib.__version__,
            "recommender": __version__}


def save_model(model: object, path: str | Path, card: dict) -> dict:
    """Write the artifact and its card (each atomically); return the completed card."""
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=3)
    data = buffer.getvalue()
    card = {
        **card,
        "artifact_file": Path(path).name,
        "artifact_sha256": sha256_bytes(data),
        "artifact_bytes": len(data),
        "library_versions": library_versions(),
        "created_at": card.get("created_at") or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    atomic_write_bytes(path, data)
    atomic_write_bytes(card_path(path), json.dumps(card, indent=2, sort_keys=True).encode())
    return card


def read_card(path: str | Path) -> dict:
    cpath = card_path(path)
    if not cpath.is_file():
        raise ArtifactError(f"{path}: no model card ({cpath.name}); refusing an unknown artifact")
    try:
        card = json.loads(cpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{cpath}: model card is not valid JSON ({exc})") from None
    if "artifact_sha256" not in card:
        raise ArtifactError(f"{cpath}: model card has no artifact_sha256")
    return card


def load_model(path: str | Path, expected_sha256: str | None = None) -> tuple[object, dict]:
    """Load a verified artifact: (model, card).

    ``expected_sha256`` is the hash held elsewhere (the registry); it must agree
    with both the card and the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such model file")
    card = read_card(path)
    data = path.read_bytes()
    actual = sha256_bytes(data)
    if "artifact_bytes" in card and len(data) != card["artifact_bytes"]:
        raise ArtifactError(
            f"{path}: file is {len(data)} bytes but its card says {card['artifact_bytes']} "
            f"(truncated or replaced); refusing to load"
        )
    if actual != card["artifact_sha256"]:
        raise ArtifactError(f"{path}: SHA-256 {actual[:12]}… does not match its card "
                            f"({card['artifact_sha256'][:12]}…); refusing to load")
    if expected_sha256 is not None and actual != expected_sha256:
        raise ArtifactError(f"{path}: SHA-256 {actual[:12]}… does not match the registry "
                            f"({expected_sha256[:12]}…); refusing to load")
    return joblib.load(io.BytesIO(data)), card
