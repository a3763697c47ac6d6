"""A clinic deployment: two app processes on one PostgreSQL database behind Debian's nginx
(deploy/nginx.conf, sticky by a route cookie), and the one job worker they share.

Signs in through the proxy, accepts a plan, restarts the app process that served the
browser, and finds the user still signed in with the accepted plan there."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect

from ..conftest import postgres_available
from .conftest import ROOT, _postgres_schema_url, free_port, sign_in, start_app
from .test_browser import choose_episode, open_page, settle

pytestmark = pytest.mark.browser
NGINX_CONF = ROOT / "deploy" / "nginx.conf"


def nginx_path() -> str | None:
    """nginx to run: RECOMMENDER_TEST_NGINX (.ci/run sets it, so CI never skips), else Debian's."""
    required = os.environ.get("RECOMMENDER_TEST_NGINX")
    if required:
        if not Path(required).is_file():
            pytest.fail(f"RECOMMENDER_TEST_NGINX={required} is not an nginx executable")
        return required
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)


def start_nginx(run_dir: Path, listen: int, app_ports: list[int]) -> subprocess.Popen:
    conf = (NGINX_CONF.read_text()
            .replace("@LISTEN@", f"127.0.0.1:{listen}")
            .replace("@RUN_DIR@", str(run_dir))
            .replace("@APP_SERVERS@", " ".join(f"server 127.0.0.1:{p};" for p in app_ports)))
    (run_dir / "nginx.conf").write_text(conf)
    proc = subprocess.Popen([nginx_path(), "-c", str(run_dir / "nginx.conf"), "-p", str(run_dir),
                             "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{listen}/_stcore/health", timeout=2)
            return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    pytest.fail("nginx did not start: " + (run_dir / "error.log").read_text()[-2000:])


def upstreams(run_dir: Path, context) -> set[int]:
    """The app ports that served this browser's requests, from nginx's access log (a
    websocket is logged when it closes, the page's other requests at once)."""
    route = next(c["value"] for c in context.cookies() if c["name"] == "recommender_route")
    log = (run_dir / "access.log").read_text()
    return {int(port) for port in re.findall(rf"upstream=127\.0\.0\.1:(\d+) route={re.escape(route)}$", log,
                                             flags=re.MULTILINE)}


def workers_of(procs) -> list:
    """Live `recommender worker` processes started by these app processes."""
    import psutil

    found = []
    for proc in procs:
        try:
            found += [c for c in psutil.Process(proc.pid).children()
                      if "worker" in c.cmdline() and c.status() != psutil.STATUS_ZOMBIE]
        except psutil.NoSuchProcess:
            pass
    return found


@pytest.fixture
def clinic(tmp_path, monkeypatch):
    """A demo clinic in a private PostgreSQL schema, with the app's environment."""
    if nginx_path() is None:
        pytest.skip("nginx not installed (apt-get install -y nginx; .ci/run installs it)")
    url = postgres_available()
    if url is None:
        pytest.skip("PostgreSQL not reachable at RECOMMENDER_TEST_POSTGRES_URL")
    import sqlalchemy

    from recommender.devtools.demo import seed

    schema = f"rec_deploy_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    env = {"RECOMMENDER_DATABASE_URL": _postgres_schema_url(url, schema),
           "RECOMMENDER_DATA_DIR": str(tmp_path / "data"), "RECOMMENDER_MODEL_DIR": str(tmp_path / "models"),
           "OMP_NUM_THREADS": "1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    seed(episodes=1500)
    yield {**os.environ, **env}
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    admin.dispose()


def test_two_app_processes_behind_nginx_keep_the_user_signed_in_across_a_restart(browser, clinic, tmp_path):
    ports = [free_port(), free_port()]
    apps = {port: start_app(tmp_path, clinic, port) for port in ports}
    run_dir = tmp_path / "nginx"
    run_dir.mkdir()
    proxy_port = free_port()
    nginx = start_nginx(run_dir, proxy_port, ports)
    proxy = f"http://127.0.0.1:{proxy_port}"
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    try:
        sign_in(page, proxy, "therapist")
        open_page(page, "Plan treatment")  # therapists land on My day
        choose_episode(page, "DEMO-0005")
        page.get_by_role("button", name="Recommend a plan").click()
        page.get_by_role("button", name="Accept plan").click()
        decision = page.get_by_text(re.compile(r"Accepted plan \(decision \d+"))
        expect(decision).to_be_visible()
        number, plan = re.match(r"Accepted plan \(decision (\d+),.*?\): (.+)", decision.inner_text()).groups()
        (served,) = upstreams(run_dir, context)  # one process served all of it

        apps[served].terminate()  # the process that served this browser goes away ...
        apps[served].wait(timeout=30)
        apps[served] = start_app(tmp_path, clinic, served)  # ... and comes back
        page.reload()
        expect(page.get_by_text("therapist ·")).to_be_visible()  # no second sign-in
        expect(page.get_by_role("textbox", name="Username")).to_have_count(0)
        # while it was down nginx passed the browser's requests on to the other process
        choose_episode(page, "DEMO-0005")
        expect(page.get_by_text(f"Accepted plan (decision {number}): {plan}")).to_be_visible()  # nothing lost
        settle(page)

        # one job worker for the deployment, whichever app process started it
        deadline = time.time() + 30
        while len(workers_of(apps.values())) != 1 and time.time() < deadline:
            time.sleep(0.5)
        assert len(workers_of(apps.values())) == 1
    finally:
        context.close()
        nginx.terminate()
        nginx.wait(timeout=20)
        for proc in apps.values():
            proc.terminate()
            proc.wait(timeout=30)
