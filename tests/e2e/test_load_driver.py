"""The load benchmark's websocket driver does a therapist's whole visit, as the browser does:
if it ever stopped doing so, the load table would time nothing."""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import ThreadPoolExecutor

from .conftest import CLINIC_ENV, ROOT


def test_the_websocket_driver_plans_and_accepts_like_a_browser(app_url, monkeypatch):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_load import STEPS, Pace, therapist_ws

    from recommender.devtools.demo import demo_password
    from recommender.services import open_service

    times: dict = {}
    visit = therapist_ws(app_url, "DEMO-0012", demo_password("therapist"), times, Pace(0, 0, seed=0))
    with ThreadPoolExecutor(1) as pool:  # its own event loop: Playwright's sync API may hold this thread's
        pool.submit(asyncio.run, visit).result()
    assert "failed" not in times
    assert {step: len(times.get(step, [])) for step in STEPS} == {
        "sign in": 1, "find patient": 1, "recommend": 1, "tune": 3, "accept": 1}

    for name, value in CLINIC_ENV[app_url].items():
        monkeypatch.setenv(name, value)
    svc = open_service()
    try:
        therapist = svc.sign_in("therapist", demo_password("therapist"))
        decision = svc.current_decision(therapist, "DEMO-0012")
        assert decision is not None  # the database, not the screen, has the accepted plan
    finally:
        svc.db.dispose()
