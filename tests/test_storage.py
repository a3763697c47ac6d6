"""Storage, accounts, roles, audit trail and registry — on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import re
import threading

import pandas as pd
import pytest
import sqlalchemy
from sqlalchemy import func, select, text

from recommender.safety import gate
from recommender.safety.plans import Plan
from recommender.services import InputRejected
from recommender.services.identity import SIGN_IN_FAILED, Actor, SignInFailed
from recommender.services.permissions import (
    ROLE_ACTIONS,
    Action,
    PermissionDenied,
    Role,
)
from recommender.storage.database import Database, DatabaseOutOfDate
from recommender.storage.schema import Decision

from .conftest import PASSWORD, intake_dict, make_service


def _new_episode(service, cohort, i=0, **changes) -> str:
    intake = intake_dict(cohort, i, episode_id=f"NEW-{i}-{len(changes)}", **changes)
    return service.save_intake(service.actors["therapist"], intake)


def test_schema_upgrade_and_out_of_date_refusal(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with pytest.raises(DatabaseOutOfDate, match="recommender db upgrade"):
        db.check_schema()
    assert db.upgrade() == db.head_revision()
    db.check_schema()
    with db.write() as s:
        s.execute(text("UPDATE alembic_version SET version_num = '0000'"))
    with pytest.raises(DatabaseOutOfDate, match="revision 0000"):
        db.check_schema()


def test_sqlite_settings(sqlite_service):
    with sqlite_service.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


# ---------------------------------------------------------------- accounts


def test_argon2id_at_owasp_minimum(service):
    with service.db.read() as s:
        stored = s.execute(text("SELECT password_hash FROM users WHERE username='admin'")).scalar()
    assert stored.startswith("$argon2id$")
    params = dict(p.split("=") for p in re.search(r"\$m=[^$]+", stored).group(0)[1:].split(","))
    assert int(params["m"]) >= 19456 and int(params["t"]) >= 2 and int(params["p"]) >= 1


def test_same_message_and_lockout_after_five(service):
    with pytest.raises(SignInFailed) as unknown:
        service.sign_in("nobody", PASSWORD)
    for _ in range(5):
        with pytest.raises(SignInFailed) as wrong:
            service.sign_in("therapist", "wrong-password!")
    assert str(unknown.value) == str(wrong.value) == SIGN_IN_FAILED
    with pytest.raises(SignInFailed):  # locked now, even with the right password
        service.sign_in("therapist", PASSWORD)
    actions = list(service.audit_events(service.actors["supervisor"])["action"])
    assert actions.count("failed_login") == 7 and actions.count("lockout") == 1
    service.enable_user(service.actors["admin"], "therapist")
    assert service.sign_in("therapist", PASSWORD) == service.actors["therapist"]


def test_user_commands_are_audited(service):
    service.add_user(service.actors["admin"], "newbie", "therapist", "lilac-tractor-window")
    service.set_role(service.actors["admin"], "newbie", "data_staff")
    service.reset_password(service.actors["admin"], "newbie", "orange-kettle-mountain")
    service.disable_user(service.actors["admin"], "newbie")
    with pytest.raises(SignInFailed):
        service.sign_in("newbie", "orange-kettle-mountain")
    events = service.audit_events(service.actors["supervisor"])
    changes = events[events["action"] == "user_change"]
    assert "password" not in " ".join(changes["after"]).replace('"password":"reset"', "")
    assert len(changes) >= 4 + 4  # four fixture users plus four changes
    with pytest.raises(ValueError, match="at least 15"):
        service.add_user(service.actors["admin"], "short", "therapist", "short")


# ---------------------------------------------------------------- permissions


def _attempt(service, actor: Actor, action: Action, episode: str, rec_id: int):
    calls = {
        Action.VIEW_PATIENTS: lambda: service.find_episodes(actor),
        Action.ENTER_INTAKE: lambda: service.save_intake(actor, {"episode_id": "X"}),
        Action.RECOMMEND: lambda: service.recommend(actor, episode),
        Action.TUNE: lambda: service.tune(actor, episode, Plan(0, "none", 2, 3, 30, 8)),
        Action.ACCEPT: lambda: service.accept(actor, rec_id, Plan(0, "none", 2, 3, 30, 8)),
        Action.RECORD_FOLLOWUP: lambda: service.record_followup(actor, episode, {"followup_pain_score": 3}),
        Action.RECORD_VISIT: lambda: service.record_visit(actor, episode, {}),
        Action.EXPORT_VISITS: lambda: service.export_visits(actor, "/nonexistent/x.csv"),
        Action.IMPORT: lambda: service.import_file(actor, b"x", "f.csv"),
        Action.TRAIN: lambda: service.train(actor),
        Action.EVALUATE: lambda: service.access.require(actor, Action.EVALUATE),
        Action.REQUEST_PROMOTION: lambda: service.access.require(actor, Action.REQUEST_PROMOTION),
        Action.ROLLBACK: lambda: service.rollback(actor),
        Action.EXPORT_TRAINING: lambda: service.export_training(actor, "/nonexistent/x.csv"),
        Action.VIEW_MODELS: lambda: service.model_versions(actor),
        Action.VIEW_AUDIT: lambda: service.verify_audit(actor),
        Action.EXPORT_AUDIT: lambda: service.export_audit(actor, "/nonexistent/x.csv"),
        Action.PROMOTE: lambda: service.access.require(actor, Action.PROMOTE),
        Action.FORCE_PROMOTE: lambda: service.promote(actor, 1, force=True, reason="r"),
        Action.MANAGE_USERS: lambda: service.list_users(actor),
    }
    return calls[action]()


def test_every_role_is_denied_every_action_outside_it(sqlite_service, trained):
    service = sqlite_service
    episode = _new_episode(service, trained["cohort"])
    rec_id, _ = service.recommend(service.actors["therapist"], episode)
    denials = 0
    for role in Role:
        actor = service.actors[role.value]
        for action in Action:
            if action in ROLE_ACTIONS[role]:
                continue
            with pytest.raises(PermissionDenied):
                _attempt(service, actor, action, episode, rec_id)
            denials += 1
    events = service.audit_events(service.actors["supervisor"])
    assert (events["action"] == "denied").sum() == denials
    # e.g. a data-staff user cannot accept a plan, an admin cannot recommend
    with pytest.raises(PermissionDenied, match="data staff may not accept"):
        service.accept(service.actors["data_staff"], rec_id, Plan(0, "none", 2, 3, 30, 8))


# ---------------------------------------------------------------- clinical flow


def test_recommend_accept_is_idempotent_and_override_needs_reason(service, trained):
    episode = _new_episode(service, trained["cohort"], 1)
    rec_id, rec = service.recommend(service.actors["therapist"], episode)
    first = service.accept(service.actors["therapist"], rec_id, rec.best.plan)
    assert service.accept(service.actors["therapist"], rec_id, rec.best.plan) == first  # double click
    other = Plan(0, "none", 1, 2, 30, 6)
    # a different plan for an episode that has one: a new decision, needing a reason for the change
    with pytest.raises(InputRejected, match="already has an accepted plan"):
        service.accept(service.actors["therapist"], rec_id, other, reason_code="patient_preference")
    with pytest.raises(InputRejected, match="choose a reason"):
        service.accept(service.actors["therapist"], rec_id, other, change_reason="moved house")
    second = service.accept(service.actors["therapist"], rec_id, other, reason_code="patient_preference",
                            change_reason="moved house")
    assert service.accept(service.actors["therapist"], rec_id, other) == second  # same plan again
    with service.db.read() as s:
        rows = s.execute(select(Decision).order_by(Decision.id)).scalars().all()
    assert [d.id for d in rows] == [first, second] and rows[1].supersedes_id == first
    assert service.current_decision(service.actors["therapist"], episode)["decision_id"] == second
    events = service.audit_events(service.actors["supervisor"])
    actions = list(events["action"])
    assert actions.count("accept") == 1 and actions.count("override") == 1
    # each decision's event names the recommendation, model and rules it came from
    version = service.current_version().version
    for action in ("accept", "override"):
        after = json.loads(events[events["action"] == action]["after"].iloc[-1])
        assert after["recommendation_id"] == rec_id and after["model_version"] == version
        assert after["ruleset_version"] == rec.ruleset_version


def test_contraindicated_plan_cannot_be_accepted(service, trained):
    episode = _new_episode(service, trained["cohort"], 2, phlebitis="true")
    rec_id, rec = service.recommend(service.actors["therapist"], episode)
    assert not any(p.plan.has_massage for p in rec.ranked())
    massage = Plan(2, "gentle", 2, 3, 30, 8)
    assert service.tune(service.actors["therapist"], episode, massage).blocked_by == ("CI-PHLEBITIS",)
    for role_actor in (service.actors["therapist"],):
        with pytest.raises(gate.GateViolation, match="CI-PHLEBITIS"):
            service.accept(role_actor, rec_id, massage, reason_code="clinical_judgement",
                           reason_text="insists", idempotency_key="k")
    with service.db.read() as s:
        assert s.execute(select(func.count(Decision.id))).scalar() == 0


def test_intake_validation_names_field_and_value(service, trained):
    bad = intake_dict(trained["cohort"], 0, episode_id="BAD-1", age="12", pain_region="elbow")
    with pytest.raises(InputRejected) as exc:
        service.save_intake(service.actors["therapist"], bad)
    found = {(e.column, e.value) for e in exc.value.errors}
    assert found == {("age", "12"), ("pain_region", "elbow")}


def test_import_is_all_or_nothing_and_export_round_trips(service, tmp_path):
    from recommender.contract.csv_io import read_episodes, to_csv_bytes
    from recommender.devtools.simulator import simulate

    cohort = simulate(200, seed=31)
    bad = cohort.episodes.copy().astype(object)
    bad.loc[7, "sex"] = "Q"
    with pytest.raises(InputRejected) as exc:
        service.import_file(service.actors["data_staff"], to_csv_bytes(bad), "bad.csv")
    assert [(e.row, e.column, e.value) for e in exc.value.errors] == [(9, "sex", "Q")]
    assert service.training_frame().empty
    refused = service.audit_events(service.actors["supervisor"]).iloc[-1]
    assert refused["action"] == "import" and refused["reason"].startswith("refused")
    service.import_file(service.actors["data_staff"], to_csv_bytes(cohort.episodes), "good.csv")
    with pytest.raises(InputRejected, match="already imported"):
        service.import_file(service.actors["data_staff"], to_csv_bytes(cohort.episodes), "again.csv")
    out = tmp_path / "export.csv"
    assert service.export_training(service.actors["data_staff"], out) == 200
    exported = read_episodes(out, "training")
    assert exported.report.valid
    original = read_episodes(to_csv_bytes(cohort.episodes), "training").frame
    cols = ["episode_id", "age", "pain_region", "massage_intensity", "followup_pain_score"]
    pd.testing.assert_frame_equal(exported.frame[cols].sort_values("episode_id").reset_index(drop=True),
                                  original[cols].sort_values("episode_id").reset_index(drop=True))


def test_the_upload_page_learns_which_rows_are_already_imported_before_import(service):
    """A file imported before once showed as valid with an Import button; only the import then
    refused it.  The check the import makes is offered to the page first, row by row."""
    from recommender.contract.csv_io import read_episodes, to_csv_bytes
    from recommender.devtools.simulator import simulate
    from recommender.services.permissions import PermissionDenied

    staff = service.actors["data_staff"]
    first, other = simulate(30, seed=41).episodes, simulate(30, seed=42).episodes
    parsed = read_episodes(to_csv_bytes(first), "training")
    assert service.already_imported(staff, parsed) == []
    service.import_file(staff, to_csv_bytes(first.iloc[:10]), "part.csv")
    clashes = service.already_imported(staff, parsed)
    assert [(e.row, e.column, e.value) for e in clashes] == [
        (i + 2, "episode_id", first["episode_id"].iloc[i]) for i in range(10)]  # file rows: header is row 1
    assert service.already_imported(staff, read_episodes(to_csv_bytes(other), "training")) == []
    with pytest.raises(PermissionDenied):
        service.already_imported(service.actors["therapist"], parsed)


def test_followup_flows_back_into_training(service, trained):
    episode = _new_episode(service, trained["cohort"], 3)
    rec_id, rec = service.recommend(service.actors["therapist"], episode)
    service.accept(service.actors["therapist"], rec_id, rec.best.plan)
    with pytest.raises(InputRejected) as exc:
        service.record_followup(service.actors["therapist"], episode, {"followup_pain_score": 14})
    assert exc.value.errors[0].column == "followup_pain_score"
    service.record_followup(service.actors["therapist"], episode, {"followup_pain_score": 2.5, "adherence": 0.9})
    frame = service.training_frame()
    row = frame[frame["episode_id"] == episode].iloc[0]
    assert row["followup_pain_score"] == 2.5
    assert row["massage_sessions_per_week"] == rec.best.plan.massage_sessions_per_week


# ---------------------------------------------------------------- audit trail


def _tamper(service, sql: str) -> None:
    """What an attacker with database access could do: bypass the append-only triggers."""
    with service.db.engine.connect() as conn:
        if service.db.is_sqlite:
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_events_no_update")
            conn.exec_driver_sql("DROP TRIGGER IF EXISTS audit_events_no_delete")
        else:
            conn.exec_driver_sql("ALTER TABLE audit_events DISABLE TRIGGER USER")
        conn.exec_driver_sql(sql)
        conn.commit()


def _populated(service, trained):
    episode = _new_episode(service, trained["cohort"], 4)
    rec_id, rec = service.recommend(service.actors["therapist"], episode)
    service.accept(service.actors["therapist"], rec_id, rec.best.plan)
    assert service.verify_audit(service.actors["supervisor"]).ok
    return service.audit_events(service.actors["supervisor"])


def test_audit_is_append_only(service, trained):
    events = _populated(service, trained)
    statements = ["UPDATE audit_events SET actor='x' WHERE seq=1", "DELETE FROM audit_events WHERE seq=1"]
    # the same event with another actor, written over the original in place
    forged = ("SELECT seq, ts, 'mallory', role, action, target, before, after, reason, prev_hash, "
              "hash FROM audit_events WHERE seq=1")
    if service.db.is_sqlite:  # REPLACE deletes the old row without firing DELETE triggers
        statements += [f"INSERT OR REPLACE INTO audit_events {forged}", f"REPLACE INTO audit_events {forged}"]
    else:
        statements += ["TRUNCATE audit_events",
                       f"INSERT INTO audit_events {forged} ON CONFLICT (seq) DO UPDATE SET actor = 'mallory'"]
    for sql in statements:
        with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"):
            with service.db.write() as s:
                s.execute(text(sql))
    after = service.audit_events(service.actors["supervisor"])
    assert after["actor"].tolist() == events["actor"].tolist()
    assert service.verify_audit(service.actors["supervisor"]).ok


@pytest.mark.parametrize("case", ["edit", "delete", "insert", "truncate"])
def test_tampering_is_detected_and_named(service, trained, case):
    events = _populated(service, trained)
    n = len(events)
    target = n // 2
    if case == "edit":
        _tamper(service, f"UPDATE audit_events SET reason='nothing happened' WHERE seq={target}")
    elif case == "delete":
        _tamper(service, f"DELETE FROM audit_events WHERE seq={target}")
    elif case == "insert":
        row = events.iloc[target - 1]
        _tamper(service, f"UPDATE audit_events SET seq = seq + 1000 WHERE seq > {target}")
        _tamper(service, "INSERT INTO audit_events (seq, ts, actor, role, action, target, before, after, "
                f"reason, prev_hash, hash) VALUES ({target + 1}, '{row['ts']}', 'mallory', 'admin', "
                f"'login', 'x', 'null', 'null', '', '{row['hash']}', '{'ab' * 32}')")
        _tamper(service, "UPDATE audit_events SET seq = seq - 999 WHERE seq > 1000")
    else:
        _tamper(service, f"DELETE FROM audit_events WHERE seq >= {n - 1}")
        _tamper(service, f"UPDATE audit_head SET seq = {n - 2}, hash = "
                f"(SELECT hash FROM audit_events WHERE seq = {n - 2})")
    result = service.verify_audit(service.actors["supervisor"])
    assert not result.ok
    expected = {"edit": target, "delete": target, "insert": target + 1, "truncate": n - 1}[case]
    assert result.first_bad_seq == expected, str(result)
    assert {"edit": "edited", "delete": "deleted", "insert": "inserted",
            "truncate": "truncated"}[case] in result.problem


def test_audit_export_is_formula_safe(service, trained, tmp_path):
    me = service.actors["therapist"]
    episode = _new_episode(service, trained["cohort"], 5)
    rec_id, rec = service.recommend(me, episode)
    service.accept(me, rec_id, rec.best.plan)
    service.record_followup(me, episode, {"followup_pain_score": 4.0})
    # a reason the user typed starts the audit event's reason cell
    service.record_followup(me, episode, {"followup_pain_score": 3.0},
                            correction_reason="=HYPERLINK(1)")
    out = tmp_path / "audit.csv"
    n = service.export_audit(service.actors["supervisor"], out)
    content = out.read_text()
    assert "'=HYPERLINK(1)" in content
    assert n >= 5 and len(pd.read_csv(out)) == n


# ---------------------------------------------------------------- concurrency and crashes


def test_eight_writers_hundred_accepts_each(service, trained):
    """8 therapists at once, each changing their own patient's plan 100 times: every change is
    a decision, nothing is lost, and the audit chain still verifies."""
    therapist = service.actors["therapist"]
    work = []
    for k in range(8):
        episode = _new_episode(service, trained["cohort"], 20 + k)
        rec_id, rec = service.recommend(therapist, episode)
        other = Plan(0, "none", 1, 2, 30, 6) if rec.best.plan != Plan(0, "none", 1, 2, 30, 6) \
            else Plan(0, "none", 2, 2, 30, 6)
        work.append((rec_id, rec.best.plan, other))
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        rec_id, best, other = work[k]
        try:
            for i in range(100):
                plan = best if i % 2 == 0 else other
                service.accept(therapist, rec_id, plan, reason_code="patient_preference",
                               change_reason=f"change {i}" if i else "")
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    with service.db.read() as s:
        assert s.execute(select(func.count(Decision.id))).scalar() == 800
    result = service.verify_audit(service.actors["supervisor"])
    assert result.ok, str(result)
    events = service.audit_events(service.actors["supervisor"])
    assert events["action"].isin(["accept", "override"]).sum() == 800


CRASHING_WRITER = r"""
import sys, time
from recommender.storage.audit import AuditTrail
from recommender.storage.database import Database
from recommender.storage.schema import Decision
from recommender.services import ClinicService
from recommender.services.identity import Actor
svc = ClinicService(Database(sys.argv[1]), AuditTrail(sys.argv[2], sys.argv[3]))
with svc.db.write() as s:
    for i in range(50):
        s.add(Decision(episode_id=int(sys.argv[4]), recommendation_id=int(sys.argv[5]),
                       accepted_plan={}, differences={},
                       reason_text="", ruleset_version="x", idempotency_key=f"crash{i}",
                       decided_by="therapist"))
        svc.audit.append(s, "therapist", "therapist", "accept", "episode:crash")
    s.flush()
    print("ready", flush=True)
    time.sleep(60)
