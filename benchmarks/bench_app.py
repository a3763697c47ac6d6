"""Measure the app's speed targets: a tuning interaction ≤ 300 ms of server time, and a page
load ≤ 1 s after first start.

    python benchmarks/bench_app.py          # writes docs/benchmarks-app.md

Server time is measured two ways: the service call behind a slider change
(`ClinicService.tune`), and the whole Streamlit script rerun of the planning page
after the change (Streamlit's AppTest runs the script in-process).  Page loads are
timed in Debian's chromium against `streamlit run`: from clicking "Sign in" until
the role's first page title is on screen, and from clicking a sidebar link until
that page's title is on screen.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
REPEATS = 20


def _ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.0f} (p90 {sorted(samples)[int(0.9 * len(samples)) - 1] * 1000:.0f})"


def server_side(folder: Path) -> dict:
    from streamlit.testing.v1 import AppTest

    from recommender.safety.plans import Plan
    from recommender.services.identity import Actor
    from recommender.web import ui

    ui.service.clear()
    svc = ui.service()
    me = Actor("therapist", "therapist")
    svc.recommend(me, "DEMO-0001")
    tune = []
    for i in range(REPEATS):
        plan = Plan(2, "moderate", i % 5, 3, 30, 8)
        t0 = time.perf_counter()
        svc.tune(me, "DEMO-0001", plan)
        tune.append(time.perf_counter() - t0)

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["actor"] = me
    at.session_state["last_active"] = time.time()
    at.run()
    next(s for s in at.selectbox if s.label == "Episode").select("DEMO-0002").run()
    at.button(key="recommend").click().run()
    rerun = []
    for i in range(REPEATS):
        slider = next(s for s in at.select_slider if s.label == "Own exercise days / week")
        t0 = time.perf_counter()
        slider.set_value(i % 8).run()
        rerun.append(time.perf_counter() - t0)
    return {"tune": tune, "rerun": rerun}


def browser_side(folder: Path, port: int = 8765) -> dict:
    from playwright.sync_api import sync_playwright

    from recommender.devtools.demo import demo_password

    env = {**os.environ, "RECOMMENDER_DATA_DIR": str(folder / "data"),
           "RECOMMENDER_MODEL_DIR": str(folder / "models")}
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"),
                             "--server.port", str(port), "--server.headless", "true"],
                            cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    loads: dict[str, list[float]] = {}
    try:
        time.sleep(5)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=os.environ.get("RECOMMENDER_CHROMIUM",
                                                                       "/usr/bin/chromium"), args=args)
            roles = (("therapist", ["Plan treatment", "Record follow-up"]),
                     ("datastaff", ["Import data", "Train and evaluate"]),
                     ("supervisor", ["Audit log", "Oversight", "Models"]),
                     ("admin", ["Users and roles"]))
            for username, titles in roles:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}")
                page.get_by_role("textbox", name="Username").fill(username)
                page.get_by_role("textbox", name="Password").fill(demo_password(username))
                t0 = time.perf_counter()
                page.get_by_role("button", name="Sign in").click()
                page.get_by_role("heading", name=titles[0]).wait_for()
                loads.setdefault("sign in → landing page", []).append(time.perf_counter() - t0)
                for _ in range(3 if len(titles) > 1 else 0):  # switch pages from the sidebar
                    for title in titles[1:] + titles[:1]:
                        t0 = time.perf_counter()
                        page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
                        page.get_by_role("heading", name=title).wait_for()
                        loads.setdefault(f"page switch ({username})", []).append(time.perf_counter() - t0)
                page.close()
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    return loads


def main() -> int:
    from recommender.devtools.demo import seed

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["RECOMMENDER_DATA_DIR"] = str(folder / "data")
        os.environ["RECOMMENDER_MODEL_DIR"] = str(folder / "models")
        t0 = time.perf_counter()
        seed()
        first_start = time.perf_counter() - t0
        server = server_side(folder)
        loads = browser_side(folder)
    import datetime as dt

    lines = [
        "# App speed", "",
        f"Measured on {dt.date.today().isoformat()} on this project's {os.cpu_count()}-core machine with:",
        "", "```bash", "python benchmarks/bench_app.py", "```", "",
        f"First start on an empty machine (schema, demo accounts, 4,000 simulated episodes imported, "
        f"model trained, checked and promoted): **{first_start:.1f} s** (target ≤ 60 s).", "",
        "| measurement | median ms (p90) | target ms |", "|---|---|---|",
        f"| tuning: `ClinicService.tune` (predict + audit event) | {_ms(server['tune'])} | ≤ 300 |",
        f"| tuning: whole planning-page rerun after a slider change | {_ms(server['rerun'])} | ≤ 300 |",
    ]
    lines += [f"| page load in chromium: {what} | {_ms(samples)} | ≤ 1000 |" for what, samples in loads.items()]
    text = "\n".join(lines) + "\n"
    (ROOT / "docs" / "benchmarks-app.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
