"""The demo clinic: a simulated history, a trained default model and demo accounts.

Seeded only into a brand-new, empty database (no users and no episodes), and
never where ``RECOMMENDER_DEMO=0`` — so a clinic's own database can never
receive simulated data or demo accounts.  The app's first start and
``recommender demo seed`` call the same :func:`seed`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from sqlalchemy import func, select

from recommender.contract.csv_io import format_cell, to_csv_bytes
from recommender.devtools.simulator import simulate
from recommender.services import open_service, upgrade_installation
from recommender.services.identity import PUBLISHED_PASSWORDS, SYSTEM
from recommender.settings import get_settings
from recommender.storage.database import Database
from recommender.storage.schema import Episode, User

# Long demo passwords (NIST SP 800-63B: ≥ 15 characters, not the username), printed in the
# README, so refused for every other account (``identity.PUBLISHED_PASSWORDS``). Demo only.
DEMO_ACCOUNTS = tuple((username, role, PUBLISHED_PASSWORDS[username]) for username, role in (
    ("therapist", "therapist"), ("datastaff", "data_staff"), ("supervisor", "supervisor"),
    ("admin", "admin")))
PHLEBITIS_EPISODE = "DEMO-PHLEBITIS"
IMPROVING_EPISODE = "DEMO-IMPROVING"
NOT_IMPROVING_EPISODE = "DEMO-NOT-IMPROVING"
DISCOMFORT_EPISODE = "DEMO-DISCOMFORT"
COURSE_WEEKS = 5  # the demo courses started this many weeks ago
# (days ago, pain, discomfort, massage given, adverse event) for each demo course
DEMO_COURSES = {
    IMPROVING_EPISODE: ((35, 7, 3, "moderate", False), (28, 6, 2, "moderate", False),
                        (21, 5, 2, "moderate", False), (14, 4, 3, "moderate", False),
                        (7, 4, 2, "moderate", False), (0, 3, 2, "moderate", False)),
    NOT_IMPROVING_EPISODE: ((35, 7, 4, "moderate", False), (28, 7, 3, "moderate", False),
                            (21, 7, 4, "moderate", True), (14, 6, 3, "moderate", False),
                            (7, 7, 3, "moderate", False), (0, 7, 4, "moderate", False)),
    DISCOMFORT_EPISODE: ((35, 7, 4, "firm", False), (28, 6, 5, "firm", False),
                         (21, 6, 4, "firm", False), (14, 6, 8, "firm", False),
                         (7, 6, 5, "firm", False), (0, 5, 7, "firm", False)),
}
DEMO_COURSE_PLAN = {"massage_sessions_per_week": 2, "muscle_training_sessions_per_week": 1,
                    "exercise_days_per_week": 3, "session_minutes": 30, "programme_weeks": 8}

Progress = Callable[[float, str], None]


class NotEmpty(ValueError):
    """The database already holds users or episodes: the demo is never seeded into it (a
    refusal, which the CLI reports as one line, like any other)."""


def seed_courses(service, intakes) -> None:
    """Three patients five weeks into an 8-week plan, recorded by the demo therapist: one
    improving, one not (with an adverse event), one with repeated high discomfort — so the
    day list and the progress view show every flag, and a review shows the discomfort cap."""
    from recommender.safety.plans import Plan
    from recommender.services.base import clinic_today

    therapist = service.sign_in("therapist", demo_password("therapist"))
    today = clinic_today()
    for (episode, course), (_, row) in zip(DEMO_COURSES.items(), intakes.iterrows()):
        intake = {c: v for c, v in row.items()}
        intake.update(episode_id=episode, patient_id=f"{episode}-P", pain_score=7,
                      pain_tolerance="medium", inflamed_skin_regions=frozenset(),
                      infected_regions=frozenset(), recent_fracture_regions=frozenset(),
                      anticoagulant_therapy=False,
                      intake_date=today - dt.timedelta(weeks=COURSE_WEEKS, days=1))
        service.save_intake(therapist, {k: format_cell(v) for k, v in intake.items()})
        rec_id, rec = service.recommend(therapist, episode)
        plan = Plan(massage_intensity=course[0][3], **DEMO_COURSE_PLAN)
        service.accept(therapist, rec_id, plan, reason_code=None if plan == rec.best.plan else
                       "patient_preference")
        for days_ago, pain, discomfort, massage, adverse in course:
            service.record_visit(therapist, episode, {
                "visit_date": today - dt.timedelta(days=days_ago), "kind": "session",
                "pain_score": pain, "discomfort": discomfort, "massage_intensity": massage,
                "training_given": days_ago % 14 == 0, "exercise_days_last_week": 2 + days_ago % 2,
                "adverse_event": adverse, "note": "patient reports bruising" if adverse else ""})
    service.sign_out(therapist)


def demo_password(username: str) -> str:
    return {name: password for name, _, password in DEMO_ACCOUNTS}[username]


def is_empty(url: str | None = None) -> bool:
    """No schema yet, or a schema with no users and no episodes."""
    db = Database(url)
    try:
        if db.current_revision() is None:
            return True
        with db.read() as s:
            users = s.execute(select(func.count(User.id))).scalar()
            episodes = s.execute(select(func.count(Episode.id))).scalar()
        return not users and not episodes
    finally:
        db.dispose()


def needs_seeding(url: str | None = None) -> bool:
    """Seed on first start only when demos are on and the database is brand new."""
    return get_settings().demo and is_empty(url)


def seed(url: str | None = None, progress: Progress | None = None, episodes: int | None = None) -> None:
    """Schema, keys, demo accounts, simulated history, the default model and today's patients."""
    if not is_empty(url):
        raise NotEmpty("the database already has users or episodes: the demo clinic is only "
                       "seeded into a new, empty database")
    step = progress or (lambda f, m: None)
    step(0.02, "creating the database schema")
    upgrade_installation(url)
    service = open_service(url)
    step(0.05, "creating demo accounts")
    for username, role, password in DEMO_ACCOUNTS:
        service.add_user(SYSTEM, username, role, password, demo_account=True)
    n = episodes or get_settings().demo_episodes
    step(0.1, f"simulating {n:,} past episodes of care")
    history = simulate(n, seed=1, scenario="large_clinic")
    step(0.2, "importing the clinic history")
    service.import_file(SYSTEM, to_csv_bytes(history.episodes), "simulated-history.csv")
    step(0.3, "training the default model")
    version = service.train(SYSTEM, seed=0, progress=lambda f, m: step(0.3 + 0.55 * f, f"training: {m}"))
    step(0.9, "checking and promoting the default model")
    verdict = service.promote(SYSTEM, version)
    if not verdict.passed:
        raise RuntimeError(f"the demo model did not pass the promotion gate: {verdict.message}")
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
    step(0.97, "recording three courses of care")
    seed_courses(service, new[clean.to_numpy()].iloc[1:4])
    step(1.0, "ready")
    service.db.dispose()