"""


def test_kill_9_mid_transaction_leaves_no_partial_rows(service, trained, tmp_path):
    import subprocess
    import sys

    episode = _new_episode(service, trained["cohort"], 6)
    rec_id, _ = service.recommend(service.actors["therapist"], episode)
    with service.db.read() as s:
        episode_pk = s.execute(text("SELECT episode_id FROM recommendations WHERE id = :i"),
                               {"i": rec_id}).scalar()
    before = service.audit_events(service.actors["supervisor"])
    proc = subprocess.Popen([sys.executable, "-c", CRASHING_WRITER, service.db.url,
                             str(service.audit.key_path), str(service.audit.head_path),
                             str(episode_pk), str(rec_id)],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.kill()  # SIGKILL
    proc.wait()
    if service.db.is_sqlite:
        with service.db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    with service.db.read() as s:
        assert s.execute(select(func.count(Decision.id))).scalar() == 0
    assert len(service.audit_events(service.actors["supervisor"])) == len(before)
    assert service.verify_audit(service.actors["supervisor"]).ok
    # and the database is writable again at once
    rec_id, rec = service.recommend(service.actors["therapist"], episode)
    service.accept(service.actors["therapist"], rec_id, rec.best.plan)


# ---------------------------------------------------------------- registry


def test_registry_promotion_gate_force_and_rollback(sqlite_service, trained, tmp_path):
    from recommender.contract.csv_io import to_csv_bytes
    from recommender.devtools.simulator import simulate

    service = sqlite_service
    service.import_file(service.actors["data_staff"], to_csv_bytes(simulate(1500, seed=41).episodes), "history.csv")
    v2 = service.train(service.actors["data_staff"], seed=1)
    versions = service.model_versions(service.actors["data_staff"])
    assert list(versions["version"]) == [1, 2] and versions["current"].tolist() == [True, False]
    assert versions.loc[1, "policy_value"] is not None
    verdict = service.promote(service.actors["data_staff"], v2)
    assert verdict.violations == 0
    current = service.current_version().version
    assert current == (v2 if verdict.passed else 1)
    with pytest.raises(PermissionDenied):
        service.promote(service.actors["data_staff"], v2, force=True, reason="x")
    with pytest.raises(InputRejected, match="reason"):
        service.promote(service.actors["supervisor"], v2, force=True)
    if verdict.passed:
        with pytest.raises(ValueError, match="already current"):
            service.promote(service.actors["supervisor"], v2)
        assert service.rollback(service.actors["data_staff"], reason="clinicians reported odd plans") == 1
    assert service.current_version().version == 1
    service.promote(service.actors["supervisor"], v2, force=True, reason="validated on our own audit sample")
    assert service.current_version().version == v2
    assert service.rollback(service.actors["supervisor"], reason="back to the known model") == 1
    assert service.current_version().version == 1
    kinds = service.audit_events(service.actors["supervisor"])
    assert (kinds["action"] == "promote").sum() >= 3 and (kinds["action"] == "rollback").sum() >= 1
    # the registry hash is enforced on load: a tampered artifact is refused
    service.promote(service.actors["supervisor"], v2, force=True, reason="tamper check on our own copy")
    path = service.current_version().artifact_path
    assert str(tmp_path) in path  # never touch the shared fixture model
    service.registry._model_cache.clear()
    with open(path, "ab") as fh:
        fh.write(b"tampered")
    from recommender.model.artifacts import ArtifactError

    with pytest.raises(ArtifactError):
        service.current_model()


def test_concurrent_double_click_stores_one_decision(service, trained):
    episode = _new_episode(service, trained["cohort"], 7)
    rec_id, rec = service.recommend(service.actors["therapist"], episode)
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(
        service.accept(service.actors["therapist"], rec_id, rec.best.plan))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len(set(results)) == 1
    with service.db.read() as s:
        assert s.execute(select(func.count(Decision.id))).scalar() == 1


def test_imported_and_entered_ids_are_stored_exactly(sqlite_service, trained):
    """Formula escaping is for CSV cells only: stored values are what the user gave."""
    from recommender.contract.csv_io import to_csv_bytes
    from recommender.devtools.simulator import simulate

    svc = sqlite_service
    intakes = simulate(2, seed=5).intakes()
    intakes["episode_id"] = ["-IMP-1", "+IMP-2"[1:]]
    intakes["patient_id"] = ["-P-1", "P-2"]
    svc.import_file(svc.actors["data_staff"], to_csv_bytes(intakes), "intakes.csv", kind="intake")
    stored = svc.intake(svc.actors["therapist"], "-IMP-1")
    assert stored["episode_id"] == "-IMP-1" and stored["patient_id"] == "-P-1"


def test_a_file_name_too_long_for_the_database_is_refused_before_writing(sqlite_service):
    from recommender.contract.csv_io import to_csv_bytes
    from recommender.devtools.simulator import simulate

    data = to_csv_bytes(simulate(3, seed=5).intakes())
    with pytest.raises(InputRejected, match="at most 255"):
        sqlite_service.import_file(sqlite_service.actors["data_staff"], data, "x" * 300 + ".csv", "intake")


def test_the_demo_is_never_seeded_into_a_clinic_database(tmp_path, monkeypatch):
    from recommender.devtools import demo

    url = f"sqlite:///{tmp_path / 'clinic.sqlite3'}"
    monkeypatch.setenv("RECOMMENDER_DATA_DIR", str(tmp_path))
    assert demo.needs_seeding(url)  # brand new
    monkeypatch.setenv("RECOMMENDER_DEMO", "0")
    assert not demo.needs_seeding(url)  # production setting
    monkeypatch.delenv("RECOMMENDER_DEMO")
    svc = make_service(url, tmp_path)  # a clinic with users but no model promoted yet
    assert not demo.needs_seeding(url)
    with pytest.raises(demo.NotEmpty):
        demo.seed(url)
    assert svc.has_users() and not svc.model_versions(svc.actors["data_staff"]).shape[0]


def test_a_training_file_imported_as_intakes_is_refused(sqlite_service, trained):
    """Imported as intakes, past episodes silently became patients in care (plan and outcome
    columns were dropped without a word)."""
    from recommender.contract.csv_io import read_episodes, to_csv_bytes

    data = to_csv_bytes(trained["cohort"].episodes.head(4))
    assert any(w.startswith("not read (intake files do not have them): massage_sessions_per_week")
               for w in read_episodes(data, "intake").report.warnings)
    with pytest.raises(InputRejected, match="followup_pain_score.*Import it as training history"):
        sqlite_service.import_file(sqlite_service.actors["data_staff"], data, "history.csv", kind="intake")
    assert sqlite_service.find_episodes(sqlite_service.actors["therapist"]).empty
    events = sqlite_service.audit_events(sqlite_service.actors["supervisor"])
    assert events.iloc[-1]["reason"] == "refused: a training file imported as intakes"
    # the same with its outcome columns cut off: the plan columns still say what it is
    from recommender.contract.columns import OUTCOME

    plans_only = trained["cohort"].episodes.head(4).drop(columns=[c.name for c in OUTCOME],
                                                          errors="ignore")
    with pytest.raises(InputRejected, match="massage_sessions_per_week"):
        sqlite_service.import_file(sqlite_service.actors["data_staff"], to_csv_bytes(plans_only),
                                   "plans.csv", kind="intake")
    assert sqlite_service.find_episodes(sqlite_service.actors["therapist"]).empty


def test_an_import_file_name_with_control_characters_is_refused(sqlite_service, trained):
    from recommender.contract.csv_io import to_csv_bytes

    data = to_csv_bytes(trained["cohort"].episodes.head(2))
    with pytest.raises(InputRejected) as caught:
        sqlite_service.import_file(sqlite_service.actors["data_staff"], data, "evil\x1b[31m\u202egsm.csv")
    assert caught.value.errors[0].column == "file_name"


def test_an_empty_intake_names_every_missing_required_field(sqlite_service):
    with pytest.raises(InputRejected) as caught:
        sqlite_service.save_intake(sqlite_service.actors["therapist"], {})
    columns = {e.column for e in caught.value.errors}
    assert {"episode_id", "patient_id", "pain_score", "heart_condition"} <= columns


def test_the_import_page_and_the_import_share_one_refusal(trained):
    """The page said "30 valid row(s)" for files the import then refused."""
    import datetime as dt

    from recommender.contract.csv_io import read_episodes, to_csv_bytes
    from recommender.services.data import import_refusal

    history = trained["cohort"].episodes.head(3).copy()
    assert import_refusal(read_episodes(to_csv_bytes(history), "training"), "training",
                          dt.date(2026, 12, 5)) is None
    message, errors = import_refusal(read_episodes(to_csv_bytes(history), "intake"), "intake",
                                     dt.date(2026, 12, 5))
    assert "training file" in message and errors == []
    history["intake_date"] = ["2026-01-05", "2027-01-01", "2026-01-06"]
    message, errors = import_refusal(read_episodes(to_csv_bytes(history), "training"), "training",
                                     dt.date(2026, 12, 5))
    assert [(e.row, e.column, e.value) for e in errors] == [(3, "intake_date", "2027-01-01")]
