"""Adversarial tests for the governance safeguards: each reproduces an attack and asserts it fails.

One test (or a few) per defect of the governance issue, numbered like it.  Database and
concurrency attacks run on SQLite and PostgreSQL (the ``service`` fixture's two backends).
"""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
import threading

import pytest
from sqlalchemy import func, select, text

from recommender.contract.csv_io import to_csv_bytes, write_csv
from recommender.devtools.simulator import simulate
from recommender.model.artifacts import (
    ArtifactError,
    CardSigner,
    card_path,
    load_model,
    sha256_bytes,
)
from recommender.safety.plans import Plan
from recommender.services import InputRejected
from recommender.services.identity import SYSTEM, Actor, SignInFailed, WeakPassword
from recommender.services.permissions import PermissionDenied
from recommender.services.sessions import SessionEnded
from recommender.storage.audit import AuditKeyMissing, AuditTampered, AuditTrail
from recommender.storage.schema import AuditEvent, ModelVersion

from ..conftest import PASSWORD, intake_dict, make_service

# ---------------------------------------------------------------- 1. code from a model file


class _Payload:
    """Pickles to a call that creates a marker file: proof that the pickle ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _forge(tmp_path, marker, key_file=None):
    """A crafted artifact with a card whose hash and size are right for it."""
    path = tmp_path / "evil.joblib"
    data = pickle.dumps(_Payload(marker))
    path.write_bytes(data)
    card = {"kind": "TreatmentRecommender", "artifact_sha256": sha256_bytes(data),
            "artifact_bytes": len(data), "training_episode_ids": []}
    if key_file is not None:  # signed, but with another installation's key
        signer = CardSigner(key_file)
        card = signer.sign(card)
    card_path(path).write_text(json.dumps(card))
    return path


@pytest.mark.parametrize("signed_elsewhere", [False, True])
def test_a_crafted_pickle_with_a_correct_hash_never_runs(tmp_path, signed_elsewhere):
    marker = tmp_path / "pwned"
    path = _forge(tmp_path, marker, tmp_path / "other.key" if signed_elsewhere else None)
    with pytest.raises(ArtifactError, match="not signed|signing key"):
        load_model(path)
    assert not marker.exists()


def test_the_cli_refuses_a_crafted_model_and_it_never_runs(tmp_path, training_csv):
    marker = tmp_path / "pwned"
    path = _forge(tmp_path, marker)
    for command in (["recommend", str(training_csv), "--model", str(path), "--out", str(tmp_path / "o.csv")],
                    ["evaluate", str(training_csv), "--model", str(path)]):
        done = subprocess.run([sys.executable, "-m", "recommender.cli", *command],
                              capture_output=True, text=True)
        assert done.returncode == 1 and "not signed" in done.stderr, done.stderr
    assert not marker.exists()


def test_registering_a_crafted_model_is_refused(sqlite_service, tmp_path):
    marker = tmp_path / "pwned"
    path = _forge(tmp_path, marker)
    with pytest.raises(ArtifactError):
        sqlite_service.register_artifact(sqlite_service.actors["data_staff"], path)
    with sqlite_service.db.read() as s:
        assert s.execute(select(func.count(ModelVersion.version))).scalar() == 1
    assert not marker.exists()


def test_a_signed_card_whose_artifact_was_swapped_is_refused(trained, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "m.joblib"
    shutil.copy(card_path(trained["path"]), card_path(path))
    path.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ArtifactError):
        load_model(path)
    assert not marker.exists()


def test_the_unpickler_allows_only_the_scientific_stack(trained, tmp_path, monkeypatch):
    """Defence in depth: even a correctly signed card cannot make a foreign class load."""
    from recommender.model import artifacts

    marker = tmp_path / "pwned"
    with pytest.raises(pickle.UnpicklingError):
        artifacts._unpickle(pickle.dumps(_Payload(marker)))
    assert not marker.exists()


# ---------------------------------------------------------------- 2. promotion without evaluation


def test_a_registered_model_is_evaluated_before_promotion(service, tmp_path):
    """An 80-row, constant-outcome model from the CLI: the gate evaluates it and states the
    cohort; with no unseen episodes recorded it is refused, not waved through."""
    from recommender.cli import main

    cohort = simulate(80, seed=3).episodes
    cohort["followup_pain_score"] = cohort["pain_score"]  # constant: no reduction at all
    write_csv(cohort, tmp_path / "tiny.csv")
    assert main(["train", str(tmp_path / "tiny.csv"), "--out", str(tmp_path / "tiny.joblib")]) == 0
    data = service.actors["data_staff"]
    version = service.register_artifact(data, tmp_path / "tiny.joblib")
    verdict = service.promote(data, version)
    assert not verdict.passed and verdict.cohort_size == 0 and "at least 50" in verdict.message
    assert service.current_version().version == 1
    # with recorded episodes it has not seen, it is evaluated — and loses to the current model
    service.import_file(data, to_csv_bytes(simulate(800, seed=44).episodes), "unseen.csv")
    verdict = service.promote(data, version)
    assert verdict.cohort_size > 500 and verdict.candidate_value is not None
    assert f"cohort: {verdict.cohort_size} held-out episodes" in verdict.message
    assert not verdict.passed and service.current_version().version == 1
    # a supervisor may still force it, with a reason
    forced = service.promote(service.actors["supervisor"], version, force=True, reason="pilot")
    assert service.current_version().version == version and forced.cohort_size > 500


@pytest.mark.parametrize("seed", [55, 60])
def test_a_clearly_worse_candidate_is_refused_on_the_paired_difference(
        sqlite_service, trained, tmp_path, seed):
    """Attack: promote a copy of the current model that gives every patient the guideline plan
    (truly 0.15 points worse on these cohorts).  The gate compares the two on the same
    patients and refuses it, stating the difference and its interval."""
    from recommender.model.artifacts import save_model

    model, card = load_model(trained["path"])
    model.set_params(switch_z=1e6)  # never leaves the guideline plan
    save_model(model, tmp_path / "guideline.joblib",
               {k: v for k, v in card.items() if k != "signature"})
    version = sqlite_service.register_artifact(sqlite_service.actors["data_staff"],
                                               tmp_path / "guideline.joblib")
    cohort = simulate(1500, seed=seed).episodes
    cohort["episode_id"] = "U-" + cohort["episode_id"]  # episodes neither model was fitted on
    write_csv(cohort, tmp_path / "unseen.csv")
    verdict = sqlite_service.promote(sqlite_service.actors["supervisor"], version,
                                     cohort_file=tmp_path / "unseen.csv", reason="pilot cohort")
    assert not verdict.passed and verdict.difference_ci[1] < 0
    assert verdict.difference == pytest.approx(verdict.candidate_value - verdict.current_value)
    assert "by more than chance" in verdict.message and f"{verdict.difference:+.2f}" in verdict.message
    assert sqlite_service.current_version().version == 1
    with sqlite_service.db.read() as s:
        event = s.execute(select(AuditEvent).where(AuditEvent.action == "promote")
                          .order_by(AuditEvent.seq.desc())).scalars().first()
    assert event.reason == "refused by the promotion gate"
    assert json.loads(event.after)["cohort_file"] == "unseen.csv"


def test_an_equal_candidate_passes_the_paired_comparison(sqlite_service, trained, tmp_path):
    """The same model registered again differs from the current one by exactly nothing."""
    version = sqlite_service.register_artifact(sqlite_service.actors["data_staff"], trained["path"])
    cohort = simulate(300, seed=45).episodes
    cohort["episode_id"] = "U-" + cohort["episode_id"]
    write_csv(cohort, tmp_path / "unseen.csv")
    verdict = sqlite_service.promote(sqlite_service.actors["supervisor"], version,
                                     cohort_file=tmp_path / "unseen.csv", reason="pilot cohort")
    assert verdict.passed and verdict.difference == 0 and verdict.difference_ci == (0, 0)
    assert sqlite_service.current_version().version == version


def test_a_requester_cannot_choose_the_patients_a_candidate_is_judged_on(
        sqlite_service, trained, tmp_path):
    """Attack: a cohort file of only the patients on whom candidate and current model give the
    same plan makes a worse candidate look equal (difference exactly 0).  Data staff may not
    promote on a file they chose; a supervisor may, with a reason, and the file is audited."""
    from recommender.model.artifacts import save_model

    model, card = load_model(trained["path"])
    model.set_params(switch_z=1e6)  # never leaves the guideline plan
    save_model(model, tmp_path / "guideline.joblib",
               {k: v for k, v in card.items() if k != "signature"})
    svc, data = sqlite_service, sqlite_service.actors["data_staff"]
    version = svc.register_artifact(data, tmp_path / "guideline.joblib")
    cohort = simulate(1500, seed=55).episodes
    cohort["episode_id"] = "U-" + cohort["episode_id"]
    current, _ = load_model(trained["path"])
    same = [a.best.plan == b.best.plan for a, b in zip(model.recommend_frame(cohort),
                                                       current.recommend_frame(cohort))]
    write_csv(cohort[same], tmp_path / "agree.csv")
    with pytest.raises(PermissionDenied):
        svc.promote(data, version, cohort_file=tmp_path / "agree.csv")
    with pytest.raises(InputRejected, match="cohort file needs a reason"):
        svc.promote(svc.actors["supervisor"], version, cohort_file=tmp_path / "agree.csv")
    assert svc.current_version().version == 1
    # the verdict on the cherry-picked file is what the attack relied on: equal, so it passes
    verdict = svc.promote(svc.actors["supervisor"], version, cohort_file=tmp_path / "agree.csv",
                          reason="pilot: only the agreeing patients")
    assert verdict.passed and verdict.difference == 0 and svc.current_version().version == version
    with svc.db.read() as s:
        event = s.execute(select(AuditEvent).where(AuditEvent.action == "promote")
                          .order_by(AuditEvent.seq.desc())).scalars().first()
    assert event.actor == "supervisor" and json.loads(event.after)["cohort_file"] == "agree.csv"
    assert event.reason == "pilot: only the agreeing patients"


def test_a_cohort_file_with_invalid_rows_is_refused_with_its_rows(sqlite_service, trained, tmp_path):
    cohort = simulate(300, seed=45).episodes
    cohort["episode_id"] = "U-" + cohort["episode_id"]
    cohort.loc[7, "pain_score"] = 42
    write_csv(cohort, tmp_path / "unseen.csv")
    version = sqlite_service.register_artifact(sqlite_service.actors["data_staff"], trained["path"])
    with pytest.raises(InputRejected, match="1 invalid row") as refused:
        sqlite_service.promote(sqlite_service.actors["supervisor"], version,
                               cohort_file=tmp_path / "unseen.csv", reason="pilot cohort")
    assert [(e.column, e.value) for e in refused.value.errors] == [("pain_score", "42")]
    assert sqlite_service.current_version().version == 1


def test_a_cohort_file_that_is_the_training_file_is_refused(sqlite_service, trained):
    with pytest.raises(InputRejected, match="trained on"):
        sqlite_service.registry.promotion_verdict(1, cohort_file=trained["train_csv"])


# ---------------------------------------------------------------- 3. rollback history


def test_rolling_back_twice_walks_back_and_never_reactivates(sqlite_service, trained):
    svc, sup = sqlite_service, sqlite_service.actors["supervisor"]
    v2 = svc.register_artifact(SYSTEM, trained["path"])
    v3 = svc.register_artifact(SYSTEM, trained["path"])
    svc.promote(sup, v2, force=True, reason="r")
    svc.promote(sup, v3, force=True, reason="r")
    with pytest.raises(InputRejected, match="reason"):
        svc.rollback(sup, reason=" ")
    assert svc.rollback(sup, reason="odd plans") == v2
    assert svc.rollback(sup, reason="still odd") == 1
    with pytest.raises(InputRejected, match="nothing to roll back to"):
        svc.rollback(sup, reason="again")
    assert svc.current_version().version == 1
    versions = svc.model_versions(sup)
    assert versions.set_index("version").loc[[v2, v3], "rolled_back"].all()


def test_rollback_target_is_rechecked(sqlite_service, trained):
    svc, sup = sqlite_service, sqlite_service.actors["supervisor"]
    v2 = svc.register_artifact(SYSTEM, trained["path"])
    svc.promote(sup, v2, force=True, reason="r")
    with svc.db.read() as s:
        v1_path = s.get(ModelVersion, 1).artifact_path
    svc.registry._model_cache.clear()
    with open(v1_path, "ab") as fh:  # the version we would return to was tampered with
        fh.write(b"x")
    with pytest.raises(ArtifactError):
        svc.rollback(sup, reason="back")
    assert svc.current_version().version == v2


# ---------------------------------------------------------------- 4. concurrent trainings


def test_concurrent_registrations_get_distinct_versions_and_files(service, trained):
    errors, versions = [], []

    def register():
        try:
            versions.append(service.register_artifact(SYSTEM, trained["path"]))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(versions) == [2, 3, 4, 5]
    with service.db.read() as s:
        rows = s.execute(select(ModelVersion)).scalars().all()
    for row in rows:  # every version's file still matches its database hash
        load_model(row.artifact_path, expected_sha256=row.artifact_sha256)
    service.registry.registry_dir.joinpath(".tmp-1-orphan.joblib").write_bytes(b"x")
    stray = service.registry.registry_dir / "model-unregistered.joblib"
    stray.write_bytes(b"x")
    import os
    os.utime(service.registry.registry_dir / ".tmp-1-orphan.joblib", (0, 0))
    removed = service.collect_garbage(service.actors["data_staff"])
    assert set(removed) == {".tmp-1-orphan.joblib", "model-unregistered.joblib"}


# ---------------------------------------------------------------- 5. truncation hidden by activity


def _events(svc) -> int:
    with svc.db.read() as s:
        return s.execute(select(func.count(AuditEvent.seq))).scalar()


def test_an_older_copy_of_the_database_is_refused_not_hidden(tmp_path, trained):
    """Restore an older database while the head file stays ahead: writes are refused with the
    missing range, and verify reports it, however many sign-ins are tried."""
    db_file = tmp_path / "clinic.sqlite3"
    svc = make_service(f"sqlite:///{db_file}", tmp_path, trained["path"])
    svc.db.dispose()
    backup = tmp_path / "backup.sqlite3"
    shutil.copy(db_file, backup)
    for _ in range(3):
        svc.sign_in("therapist", PASSWORD)
    ahead = svc.audit.read_head()[0]
    svc.db.dispose()
    shutil.copy(backup, db_file)  # the restore
    for f in (tmp_path / "clinic.sqlite3-wal", tmp_path / "clinic.sqlite3-shm"):
        f.unlink(missing_ok=True)
    behind = _events(svc)
    for _ in range(4):
        with pytest.raises(AuditTampered, match=f"events {behind + 1}–{ahead} are missing"):
            svc.sign_in("therapist", PASSWORD)
    assert _events(svc) == behind
    result = svc.audit.verify_with_db(svc.db) if hasattr(svc.audit, "verify_with_db") else None
    with svc.db.read() as s:
        result = svc.audit.verify(s)
    assert not result.ok and f"events {behind + 1}–{ahead} are missing" in result.problem


@pytest.mark.parametrize("damage", ["missing", "unreadable", "lowered"])
def test_a_damaged_head_file_is_never_silently_accepted(sqlite_service, damage):
    svc = sqlite_service
    svc.sign_in("therapist", PASSWORD)
    head = svc.audit.head_path
    if damage == "missing":
        head.unlink()
    elif damage == "unreadable":
        head.write_text("{not json")
    else:
        head.write_text(json.dumps({"seq": 1, "hash": svc.audit_events(svc.actors["supervisor"])["hash"][0]}))
    with svc.db.read() as s:
        result = svc.audit.verify(s)
    assert not result.ok and "truncation cannot be ruled out" in result.problem
    if damage == "lowered":  # the next write records the gap in the trail itself
        svc.sign_in("therapist", PASSWORD)
        events = svc.audit_events(svc.actors["supervisor"])
        assert "head_gap" in set(events["action"])
    else:  # never recreated: writes stay refused
        with pytest.raises(AuditTampered):
            svc.sign_in("therapist", PASSWORD)
        assert damage != "missing" or not head.exists()


# ---------------------------------------------------------------- 6. verify changes what it checks


def test_verify_writes_nothing_before_it_verifies(sqlite_service, tmp_path, monkeypatch):
    from recommender.cli import main

    svc = sqlite_service
    head = svc.audit.head_path
    head.write_text(json.dumps({"seq": 99999, "hash": "f" * 64}))  # tampered head file
    before, head_text = _events(svc), head.read_text()
    monkeypatch.setenv("RECOMMENDER_DATABASE_URL", svc.db.url)
    monkeypatch.setenv("RECOMMENDER_AUDIT_KEY_FILE", str(svc.audit.key_path))
    monkeypatch.setenv("RECOMMENDER_AUDIT_HEAD_FILE", str(head))
    monkeypatch.setenv("RECOMMENDER_PASSWORD", PASSWORD)
    assert main(["audit", "verify", "--user", "supervisor"]) == 1
    assert _events(svc) == before and head.read_text() == head_text


def test_a_missing_key_is_an_error_naming_the_setting_and_never_minted(sqlite_service):
    svc = sqlite_service
    key = svc.audit.key_path
    key.unlink()
    fresh = AuditTrail(key, svc.audit.head_path)
    with svc.db.read() as s, pytest.raises(AuditKeyMissing, match="RECOMMENDER_AUDIT_KEY_FILE"):
        fresh.verify(s)
    from recommender.services import ClinicService

    with pytest.raises(AuditKeyMissing):
        ClinicService(svc.db, fresh).sign_in("therapist", PASSWORD)
    assert not key.exists()


# ---------------------------------------------------------------- 7. one junk row blocks the clinic


def test_a_junk_audit_row_gives_a_clear_refusal_and_verify_still_runs(service):
    last = _events(service)
    with service.db.engine.begin() as conn:
        conn.execute(text("INSERT INTO audit_events (seq, ts, actor, role, action, target, before, "
                          "after, reason, prev_hash, hash) VALUES (:s, 'x', 'x', 'x', 'login', '', "
                          "'null', 'null', '', :h, :h)"), {"s": last + 1, "h": "0" * 64})
    with pytest.raises(AuditTampered, match=f"audit trail tampered at event {last + 1} — run "
                                            "`recommender audit verify`"):
        service.sign_in("therapist", PASSWORD)
    supervisor = service.authenticate("supervisor", PASSWORD)  # signs in without writing
    result = service.verify_audit(supervisor)
    assert not result.ok and result.first_bad_seq == last + 1


# ---------------------------------------------------------------- 8. sessions and actors


def test_a_forged_actor_is_not_trusted(service):
    for forged in (Actor("ghost", "admin"), Actor("admin", "admin"), Actor("system", "system"),
                   Actor("admin", "admin", "made-up-token")):
        with pytest.raises(PermissionDenied):
            service.list_users(forged)
    events = service.audit_events(service.actors["supervisor"])
    assert (events["reason"].str.startswith("no valid session")).sum() == 4


def test_disabling_demoting_or_resetting_ends_open_sessions(service):
    admin = service.actors["admin"]
    therapist, supervisor, data = (service.actors[r] for r in ("therapist", "supervisor", "data_staff"))
    service.disable_user(admin, "therapist")
    with pytest.raises(SessionEnded):
        service.find_episodes(therapist)
    service.set_role(admin, "supervisor", "therapist")  # demoted: the old rights are gone
    with pytest.raises(PermissionDenied):
        service.audit_events(supervisor)
    service.reset_password(admin, "data_staff", "violet-compass-harbour")
    with pytest.raises(SessionEnded):
        service.model_versions(data)


def test_the_last_active_admin_cannot_be_disabled_or_demoted(service):
    admin = service.actors["admin"]
    with pytest.raises(InputRejected, match="last active administrator"):
        service.disable_user(admin, "admin")
    with pytest.raises(InputRejected, match="last active administrator"):
        service.set_role(admin, "admin", "therapist")
    service.add_user(admin, "second", "admin", "velvet-lighthouse-cinnamon")
    service.set_role(admin, "admin", "therapist")  # fine now: another admin remains
    with pytest.raises(SessionEnded):
        service.list_users(admin)


# ---------------------------------------------------------------- 9. password policy


@pytest.mark.parametrize("password", ["password12", " " * 15, "therapist-long-pw", "therapist",
                                      "tsipareht-reversed", "passwordpassword1", "qwertyuiopasdfgh"])
def test_weak_passwords_are_refused(sqlite_service, password):
    with pytest.raises(WeakPassword):
        sqlite_service.reset_password(sqlite_service.actors["admin"], "therapist", password)


def test_the_readme_demo_passwords_are_the_refused_ones():
    """The deny-list follows the README: a demo password printed there is a published one."""
    import re
    from pathlib import Path

    from recommender.services.identity import PUBLISHED_PASSWORDS

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    printed = dict(re.findall(r"^\| `([a-z]+)` \| `([^`]+)` \|", readme, flags=re.M))
    assert printed == PUBLISHED_PASSWORDS


@pytest.mark.parametrize("attack", ["admin adds an account", "admin resets a demo account",
                                    "first admin from the command line", "admin claims a demo account",
                                    "spelling variant"])
def test_a_published_demo_password_is_refused_for_a_real_account(sqlite_service, attack):
    """The README prints the demo passwords; an installation must not end up with an account
    anyone can sign in to, however the password is set."""
    from recommender.services.identity import PUBLISHED_PASSWORDS

    svc, admin = sqlite_service, sqlite_service.actors["admin"]
    call = {
        "admin adds an account": lambda: svc.add_user(admin, "anna", "admin", PUBLISHED_PASSWORDS["admin"]),
        "admin resets a demo account": lambda: svc.reset_password(admin, "therapist",
                                                                  PUBLISHED_PASSWORDS["therapist"]),
        # cmd_users' first administrator is added by the system, without the demo flag
        "first admin from the command line": lambda: svc.add_user(SYSTEM, "admin2", "admin",
                                                                  PUBLISHED_PASSWORDS["admin"]),
        "admin claims a demo account": lambda: svc.add_user(admin, "datastaff", "data_staff",
                                                            PUBLISHED_PASSWORDS["datastaff"],
                                                            demo_account=True),
        "spelling variant": lambda: svc.add_user(admin, "anna", "admin", "Amber Orchard Window 93"),
    }[attack]
    with pytest.raises(WeakPassword, match="printed in the README"):
        call()
    users = svc.list_users(admin)
    assert not {"anna", "admin2"} & set(users["username"])  # nothing was created
    with pytest.raises(SignInFailed):  # and the demo account was not reset
        svc.sign_in("therapist", PUBLISHED_PASSWORDS["therapist"])


def test_the_demo_seeding_alone_sets_a_demo_accounts_published_password(sqlite_service):
    from recommender.services.identity import PUBLISHED_PASSWORDS

    svc = sqlite_service
    svc.add_user(SYSTEM, "datastaff", "data_staff", PUBLISHED_PASSWORDS["datastaff"], demo_account=True)
    assert svc.sign_in("datastaff", PUBLISHED_PASSWORDS["datastaff"]).role == "data_staff"
    with pytest.raises(WeakPassword):  # another demo account's password, even by the system
        svc.add_user(SYSTEM, "supervisor2", "supervisor", PUBLISHED_PASSWORDS["supervisor"],
                     demo_account=True)


def test_demo_accounts_keeping_their_published_passwords_are_named_until_dealt_with(
        sqlite_service, monkeypatch, capsys):
    """An installation that kept the demo (RECOMMENDER_DEMO left on) has accounts anyone who
    read the README can sign in to: the admin is told which, until each is disabled or reset;
    an account of the same name with its own password is never named."""
    from recommender.cli import main
    from recommender.services.identity import PUBLISHED_PASSWORDS

    svc, admin = sqlite_service, sqlite_service.actors["admin"]
    svc.add_user(SYSTEM, "datastaff", "data_staff", PUBLISHED_PASSWORDS["datastaff"], demo_account=True)
    # "therapist", "supervisor" and "admin" exist with the fixture's own password
    assert svc.published_password_accounts(admin) == ["datastaff"]
    demo = svc.sign_in("datastaff", PUBLISHED_PASSWORDS["datastaff"])
    assert svc.has_published_password(demo)
    assert not svc.has_published_password(svc.actors["therapist"])
    assert not svc.has_published_password(admin)

    monkeypatch.setenv("RECOMMENDER_DATABASE_URL", svc.db.url)
    monkeypatch.setenv("RECOMMENDER_AUDIT_KEY_FILE", str(svc.audit.key_path))
    monkeypatch.setenv("RECOMMENDER_AUDIT_HEAD_FILE", str(svc.audit.head_path))
    monkeypatch.setenv("RECOMMENDER_PASSWORD", PASSWORD)
    capsys.readouterr()
    assert main(["users", "list", "--user", "admin"]) == 0
    assert "password the README prints for them: datastaff;" in capsys.readouterr().err
    # every signed-in command run as the demo account itself says so, as the app's sidebar does
    monkeypatch.setenv("RECOMMENDER_PASSWORD", PUBLISHED_PASSWORDS["datastaff"])
    assert main(["models", "list", "--user", "datastaff"]) == 0
    assert "datastaff signs in with the password the README prints" in capsys.readouterr().err
    main(["audit", "verify", "--user", "datastaff"])  # signs in read-only: warned all the same
    assert "datastaff signs in with the password the README prints" in capsys.readouterr().err
    monkeypatch.setenv("RECOMMENDER_PASSWORD", PASSWORD)
    assert main(["models", "list", "--user", "supervisor"]) == 0  # its own password: no warning
    assert "README" not in capsys.readouterr().err

    svc.disable_user(admin, "datastaff")
    assert svc.published_password_accounts(admin) == []
    svc.enable_user(admin, "datastaff")
    assert svc.published_password_accounts(admin) == ["datastaff"]
    svc.reset_password(admin, "datastaff", "quiet-lantern-meadow-spoon")
    assert svc.published_password_accounts(admin) == []
    assert main(["users", "list", "--user", "admin"]) == 0
    assert "warning" not in capsys.readouterr().err
    with pytest.raises(PermissionDenied):  # who keeps a published password is an admin's business
        svc.published_password_accounts(svc.actors["supervisor"])


# ---------------------------------------------------------------- 10. permission before validation


@pytest.mark.parametrize("call", ["reset_password", "set_role", "add_user"])
def test_permission_is_checked_before_any_validation(sqlite_service, call):
    svc, therapist = sqlite_service, sqlite_service.actors["therapist"]
    args = {"reset_password": ("admin", "x"), "set_role": ("admin", "no-such-role"),
            "add_user": ("x" * 500, "no-such-role", "x")}[call]
    with pytest.raises(PermissionDenied):
        getattr(svc, call)(therapist, *args)
    events = svc.audit_events(svc.actors["supervisor"])
    assert events.iloc[-1]["action"] == "denied" and events.iloc[-1]["actor"] == "therapist"


def test_an_accept_that_the_gate_refuses_is_audited(service, trained):
    therapist = service.actors["therapist"]
    episode = service.save_intake(therapist, intake_dict(trained["cohort"], 0, episode_id="SEC-PHL",
                                                         phlebitis="true"))
    rec_id, _ = service.recommend(therapist, episode)
    from recommender.safety.gate import GateViolation

    with pytest.raises(GateViolation):
        service.accept(therapist, rec_id, Plan(2, "gentle", 2, 3, 30, 8),
                       reason_code="patient_preference")
    events = service.audit_events(service.actors["supervisor"])
    refused = events[events["action"] == "accept_refused"]
    assert len(refused) == 1 and "CI-PHLEBITIS" in refused.iloc[0]["reason"]


def test_a_short_idle_timeout_never_ends_an_active_session(sqlite_service, monkeypatch):
    """The session's last-seen time is written at least four times per timeout (it was every
    30 s, so a 12 s timeout ended sessions in use); 13 s without use ends it, said in words."""
    import datetime as dt

    from sqlalchemy import select, update

    from recommender.services.sessions import token_sha256
    from recommender.storage.schema import UserSession

    monkeypatch.setenv("RECOMMENDER_IDLE_MINUTES", "0.2")
    therapist = sqlite_service.actors["therapist"]

    def seen_ago(seconds: float) -> None:
        with sqlite_service.db.write() as s:
            s.execute(update(UserSession).where(UserSession.token_sha256 == token_sha256(therapist.session_token))
                      .values(last_seen_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds)))

    def last_seen_age() -> float:
        with sqlite_service.db.read() as s:
            seen = s.execute(select(UserSession.last_seen_at).where(
                UserSession.token_sha256 == token_sha256(therapist.session_token))).scalar_one()
        return (dt.datetime.now(dt.UTC) - seen.replace(tzinfo=dt.UTC)).total_seconds()

    seen_ago(5)
    sqlite_service.find_episodes(therapist)
    assert last_seen_age() < 2  # used 5 s after the last write: written again (5 s > 12 s / 4)
    seen_ago(13)
    with pytest.raises(SessionEnded, match="12 seconds without activity"):
        sqlite_service.find_episodes(therapist)


# ---------------------------------------------------------------- locked-out administrators


def _lock_out(svc, username: str) -> None:
    """What anyone at the sign-in page can do: five wrong passwords."""
    for _ in range(5):
        with pytest.raises(SignInFailed):
            svc.sign_in(username, "not-the-password-at-all")


def test_recover_admin_is_refused_while_an_administrator_can_sign_in(service):
    """Break glass is not a way around a working admin, nor a way to unlock anyone else."""
    _lock_out(service, "therapist")
    with pytest.raises(InputRejected, match="can still sign in"):
        service.recover_admin("admin")
    service.disable_user(service.actors["admin"], "therapist")
    _lock_out(service, "admin")
    with pytest.raises(InputRejected, match="not an administrator"):
        service.recover_admin("therapist")  # a locked therapist stays locked
    with pytest.raises(SignInFailed):
        service.sign_in("therapist", PASSWORD)


def test_recover_admin_cannot_revive_a_disabled_admin(service):
    """A retired admin account, disabled by an admin, must not be taken over by break glass
    while the working admin is merely locked out."""
    admin = service.actors["admin"]
    service.add_user(admin, "old.boss", "admin", "velvet-lighthouse-cinnamon")
    service.disable_user(admin, "old.boss")
    _lock_out(service, "admin")
    with pytest.raises(InputRejected, match="disabled by an administrator"):
        service.recover_admin("old.boss", "fresh-meadow-kettle-lantern")
    with pytest.raises(SignInFailed):
        service.sign_in("old.boss", "fresh-meadow-kettle-lantern")
    service.recover_admin("admin")  # the locked one is what break glass is for
    assert service.sign_in("admin", PASSWORD).role == "admin"


@pytest.mark.parametrize("tried", ["system", "Supervisor", "admin\u202e", "therap\u0456st", "x\x1b[2Jy"])
def test_a_failed_sign_in_cannot_write_a_name_into_the_trails_actor_column(service, tried):
    with pytest.raises(SignInFailed):
        service.sign_in(tried, "whatever-password-here")
    last = service.audit_events(service.actors["supervisor"]).iloc[-1]
    assert (last["action"], last["actor"], last["role"]) == ("failed_login", "unknown", "unknown")
    assert last["target"] == "user:" + tried.encode("unicode_escape").decode("ascii")


def test_a_locked_out_last_admin_is_recovered_from_the_server_and_audited(sqlite_service, monkeypatch,
                                                                          capsys):
    from recommender.cli import main

    svc = sqlite_service
    _lock_out(svc, "admin")
    with pytest.raises(SignInFailed):  # locked: even the right password fails
        svc.sign_in("admin", PASSWORD)
    monkeypatch.setenv("RECOMMENDER_DATABASE_URL", svc.db.url)
    monkeypatch.setenv("RECOMMENDER_AUDIT_KEY_FILE", str(svc.audit.key_path))
    monkeypatch.setenv("RECOMMENDER_AUDIT_HEAD_FILE", str(svc.audit.head_path))
    monkeypatch.setenv("RECOMMENDER_PASSWORD", PASSWORD)
    assert main(["users", "enable", "admin", "--user", "admin"]) != 0  # the old dead end
    capsys.readouterr()
    assert main(["users", "recover-admin", "admin"]) == 0
    assert "unlocked (break-glass, audited)" in capsys.readouterr().out
    assert svc.sign_in("admin", PASSWORD).role == "admin"
    assert main(["users", "recover-admin", "admin"]) != 0  # an admin can sign in again
    assert "can still sign in" in capsys.readouterr().err
    events = svc.audit_events(svc.actors["supervisor"])
    recovery = events[events["reason"].str.startswith("break-glass")]
    assert list(recovery["actor"]) == ["system"] and list(recovery["target"]) == ["user:admin"]
    assert "@" in recovery["reason"].iloc[0]  # who ran it, on which host
    assert svc.verify_audit(svc.actors["supervisor"]).ok


@pytest.mark.parametrize("username", [
    "system", "unknown", "Therapist", "therap\u0456st", "thera\u200bpist", "evil\nadmin",
    "x\x1b[31m", "\u202eadmin", "a b", '=HYPERLINK("http://x")', "\U0001F600" * 80, "", "-admin",
    "a" * 81, "nul\x00name"])
def test_usernames_that_pass_for_another_account_are_refused(service, username):
    """A user called 'system' entered intakes that the trail showed as the seeding identity;
    look-alike, control-character and formula names are refused the same way."""
    before = list(service.list_users(service.actors["admin"])["username"])
    with pytest.raises(InputRejected) as caught:
        service.add_user(service.actors["admin"], username, "therapist", "velvet-lighthouse-cinnamon")
    assert caught.value.errors[0].column == "username"
    assert "starting with a letter" in str(caught.value)  # the refusal itself says the rule
    assert "\n" not in str(caught.value) and "\x1b" not in str(caught.value)  # shown escaped
    assert list(service.list_users(service.actors["admin"])["username"]) == before


def test_plain_usernames_are_accepted(service):
    service.add_user(service.actors["admin"], "anna.berg-2", "therapist", "velvet-lighthouse-cinnamon")
    assert "anna.berg-2" in set(service.list_users(service.actors["admin"])["username"])


def test_a_duplicate_episode_id_holding_a_link_is_shown_inert(sqlite_service, trained):
    """An episode id may hold ``https://…`` (the contract allows : and /). Saving it twice is
    refused; the refusal shown beside the intake form must not become a link."""
    from recommender.web.plan_form import intake_refusal

    therapist = sqlite_service.actors["therapist"]
    link = "https://evil.invalid/login"
    sqlite_service.save_intake(therapist, intake_dict(trained["cohort"], 0, episode_id=link))
    with pytest.raises(InputRejected) as refused:
        sqlite_service.save_intake(therapist, intake_dict(trained["cohort"], 1, episode_id=link))
    assert "://" in str(refused.value)  # the attack: the reason quotes the id as typed
    shown = intake_refusal(str(refused.value), refused.value.errors)
    assert list(shown) == ["episode_id"] and "://" not in shown["episode_id"]
    assert "already exists" in shown["episode_id"]
