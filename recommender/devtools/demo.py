"""First start on a fresh machine: a simulated clinic history, a trained default model and
demo accounts — so the app works out of the box.  Idempotent: a seeded database is left alone."""

from __future__ import annotations

from collections.abc import Callable

from recommender.contract.csv_io import to_csv_bytes
from recommender.devtools.simulator import simulate
from recommender.services import ClinicService, open_service
from recommender.services.identity import SYSTEM
from recommender.settings import get_settings
from recommender.storage.database import Database

DEMO_PASSWORD_SUFFIX = "-demo-pw"
DEMO_USERS = (("therapist", "therapist"), ("datastaff", "data_staff"),
              ("supervisor", "supervisor"), ("admin", "admin"))
PHLEBITIS_EPISODE = "DEMO-PHLEBITIS"

Progress = Callable[[float, str], None]


def demo_password(username: str) -> str:
    return username + DEMO_PASSWORD_SUFFIX


def needs_seeding(url: str | None = None) -> bool:
    db = Database(url)
    try:
        if db.current_revision() != db.head_revision():
            return True
        return ClinicService(db).current_version() is None
    finally:
        db.dispose()


def seed(url: str | None = None, progress: Progress | None = None, episodes: int | None = None) -> None:
    """Create schema, demo accounts, simulated history, the default model and a few new patients."""
    step = progress or (lambda f, m: None)
    step(0.02, "creating the database schema")
    Database(url).upgrade()
    service = open_service(url)
    if not service.has_users():
        step(0.05, "creating demo accounts")
        for username, role in DEMO_USERS:
            service.add_user(SYSTEM, username, role, demo_password(username))
    if service.current_version() is None:
        n = episodes or get_settings().demo_episodes
        step(0.1, f"simulating {n:,} past episodes of care")
        history = simulate(n, seed=1, scenario="large_clinic")
        step(0.2, "importing the clinic history")
        service.import_file(SYSTEM, to_csv_bytes(history.episodes), "simulated-history.csv")
        step(0.3, "training the default model")
        version = service.train(SYSTEM, seed=0,
                                progress=lambda f, m: step(0.3 + 0.55 * f, f"training: {m}"))
        step(0.9, "checking and promoting the default model")
        service.promote(SYSTEM, version)
        step(0.95, "adding today's new patients")
        new = simulate(12, seed=500).intakes()
        new["episode_id"] = [f"DEMO-{i + 1:04d}" for i in range(len(new))]
        new["patient_id"] = [f"DEMO-P{i + 1:04d}" for i in range(len(new))]
        clean = ~(new["heart_condition"] | new["infectious_disease"] | new["phlebitis"]
                  | new["fever"] | new["deep_vein_thrombosis"])
        phlebitis = new[clean.to_numpy()].iloc[[0]].copy()
        phlebitis["episode_id"], phlebitis["patient_id"] = PHLEBITIS_EPISODE, "DEMO-P9999"
        phlebitis["phlebitis"] = True
        service.import_file(SYSTEM, to_csv_bytes(new), "todays-intakes.csv", kind="intake")
        service.import_file(SYSTEM, to_csv_bytes(phlebitis), "phlebitis-intake.csv", kind="intake")
    step(1.0, "ready")
    service.db.dispose()
