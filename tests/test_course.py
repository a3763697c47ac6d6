"""The course of care: visits, corrections, progress, the day list, reviews and the
discomfort cap, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy
from sqlalchemy import select

from recommender.contract.csv_io import read_episodes
from recommender.safety.plans import Plan
from recommender.services import InputRejected
from recommender.services.course import (
    FLAG_ADVERSE_EVENT,
    FLAG_CONTRAINDICATED,
    FLAG_HIGH_DISCOMFORT,
    FLAG_NOT_IMPROVING,
)
from recommender.storage.schema import Visit
from tests.conftest import intake_dict

TODAY = dt.date.today()


def visit(days_ago: int, pain: int, discomfort: int | None = 3, massage: str = "moderate", **more) -> dict:
    out = {"visit_date": (TODAY - dt.timedelta(days=days_ago)).isoformat(), "kind": "session",
           "pain_score": pain, "discomfort": discomfort, "massage_intensity": massage,
           "training_given": True, "exercise_days_last_week": 3, "adverse_event": False, "note": ""}
    out.update(more)
    return out


def plan_with(intensity: str, sessions: int = 2) -> Plan:
    return Plan(sessions if intensity != "none" else 0, intensity, 2, 3, 30, 6)


def clean_intake(cohort, i: int = 0, **changes) -> dict:
    """An intake with no contraindication, so every massage intensity is allowed."""
    return intake_dict(cohort, i, heart_condition="false", infectious_disease="false", phlebitis="false",
                       inflamed_skin_regions="", infected_regions="", fever="false",
                       deep_vein_thrombosis="false", anticoagulant_therapy="false",
                       recent_fracture_regions="", intake_date=(TODAY - dt.timedelta(days=40)).isoformat(),
                       **changes)


def in_care(svc, trained, episode: str, plan: Plan, i: int = 0, **changes) -> int:
    """Intake, recommendation and an accepted plan; returns the decision id."""
    me = svc.actors["therapist"]
    svc.save_intake(me, clean_intake(trained["cohort"], i, episode_id=episode,
                                     patient_id=f"P-{episode}", **changes))
    rec_id, rec = svc.recommend(me, episode)
    return svc.accept(me, rec_id, plan, reason_code=None if plan == rec.best.plan else "patient_preference")


def test_visits_are_append_only_and_corrections_keep_history(service, trained):
    me = service.actors["therapist"]
    in_care(service, trained, "E-APPEND", plan_with("moderate"))
    first = service.record_visit(me, "E-APPEND", visit(10, 6))
    corrected = service.correct_visit(me, first, visit(10, 5), reason="pain misread: 5, not 6")
    progress = service.progress(me, "E-APPEND")
    assert [v.id for v in progress.visits] == [corrected]
    assert [v.id for v in progress.records] == [first, corrected]
    assert progress.records[1].supersedes_id == first
    assert progress.records[1].correction_reason == "pain misread: 5, not 6"
    with pytest.raises(InputRejected, match="already corrected"):
        service.correct_visit(me, first, visit(10, 4), reason="again")
    with pytest.raises(InputRejected, match="needs a reason"):
        service.correct_visit(me, corrected, visit(10, 4), reason=" ")
    # the database itself refuses to change or delete a visit, on both backends
    for statement in (sqlalchemy.update(Visit).where(Visit.id == first).values(pain_score=0),
                      sqlalchemy.delete(Visit).where(Visit.id == first)):
        with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"):
            with service.db.write() as s:
                s.execute(statement)
    with service.db.read() as s:
        assert s.execute(select(Visit.pain_score).where(Visit.id == first)).scalar() == 6
    actions = [e["action"] for e in service.audit_events(service.actors["supervisor"])
               .to_dict("records")]
    assert "visit" in actions and "visit_corrected" in actions


def test_bad_visits_name_column_and_value_and_store_nothing(service, trained):
    me = service.actors["therapist"]
    service.save_intake(me, clean_intake(trained["cohort"], episode_id="E-BAD", patient_id="P-BAD"))
    with pytest.raises(InputRejected, match="no accepted plan"):
        service.record_visit(me, "E-BAD", visit(1, 5))
    rec_id, rec = service.recommend(me, "E-BAD")
    service.accept(me, rec_id, rec.best.plan)
    with pytest.raises(InputRejected) as caught:
        service.record_visit(me, "E-BAD", visit(1, 11, discomfort=12))
    assert {(e.column, e.value) for e in caught.value.errors} == {("pain_score", "11"), ("discomfort", "12")}
    with pytest.raises(InputRejected) as caught:
        service.record_visit(me, "E-BAD", visit(1, 5, discomfort=None))
    assert [e.column for e in caught.value.errors] == ["discomfort"]
    with pytest.raises(InputRejected) as caught:
        service.record_visit(me, "E-BAD", visit(-3, 5))
    assert caught.value.errors[0].column == "visit_date"
    with pytest.raises(InputRejected, match="unknown visit field"):
        service.record_visit(me, "E-BAD", {**visit(1, 5), "pain_level": 3})
    # massage on a body part found infected at this very visit: refused, with the rule
    region = service.intake(me, "E-BAD")["pain_region"]
    with pytest.raises(InputRejected) as caught:
        service.record_visit(me, "E-BAD", visit(1, 5, infected_regions=[region]))
    assert caught.value.errors[0].column == "massage_intensity"
    assert "CI-INFECTED-PAIN-REGION" in caught.value.errors[0].expected
    assert service.progress(me, "E-BAD").records == []


def test_discomfort_cap_review_and_contraindication_from_a_visit(service, trained):
    me = service.actors["therapist"]
    in_care(service, trained, "E-CAP", plan_with("firm"))
    service.record_visit(me, "E-CAP", visit(9, 6, discomfort=8, massage="firm"))
    service.record_visit(me, "E-CAP", visit(6, 6, discomfort=3, massage="firm"))
    assert service.progress(me, "E-CAP").cap is None
    service.record_visit(me, "E-CAP", visit(3, 6, discomfort=7, massage="firm"))
    progress = service.progress(me, "E-CAP")
    assert progress.cap is not None and progress.cap.max_intensity == "moderate"
    assert FLAG_HIGH_DISCOMFORT in progress.flags
    assert any("Discomfort" in r for r in progress.due.review_reasons)

    review = service.review(me, "E-CAP")
    assert review.cap.max_intensity == "moderate"
    for p in review.recommendation.ranked():
        assert p.plan.massage_intensity in ("none", "gentle", "moderate")
    assert review.current_plan == plan_with("firm")
    assert "TOL-DISCOMFORT" in review.current_prediction.blocked_by
    assert service.tune(me, "E-CAP", plan_with("firm"), audit=False).blocked_by == ("TOL-DISCOMFORT",)
    # accepting above the cap is refused on every path, and the attempt is audited
    with pytest.raises(Exception, match="discomfort cap"):
        service.accept(me, review.recommendation_id, plan_with("firm", 3), reason_code="patient_preference",
                       change_code="patient_preference")
    with pytest.raises(InputRejected, match="needs a reason"):
        service.accept(me, review.recommendation_id, review.recommendation.best.plan)
    decision = service.accept(me, review.recommendation_id, review.recommendation.best.plan,
                              change_code="discomfort")
    current = service.current_decision(me, "E-CAP")
    assert current["decision_id"] == decision
    history = service.progress(me, "E-CAP").plans
    assert [h.review for h in history] == [False, True]
    assert history[1].reason == "Discomfort during treatment"

    # a new infection in the pain region, recorded at a visit, blocks massage from then on
    region = service.intake(me, "E-CAP")["pain_region"]
    service.record_visit(me, "E-CAP", visit(1, 5, discomfort=2, massage="none", infected_regions=[region]))
    # the accepted plan (gentle massage) stays on record, flagged, with massage stopped in what
    # goes out
    now = service.current_decision(me, "E-CAP")
    assert now["plan"].has_massage and now["gate_now"].forbidding_reasons(now["plan"])
    progress = service.progress(me, "E-CAP")
    assert progress.flags[0] == FLAG_CONTRAINDICATED
    assert any("now contraindicated" in r for r in progress.due.review_reasons)
    day = service.day_list(me)
    assert day.iloc[0]["episode_id"] == "E-CAP" and "Plan contraindicated" in day.iloc[0]["flags"]
    later = service.review(me, "E-CAP")
    assert all(not p.plan.has_massage for p in later.recommendation.ranked())
    assert "CI-INFECTED-PAIN-REGION" in later.recommendation.gate.rule_ids
    with pytest.raises(Exception, match="contraindicated"):
        service.accept(me, later.recommendation_id, plan_with("gentle"), reason_code="patient_preference",
                       change_code="other", change_reason="try it")


def test_progress_flags_and_day_list_order(service, trained):
    me = service.actors["therapist"]
    in_care(service, trained, "E-FLAT", plan_with("moderate"), pain_score=7)
    in_care(service, trained, "E-CALM", plan_with("moderate"), i=1, pain_score=7)
    service.record_visit(me, "E-CALM", visit(0, 6))
    # not improving by mid-programme, and an adverse event
    service.record_visit(me, "E-FLAT", visit(30, 7, adverse_event=True))
    service.record_visit(me, "E-FLAT", visit(1, 7))
    flat = service.progress(me, "E-FLAT")
    assert set(flat.flags) == {FLAG_NOT_IMPROVING, FLAG_ADVERSE_EVENT}
    assert flat.adherence == 1.0  # 3 of 3 planned days, at both visits
    chart = flat.chart_frame()
    assert {"observed pain", "expected pain", "likely best", "likely worst"} <= set(chart.columns)
    assert chart["observed pain"].dropna().tolist() == [7, 7]
    day = service.day_list(me)
    assert list(day["episode_id"])[:1] == ["E-FLAT"]
    assert set(day["episode_id"]) == {"E-FLAT", "E-CALM"}
    # another therapist's list does not show them, unless asked for the whole clinic
    assert service.day_list(service.actors["supervisor"]).empty
    assert {"E-FLAT", "E-CALM"} <= set(service.day_list(service.actors["supervisor"], everyone=True)["episode_id"])


def test_end_of_programme_visit_is_the_outcome_and_closes_the_episode(service, trained, tmp_path):
    me = service.actors["therapist"]
    in_care(service, trained, "E-END", plan_with("moderate"), pain_score=7)
    service.record_visit(me, "E-END", visit(20, 6, exercise_days_last_week=2))
    service.record_visit(me, "E-END", visit(2, 3, kind="end_of_programme", exercise_days_last_week=3,
                                                adverse_event=True))
    assert "E-END" not in set(service.find_episodes(me)["episode_id"])
    with pytest.raises(InputRejected, match="has ended"):
        service.record_visit(me, "E-END", visit(1, 3))
    frame = service.training_frame()
    row = frame[frame["episode_id"] == "E-END"].iloc[0]
    assert row["followup_pain_score"] == 3 and bool(row["adverse_event"])
    assert row["adherence"] == pytest.approx(5 / 6, abs=1e-3)
    path = tmp_path / "training.csv"
    service.export_training(service.actors["data_staff"], path)
    assert read_episodes(path, "training").report.valid


def test_a_second_followup_is_a_correction_with_a_reason(service, trained):
    me = service.actors["therapist"]
    in_care(service, trained, "E-FU", plan_with("moderate"))
    service.record_followup(me, "E-FU", {"followup_pain_score": 3})
    progress = service.progress(me, "E-FU")  # the course of care shows the follow-up's score
    assert progress.ended and progress.pain_now == 3
    assert progress.pain_scores()[-1].score == 3 and progress.pain_scores()[-1].source.startswith("followup:")
    assert 3 in progress.chart_frame()["observed pain"].tolist()
    with pytest.raises(InputRejected, match="already has a follow-up"):
        service.record_followup(me, "E-FU", {"followup_pain_score": 5})
    service.record_followup(me, "E-FU", {"followup_pain_score": 5}, correction_reason="typo")
    assert service.progress(me, "E-FU").pain_now == 5  # the corrected one counts
    events = service.audit_events(service.actors["supervisor"]).to_dict("records")
    corrected = [e for e in events if e["action"] == "followup_corrected"]
    assert len(corrected) == 1 and corrected[0]["reason"] == "typo"


def test_visits_export_is_formula_safe_and_complete(service, trained, tmp_path):
    me = service.actors["therapist"]
    in_care(service, trained, "E-EXP", plan_with("moderate"))
    first = service.record_visit(me, "E-EXP", visit(5, 6, note="=HYPERLINK(\"http://x\")"))
    service.correct_visit(me, first, visit(5, 5, note="+1 fixed"), reason="@typo")
    path = tmp_path / "visits.csv"
    with pytest.raises(PermissionError):
        service.export_visits(me, path)
    assert service.export_visits(service.actors["supervisor"], path) == 2
    text = path.read_text()
    assert "'=HYPERLINK" in text and "'+1 fixed" in text and "'@typo" in text
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    from recommender.contract.visits import VISIT_EXPORT_COLUMNS

    assert list(frame.columns) == [c.name for c in VISIT_EXPORT_COLUMNS]
    assert frame["superseded"].tolist() == ["true", "false"]
    assert frame["supersedes_visit_id"].tolist() == ["", str(first)]


def test_cli_visits_export_by_role(sqlite_service, trained, tmp_path, monkeypatch, capsys):
    from recommender.cli import main
    from tests.conftest import PASSWORD

    svc = sqlite_service
    in_care(svc, trained, "E-CLI", plan_with("moderate"))
    svc.record_visit(svc.actors["therapist"], "E-CLI", visit(3, 5))
    monkeypatch.setenv("RECOMMENDER_DATABASE_URL", svc.db.url)
    monkeypatch.setenv("RECOMMENDER_AUDIT_KEY_FILE", str(svc.audit.key_path))
    monkeypatch.setenv("RECOMMENDER_AUDIT_HEAD_FILE", str(svc.audit.head_path))
    monkeypatch.setenv("RECOMMENDER_PASSWORD", PASSWORD)
    out = tmp_path / "visits.csv"
    assert main(["visits", "export", str(out), "--user", "data_staff"]) == 0
    assert "wrote 1 visit record(s)" in capsys.readouterr().out
    assert out.read_text().count("\n") == 2
    out.unlink()
    assert main(["visits", "export", str(out), "--user", "therapist"]) != 0
    assert "a therapist may not export visits" in capsys.readouterr().err and not out.exists()


def test_the_programme_starts_on_the_clinics_day_of_acceptance(monkeypatch):
    """Visits and 'today' are the clinic's calendar days; the plan's start was once the UTC
    day, a day early far east of UTC (shifting the predicted path and what is due)."""
    from recommender.services.care import PlanChange, _path, _start

    monkeypatch.setenv("RECOMMENDER_CLINIC_TIMEZONE", "Pacific/Kiritimati")  # UTC+14
    decided = dt.datetime(2026, 12, 5, 18, 5, tzinfo=dt.UTC)  # 08:05 on 6 December there
    prediction = {"interval": [1.0, 4.0], "baseline_pain": 7, "predicted_reduction": 2.5}
    change = PlanChange(1, plan_with("gentle"), "ann", decided, "", False, prediction)
    assert _start([change], []) == dt.date(2026, 12, 6)
    assert _path([change], dt.date(2026, 12, 6))[0].start == dt.date(2026, 12, 6)
