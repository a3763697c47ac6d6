"""Shared fixtures: small simulated clinic files built once per session."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=150, deadline=None)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session", autouse=True)
def installation_keys(tmp_path_factory):
    """One model-signing key for the whole test session (as one installation has), kept
    outside any models folder; subprocesses and the app servers inherit it."""
    folder = tmp_path_factory.mktemp("keys")
    os.environ["RECOMMENDER_SIGNING_KEY_FILE"] = str(folder / "model-signing.key")
    yield folder
    os.environ.pop("RECOMMENDER_SIGNING_KEY_FILE", None)


@pytest.fixture(scope="session")
def small_cohort():
    from recommender.devtools.simulator import simulate

    return simulate(400, seed=7)


@pytest.fixture(scope="session")
def training_csv(tmp_path_factory, small_cohort):
    from recommender.contract.csv_io import write_csv

    path = tmp_path_factory.mktemp("data") / "train.csv"
    write_csv(small_cohort.episodes, path)
    return path


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A model trained on 3,000 simulated episodes, saved with its card."""
    from recommender.contract.csv_io import read_episodes, write_csv
    from recommender.devtools.simulator import simulate
    from recommender.model.training import train_from_file

    folder = tmp_path_factory.mktemp("model")
    cohort = simulate(3000, seed=21)
    path = folder / "train.csv"
    write_csv(cohort.episodes, path)
    parsed = read_episodes(path, "training")
    card = train_from_file(path, parsed, folder / "model.joblib", seed=0)
    from recommender.model.artifacts import load_model

    model, _ = load_model(folder / "model.joblib")
    return {"model": model, "card": card, "path": folder / "model.joblib", "train_csv": path,
            "cohort": cohort}


@pytest.fixture(scope="session")
def test_cohort():
    from recommender.devtools.simulator import simulate

    return simulate(300, seed=99)


@pytest.fixture(scope="session")
def typed_test_rows(test_cohort):
    from recommender.contract.csv_io import read_episodes, to_csv_bytes

    return read_episodes(to_csv_bytes(test_cohort.episodes), "training").frame


PASSWORD = "correct-horse-battery"
ROLES = ("therapist", "data_staff", "supervisor", "admin")


def _postgres_url() -> str | None:
    return os.environ.get("RECOMMENDER_TEST_POSTGRES_URL")


def postgres_available() -> str | None:
    """The PostgreSQL URL if a server answers, else None (tests are then skipped)."""
    url = _postgres_url()
    if not url:
        return None
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
        return url
    except Exception:
        return None


@pytest.fixture(params=["sqlite", "postgres"])
def backend_url(request, tmp_path):
    """A fresh, empty database URL on each backend (a private schema on PostgreSQL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'clinic.sqlite3'}"
        return
    url = postgres_available()
    if url is None:
        pytest.skip("PostgreSQL not reachable at RECOMMENDER_TEST_POSTGRES_URL "
                    f"({_postgres_url() or 'unset'})")
    import uuid

    import sqlalchemy

    schema = f"rec_test_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    yield f"{url}{sep}options=-csearch_path%3D{schema}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


def make_service(url: str, tmp_path, model_path=None):
    """Upgraded database with its audit key, users of every role signed in (``svc.actors``),
    and (optionally) a current model — force-promoted, since an empty clinic has no cohort."""
    from recommender.services import ClinicService
    from recommender.services.identity import SYSTEM
    from recommender.storage.audit import AuditTrail
    from recommender.storage.database import Database

    db = Database(url)
    db.upgrade()
    audit = AuditTrail(tmp_path / "audit.key", tmp_path / "audit-head.json")
    audit.create_key()
    svc = ClinicService(db, audit, model_dir=tmp_path / "models")
    for role in ROLES:
        svc.add_user(SYSTEM, role, role, PASSWORD)
    svc.actors = {role: svc.sign_in(role, PASSWORD) for role in ROLES}
    if model_path is not None:
        version = svc.register_artifact(SYSTEM, model_path)
        svc.promote(SYSTEM, version, force=True, reason="test fixture: no recorded cohort yet")
    return svc


@pytest.fixture
def service(backend_url, tmp_path, trained):
    svc = make_service(backend_url, tmp_path, trained["path"])
    yield svc
    svc.db.dispose()


@pytest.fixture
def sqlite_service(tmp_path, trained):
    svc = make_service(f"sqlite:///{tmp_path / 'clinic.sqlite3'}", tmp_path, trained["path"])
    yield svc
    svc.db.dispose()


def intake_dict(cohort, i: int = 0, **changes) -> dict:
    """A contract intake (as form values) from a simulated cohort row."""
    from recommender.contract.columns import INTAKE_COLUMNS
    from recommender.contract.csv_io import format_cell

    row = cohort.episodes.iloc[i]
    out = {c: format_cell(row[c]) for c in INTAKE_COLUMNS if c in row.index}
    out.update(changes)
    return out


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory):
    """A seeded demo clinic (small history, so the suite stays quick)."""
    from recommender.devtools.demo import seed

    folder = tmp_path_factory.mktemp("demo")
    env = {"RECOMMENDER_DATA_DIR": str(folder / "data"), "RECOMMENDER_MODEL_DIR": str(folder / "models")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        seed(episodes=1500)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return folder


@pytest.fixture
def demo_env(demo_dir, monkeypatch):
    monkeypatch.setenv("RECOMMENDER_DATA_DIR", str(demo_dir / "data"))
    monkeypatch.setenv("RECOMMENDER_MODEL_DIR", str(demo_dir / "models"))
    monkeypatch.delenv("RECOMMENDER_DATABASE_URL", raising=False)
    monkeypatch.setenv("RECOMMENDER_START_WORKER", "0")  # tests run the worker's jobs themselves
    from recommender.web import ui

    ui.service.clear()
    yield demo_dir
    ui.service.clear()
