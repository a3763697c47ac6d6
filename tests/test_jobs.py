"""Jobs: submitted by pages with role checks and audit, run by the one worker of a deployment
for the user who asked, failed when their worker stops, evaluations stored with versions."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from recommender.contract.csv_io import to_csv_bytes
from recommender.services.jobs import HEARTBEAT_TIMEOUT, JobKind, JobState
from recommender.services.permissions import PermissionDenied
from recommender.services.worker import Worker, WorkerBusy
from recommender.storage.leader import LeaderLock, worker_running
from recommender.storage.schema import Job, utcnow


def actions(svc) -> list[tuple[str, str]]:
    events = svc.audit_events(svc.actors["supervisor"])
    return list(zip(events["action"], events["actor"], strict=True))


def test_a_training_job_runs_for_its_submitter_and_stores_the_evaluation(service, small_cohort):
    data = service.actors["data_staff"]
    service.import_file(data, to_csv_bytes(small_cohort.episodes), "history.csv")
    job_id = service.submit_job(data, JobKind.TRAIN)
    assert service.job(data, job_id).state == JobState.QUEUED.value
    assert Worker(service).run_once()
    job = service.job(data, job_id)
    assert job.state == JobState.DONE.value, job.error
    version = job.result["version"]
    report, points = service.stored_evaluation(data, version)
    assert report["rows"] > 0 and len(points) == report["followed_up"]
    assert service.latest_job(data, JobKind.TRAIN).id == job_id
    trail = actions(service)
    assert trail.index(("job_submit", "data_staff")) < trail.index(("train", "data_staff")) \
        < trail.index(("job_done", "data_staff"))
    assert not Worker(service).run_once()  # nothing left


def test_a_role_without_the_right_cannot_submit_and_the_attempt_is_audited(service):
    with pytest.raises(PermissionDenied):
        service.submit_job(service.actors["therapist"], JobKind.TRAIN)
    assert ("denied", "therapist") in actions(service)
    with pytest.raises(ValueError, match="needs a reason"):
        service.submit_job(service.actors["supervisor"], JobKind.PROMOTE,
                           {"version": 1, "force": True, "reason": " "})


def test_a_job_runs_with_the_rights_the_account_has_when_it_runs(service):
    data = service.actors["data_staff"]
    job_id = service.submit_job(data, JobKind.EVALUATE, {"version": 1})
    service.set_role(service.actors["admin"], "data_staff", "therapist")  # demoted meanwhile
    Worker(service).run_once()
    job = service.job(service.actors["supervisor"], job_id)
    assert job.state == JobState.FAILED.value
    assert job.error.startswith("evaluate failed: a therapist may not evaluate")


def test_a_failed_import_job_names_every_bad_cell(service, small_cohort):
    bad = small_cohort.episodes.head(5).astype({"age": object})
    bad.loc[2, "age"] = "old"
    job_id = service.submit_job(service.actors["data_staff"], JobKind.IMPORT,
                                {"file_name": "bad.csv", "kind": "training"}, to_csv_bytes(bad))
    Worker(service).run_once()
    job = service.job(service.actors["data_staff"], job_id)
    assert job.state == JobState.FAILED.value
    assert "import failed: bad.csv: 1 invalid row(s)" in job.error
    assert "row 4, column 'age': 'old'" in job.error


def test_a_running_job_whose_worker_stopped_is_marked_failed(service):
    job_id = service.submit_job(service.actors["data_staff"], JobKind.EVALUATE, {"version": 1})
    assert service.jobs.claim("crashed-worker").id == job_id
    with service.db.write() as s:
        s.execute(update(Job).where(Job.id == job_id).values(
            heartbeat_at=utcnow() - HEARTBEAT_TIMEOUT - dt.timedelta(seconds=1)))
    job = service.job(service.actors["data_staff"], job_id)  # a page polling it sees it failed
    assert job.state == JobState.FAILED.value and "the worker stopped" in job.error
    assert ("job_failed", "data_staff") in actions(service)


def test_two_claims_never_take_the_same_job(service):
    data = service.actors["data_staff"]
    first = service.submit_job(data, JobKind.EVALUATE, {"version": 1})
    second = service.submit_job(data, JobKind.COMPARE, {"version": 1})
    claimed = [service.jobs.claim("a"), service.jobs.claim("b"), service.jobs.claim("c")]
    assert [j.id for j in claimed[:2]] == [first, second] and claimed[2] is None


def test_one_worker_per_deployment(service):
    assert not worker_running(service.db)
    holder = LeaderLock(service.db)
    assert holder.acquire() and holder.still_held()
    try:
        assert worker_running(service.db)
        with pytest.raises(WorkerBusy, match="another worker"):
            Worker(service).acquire(patience=0.5)
    finally:
        holder.release()
    assert not worker_running(service.db)


def test_the_worker_command_runs_the_queue_and_a_second_one_gives_way(service, monkeypatch, tmp_path):
    import signal

    from recommender.cli.main import main

    monkeypatch.setenv("RECOMMENDER_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
    monkeypatch.setenv("RECOMMENDER_AUDIT_HEAD_FILE", str(tmp_path / "audit-head.json"))
    monkeypatch.setenv("RECOMMENDER_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(signal, "signal", lambda *a: None)  # keep pytest's own SIGTERM handling

    job_id = service.submit_job(service.actors["data_staff"], JobKind.EVALUATE, {"version": 1})
    assert main(["worker", "--once", "--database-url", service.db.url]) == 0
    assert service.job(service.actors["data_staff"], job_id).state == JobState.DONE.value
    holder = LeaderLock(service.db)
    assert holder.acquire()
    try:
        monkeypatch.setattr("recommender.services.worker.LOCK_PATIENCE_SECONDS", 0.2)
        assert main(["worker", "--database-url", service.db.url]) == 1
    finally:
        holder.release()


def test_a_page_reports_each_ended_job_in_words():
    from recommender.services.jobs import JobView
    from recommender.web.jobs import outcome

    def job(kind, state="done", result=None, error="", **params):
        return JobView(1, kind, params, state, 1.0, "", result, error, "ann", utcnow())

    assert outcome(job("train", result={"version": 3})) == ("success", "Trained model version 3.")
    refused = {"passed": False, "message": "refused: only 3 followed-up episode(s)"}
    assert outcome(job("promote", result=refused, version=2)) == (
        "error", f"v2 was not promoted (promotion gate: {refused['message']})")
    forced = outcome(job("promote", result=refused, version=2, force=True, reason="urgent fix"))
    assert forced == ("success", "v2 was made current, forced with the reason “urgent fix” "
                                 f"(promotion gate: {refused['message']})")
    passed = {"passed": True, "message": "passes: no gate violations"}
    assert outcome(job("promote", result=passed, version=2)) == (
        "success", "v2 was made current (promotion gate: passes: no gate violations)")
    assert outcome(job("rollback", result={"version": 1})) == ("success", "Rolled back: v1 was made current.")
    assert outcome(job("compare", result=refused))[0] == "warning"
    assert outcome(job("import", "failed", error="import failed: a.csv: 2 invalid row(s)\nrow 3 …")) == \
        ("error", "Import failed: a.csv: 2 invalid row(s)")


@pytest.mark.parametrize(("message", "shown"), [
    ("a rollback needs a reason", "A rollback needs a reason"),
    ("episodes.csv: 2 invalid row(s)", "episodes.csv: 2 invalid row(s)"),  # a file name is data
    ("'anna' is not locked", "'anna' is not locked"),
    ("v3 is not a candidate", "v3 is not a candidate"),
    ("", ""),
])
def test_refusals_read_as_sentences_without_changing_data(message, shown):
    from recommender.web.wording import sentence

    assert sentence(message) == shown
