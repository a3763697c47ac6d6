"""Browser end-to-end fixtures: real `streamlit run` servers and Debian's chromium via Playwright.

No browser is downloaded: Playwright drives the system chromium (installed by .ci/run).
The app runs on SQLite and, when RECOMMENDER_TEST_POSTGRES_URL answers, on PostgreSQL.
A failing test leaves a full-page screenshot in test-artifacts/.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from ..conftest import postgres_available

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    return os.environ.get("RECOMMENDER_CHROMIUM") or shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(folder: Path, env: dict, port: int) -> subprocess.Popen:
    shutil.copytree(ROOT / ".streamlit", folder / ".streamlit", dirs_exist_ok=True)  # the shipped config
    log = open(folder / f"streamlit-{port}.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    pytest.fail("streamlit did not start: " + (folder / f"streamlit-{port}.log").read_text()[-2000:])


def _postgres_schema_url(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


CLINIC_ENV: dict[str, dict[str, str]] = {}  # app url -> its RECOMMENDER_* settings


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def app_url(request, tmp_path_factory):
    """A fresh clinic on each backend: the app seeds it on first start, as on a new machine."""
    if chromium_path() is None:
        pytest.skip("chromium not installed (apt-get install chromium; .ci/run does this)")
    folder = tmp_path_factory.mktemp(f"e2e-{request.param}")
    env = {**os.environ, "RECOMMENDER_DATA_DIR": str(folder / "data"),
           "RECOMMENDER_MODEL_DIR": str(folder / "models"), "RECOMMENDER_DEMO_EPISODES": "1500",
           "OMP_NUM_THREADS": "1"}
    env.pop("RECOMMENDER_DATABASE_URL", None)
    admin = schema = None
    if request.param == "postgres":
        url = postgres_available()
        if url is None:
            pytest.skip("PostgreSQL not reachable at RECOMMENDER_TEST_POSTGRES_URL")
        import sqlalchemy

        schema = f"rec_e2e_{uuid.uuid4().hex[:10]}"
        admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        env["RECOMMENDER_DATABASE_URL"] = _postgres_schema_url(url, schema)
    port = free_port()
    proc = start_app(folder, env, port)
    url = f"http://127.0.0.1:{port}"
    CLINIC_ENV[url] = {k: v for k, v in env.items() if k.startswith("RECOMMENDER_")}
    yield url
    proc.terminate()
    proc.wait(timeout=20)
    if admin is not None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        pytest.skip("chromium not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture
def page(browser, app_url, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        pg.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def sign_in(page, app_url: str, username: str) -> None:
    from playwright.sync_api import expect

    from recommender.devtools.demo import demo_password

    page.goto(app_url)
    # on first start the app seeds the demo clinic with a progress bar, then shows sign-in
    page.get_by_role("textbox", name="Username").wait_for(timeout=180_000)
    page.get_by_role("textbox", name="Username").fill(username)
    page.get_by_role("textbox", name="Password").fill(demo_password(username))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(f"{username} ·")).to_be_visible()
