"""Model artifacts: a joblib file plus a signed model card, and the one loader that verifies them.

Unpickling runs code, so an artifact is unpickled only when

1. its card carries a valid HMAC-SHA256 signature made with this installation's
   signing key (``RECOMMENDER_SIGNING_KEY_FILE``, kept outside the models folder):
   a file and card written by anyone else — even with a correct hash — is refused;
2. its size and SHA-256 match the signed card (and the hash the registry holds);
3. and then only classes of the scientific stack and this package are rebuilt
   (an allowlisting unpickler: defence in depth behind the signature).

The artifact stays an ordinary joblib file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import json
import pickle
import platform
from pathlib import Path

import joblib
from joblib.numpy_pickle import NumpyUnpickler, _validate_fileobject_and_memmap

from recommender.contract.atomic import atomic_write_bytes, create_key_file
from recommender.settings import env_name, get_settings

SIGNATURE_FIELD = "signature"
# Packages whose classes an artifact may rebuild, and the few functions numpy pickles use.
ALLOWED_CLASS_PACKAGES = ("sklearn", "recommender", "numpy", "scipy")
ALLOWED_FUNCTIONS = frozenset({
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
    ("numpy.random._pickle", "__bit_generator_ctor"), ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    ("joblib.numpy_pickle", "NumpyArrayWrapper"), ("builtins", "slice"), ("builtins", "set"),
    ("builtins", "frozenset"), ("builtins", "complex"), ("collections", "OrderedDict"),
    ("copyreg", "_reconstructor"), ("builtins", "object"),
})
DENIED_CLASSES = frozenset({("numpy", "memmap"), ("numpy", "DataSource")})


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


# ---------------------------------------------------------------------------- signing


class CardSigner:
    """Signs and checks model cards with the installation's key (HMAC-SHA256)."""

    def __init__(self, key_path: str | Path | None = None) -> None:
        self.key_path = Path(key_path or get_settings().resolved_signing_key_file)

    def create_key(self) -> bool:
        """Make the installation's signing key if there is none; True if made."""
        return create_key_file(self.key_path)

    def _key(self) -> bytes:
        try:
            return bytes.fromhex(self.key_path.read_text().strip())
        except (OSError, ValueError):
            raise ArtifactError(
                f"the model signing key {self.key_path} is missing or unreadable (setting "
                f"{env_name('signing_key_file')}); no artifact can be verified without it") from None

    @staticmethod
    def _payload(card: dict) -> bytes:
        body = {k: v for k, v in card.items() if k != SIGNATURE_FIELD}
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          default=str).encode()

    def sign(self, card: dict) -> dict:
        self.create_key()
        digest = hmac.new(self._key(), self._payload(card), hashlib.sha256).hexdigest()
        return {**card, SIGNATURE_FIELD: digest}

    def check(self, card: dict, where: Path) -> None:
        signature = card.get(SIGNATURE_FIELD)
        if not isinstance(signature, str):
            raise ArtifactError(f"{where}: the model card is not signed; refusing an artifact this "
                                "installation did not produce")
        expected = hmac.new(self._key(), self._payload(card), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected):
            raise ArtifactError(f"{where}: the model card's signature does not match this "
                                "installation's signing key (made elsewhere, or edited); refusing "
                                "to load")


# ---------------------------------------------------------------------------- save and load


def save_model(model: object, path: str | Path, card: dict, signer: CardSigner | None = None) -> dict:
    """Write the artifact and its signed card (each atomically); return the completed card."""
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
    card = (signer or CardSigner()).sign(card)
    atomic_write_bytes(path, data)
    atomic_write_bytes(card_path(path), json.dumps(card, indent=2, sort_keys=True).encode())
    return card


def read_card(path: str | Path, signer: CardSigner | None = None) -> dict:
    """The artifact's card, once its signature is verified."""
    cpath = card_path(path)
    if not cpath.is_file():
        raise ArtifactError(f"{path}: no model card ({cpath.name}); refusing an unknown artifact")
    try:
        card = json.loads(cpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{cpath}: model card is not valid JSON ({exc})") from None
    if not isinstance(card, dict) or "artifact_sha256" not in card:
        raise ArtifactError(f"{cpath}: model card has no artifact_sha256")
    (signer or CardSigner()).check(card, cpath)
    return card


class _AllowlistUnpickler(NumpyUnpickler):
    """joblib's unpickler, rebuilding only allowlisted classes and functions."""

    def find_class(self, module: str, name: str):
        if (module, name) in DENIED_CLASSES:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a model artifact")
        obj = super().find_class(module, name)
        if (module, name) in ALLOWED_FUNCTIONS:
            return obj
        if isinstance(obj, type) and module.split(".")[0] in ALLOWED_CLASS_PACKAGES:
            return obj
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a model artifact")


def _unpickle(data: bytes) -> object:
    with _validate_fileobject_and_memmap(io.BytesIO(data), "", None) as (fobj, _):
        return _AllowlistUnpickler("", fobj, ensure_native_byte_order=True).load()


def load_model(path: str | Path, expected_sha256: str | None = None,
               signer: CardSigner | None = None) -> tuple[object, dict]:
    """Load a verified artifact: (model, card).

    ``expected_sha256`` is the hash held elsewhere (the registry); it must agree
    with both the card and the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such model file")
    card = read_card(path, signer)
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
    try:
        return _unpickle(data), card
    except pickle.UnpicklingError as exc:
        raise ArtifactError(f"{path}: {exc}; refusing to load") from None
