"""Adversarial tests for the course of care (issue 11): each reproduces an attack on visits,
reviews, the discomfort cap, corrections, roles and exports, and asserts that it fails.

Service attacks run on SQLite and PostgreSQL (the ``service`` fixture's two backends).
"""

from __future__ import annotations

import datetime as dt
import json
import threading

import pandas as pd
import pytest
import sqlalchemy
from sqlalchemy import func, select, text

from recommender.contract.csv_io import FORMULA_TRIGGERS, to_csv_bytes
from recommender.outputs.fhir import care_bundle
from recommender.safety import gate
from recommender.safety.plans import Plan
from recommender.services import InputRejected
from recommender.services.permissions import PermissionDenied
from recommender.storage.schema import Visit
from tests.test_course import clean_intake, in_care, plan_with, visit


def _events(svc, action: str) -> list[dict]:
    frame = svc.audit_events(svc.actors["supervisor"])
    return [e for e in frame.to_dict("records") if e["action"] == action]


def _visit_count(svc) -> int:
    with svc.db.read() as s:
        return s.execute(select(func.count()).select_from(Visit)).scalar_one()


def _decisions(svc, episode: str) -> list[dict]:
    me = svc.actors["therapist"]
    return [p.plan.as_dict() for p in svc.progress(me, episode).plans]


def _two_painful_sessions(svc, episode: str, intensity: str = "firm") -> None:
    me = svc.actors["therapist"]
    svc.record_visit(me, episode, visit(6, 6, discomfort=8, massage=intensity))
    svc.record_visit(me, episode, visit(3, 6, discomfort=9, massage=intensity))


# ---------------------------------------------------------------- plans past the gate or the cap


def test_an_old_recommendation_cannot_store_massage_after_an_infection_is_found(service, trained):
    """Recommended before a visit found the pain region infected; accepted after it."""
    me = service.actors["therapist"]
    in_care(service, trained, "E-OLDREC", plan_with("gentle"))
    old_id, old = service.recommend(me, "E-OLDREC")
    massage = next(p.plan for p in old.ranked() if p.plan.has_massage and p.plan != plan_with("gentle"))
    region = service.intake(me, "E-OLDREC")["pain_region"]
    service.record_visit(me, "E-OLDREC", visit(1, 5, discomfort=None, massage="none",
                                                training_given=False, infected_regions=[region]))
    with pytest.raises(gate.GateViolation, match="CI-INFECTED-PAIN-REGION"):
        service.accept(me, old_id, massage, change_code="not_improving")
    assert _decisions(service, "E-OLDREC") == [plan_with("gentle").as_dict()]
    assert _events(service, "accept_refused")


def test_no_plan_is_accepted_against_a_recommendation_made_before_the_patient_changed(service, trained):
    """Two tabs: A holds a recommendation; B records a visit that finds an infectious disease;
    A then accepts a massage-free plan from its old recommendation, with reasons. The gate
    passes that plan, but the decision would name a recommendation that never knew of the
    infection (seen by a helper walking the app): refused, nothing stored."""
    me = service.actors["therapist"]
    in_care(service, trained, "E-STALE", plan_with("gentle"))
    old_id, _ = service.recommend(me, "E-STALE")
    service.record_visit(me, "E-STALE", visit(1, 5, discomfort=None, massage="none",
                                              training_given=False, infectious_disease=True))
    with pytest.raises(InputRejected, match="made before the patient's record changed"):
        service.accept(me, old_id, plan_with("none"), reason_code="patient_preference",
                       change_code="patient_preference")
    assert _decisions(service, "E-STALE") == [plan_with("gentle").as_dict()]
    new_id, new = service.recommend(me, "E-STALE")  # a fresh recommendation is accepted
    assert not any(p.plan.has_massage for p in new.ranked())
    service.accept(me, new_id, new.best.plan, change_code="not_improving")
    assert _decisions(service, "E-STALE")[-1] == new.best.plan.as_dict()


def test_an_old_recommendation_cannot_store_massage_above_a_cap_reached_since(service, trained):
    """Recommended (firm massage allowed) before two painful sessions; accepted after them."""
    me = service.actors["therapist"]
    in_care(service, trained, "E-OLDCAP", plan_with("moderate"))
    old_id, _ = service.recommend(me, "E-OLDCAP")
    _two_painful_sessions(service, "E-OLDCAP", "moderate")
    for plan in (plan_with("firm"), plan_with("moderate", 3)):
        with pytest.raises(gate.GateViolation, match="TOL-DISCOMFORT"):
            service.accept(me, old_id, plan, reason_code="patient_preference",
                           change_code="patient_preference")
    assert _decisions(service, "E-OLDCAP") == [plan_with("moderate").as_dict()]
    assert len(_events(service, "accept_refused")) == 2


def test_a_recommendation_of_another_episode_plans_only_its_own_episode(service, trained):
    """Episode B's pain region is infected; a recommendation made for A is accepted with
    massage: the decision lands on A (judged on A), and B's plan is untouched."""
    me = service.actors["therapist"]
    in_care(service, trained, "E-A", plan_with("none"))
    in_care(service, trained, "E-B", plan_with("none"), i=1)
    region = service.intake(me, "E-B")["pain_region"]
    service.record_visit(me, "E-B", visit(1, 5, discomfort=None, massage="none",
                                           training_given=False, infected_regions=[region]))
    rec_a, _ = service.recommend(me, "E-A")
    decision = service.accept(me, rec_a, plan_with("gentle"), reason_code="patient_preference",
                              change_code="patient_preference")
    assert service.current_decision(me, "E-A")["decision_id"] == decision
    assert service.current_decision(me, "E-B")["plan"] == plan_with("none")


def test_a_plan_outside_the_contract_cannot_be_accepted_or_tuned(service, trained):
    """A plan object made without its checks (as a script calling the service could) is
    refused at the door: stored, it made the clinic's training export refuse the whole file."""
    me = service.actors["therapist"]
    in_care(service, trained, "E-RANGE", plan_with("none"))
    rec_id, _ = service.recommend(me, "E-RANGE")
    import numpy as np

    numpy_plan = Plan(*[np.int64(v) if isinstance(v, int) else v
                        for v in plan_with("gentle").as_dict().values()])
    assert service.tune(me, "E-RANGE", numpy_plan).plan == plan_with("gentle")  # numbers, not types
    forged = object.__new__(Plan)
    for column, value in plan_with("none").as_dict().items():
        object.__setattr__(forged, column, value)
    object.__setattr__(forged, "programme_weeks", 99)
    with pytest.raises(InputRejected, match="'programme_weeks': 99"):
        service.accept(me, rec_id, forged, change_code="other", change_reason="longer")
    with pytest.raises(InputRejected, match="'programme_weeks': 99"):
        service.tune(me, "E-RANGE", forged)
    assert _decisions(service, "E-RANGE") == [plan_with("none").as_dict()]


def test_a_follow_up_cannot_close_an_episode_that_was_never_planned(service, trained):
    me = service.actors["therapist"]
    service.save_intake(me, clean_intake(trained["cohort"], 0, episode_id="E-UNPLANNED",
                                         patient_id="P-UNPLANNED"))
    with pytest.raises(InputRejected, match="no accepted plan"):
        service.record_followup(me, "E-UNPLANNED", {"followup_pain_score": 9.0})
    with pytest.raises(InputRejected, match="no accepted plan"):
        service.record_followup(me, "E-UNPLANNED", {}, lost_to_followup=True)
    rec_id, rec = service.recommend(me, "E-UNPLANNED")  # still open: it can be planned
    service.accept(me, rec_id, rec.best.plan)
    service.record_followup(me, "E-UNPLANNED", {"followup_pain_score": 3.0})


def test_imported_history_outcomes_cannot_be_rewritten_from_the_follow_up_form(service, trained):
    """A therapist 'correcting' an imported episode's outcome changed the clinic's training data."""
    history = trained["cohort"].episodes.head(3)
    service.import_file(service.actors["data_staff"], to_csv_bytes(history), "history.csv")
    episode = str(history["episode_id"].iloc[0])
    before = service.training_frame().set_index("episode_id").loc[episode, "followup_pain_score"]
    with pytest.raises(InputRejected, match="imported history"):
        service.record_followup(service.actors["therapist"], episode, {"followup_pain_score": 0.0},
                                correction_reason="looks better to me")
    after = service.training_frame().set_index("episode_id").loc[episode, "followup_pain_score"]
    assert after == before or (pd.isna(after) and pd.isna(before))
    assert not _events(service, "followup_corrected")


def test_a_visit_before_a_finding_stays_correctable_but_cannot_be_moved_past_it(service, trained):
    """Massage given lawfully on day 10 must not become uncorrectable because phlebitis was
    found on day 2; moving that massage to a day after the finding is still refused."""
    me = service.actors["therapist"]
    in_care(service, trained, "E-BEFORE", plan_with("moderate"))
    first = service.record_visit(me, "E-BEFORE", visit(10, 6))  # moderate massage, 10 days ago
    service.record_visit(me, "E-BEFORE", visit(2, 5, massage="none", discomfort=None,
                                               training_given=False, phlebitis=True))
    fixed = service.correct_visit(me, first, visit(10, 5), reason="pain score typo")
    with pytest.raises(InputRejected) as moved:
        service.correct_visit(me, fixed, visit(1, 5), reason="wrong date")
    assert "CI-PHLEBITIS" in moved.value.errors[0].expected
    with pytest.raises(InputRejected) as later:
        service.record_visit(me, "E-BEFORE", visit(1, 5))  # and no new massage after it
    assert "CI-PHLEBITIS" in later.value.errors[0].expected
    # nor can the finding itself move later, past the massage, to open a window for it
    finding = service.progress(me, "E-BEFORE").visits[-1].id
    with pytest.raises(InputRejected) as moved_finding:
        service.correct_visit(me, finding, visit(0, 5, massage="none", discomfort=None,
                                                 training_given=False, phlebitis=True), reason="date")
    assert moved_finding.value.errors[0].column == "visit_date"
    assert _visit_count(service) == 3


@pytest.mark.parametrize("day", ["2099-01-01", "0001-01-01"])
def test_an_intake_date_the_clinic_cannot_have_seen_is_refused_by_row(service, trained, day):
    """A 2099 intake was importable and accepted a plan, then no visit could ever be recorded."""
    rows = trained["cohort"].episodes.head(3).copy()
    rows["intake_date"] = ["2026-01-05", day, "2026-01-06"]
    with pytest.raises(InputRejected) as caught:
        service.import_file(service.actors["data_staff"], to_csv_bytes(rows), "dated.csv")
    assert [(e.row, e.column, e.value) for e in caught.value.errors] == [(3, "intake_date", day)]
    assert _events(service, "import")[-1]["reason"].startswith("refused: 1 intake date(s)")
    assert service.training_frame().empty or not set(rows["episode_id"]) & set(
        service.training_frame()["episode_id"])
    with pytest.raises(InputRejected) as form:
        service.save_intake(service.actors["therapist"], {**clean_intake(
            trained["cohort"], 0, episode_id="E-DATED", patient_id="P-DATED"), "intake_date": day})
    assert [(e.column, e.value) for e in form.value.errors] == [("intake_date", day)]
    assert service.find_episodes(service.actors["therapist"], "E-DATED").empty


@pytest.mark.parametrize("text_value, expected", [
    ("x" * 5_000_000, "at most 2000 characters"),
    ("bell\x07", "control characters"),
    ("esc\x1b[31mred", "control characters"),
    ("\u202eevil", "control characters"),
    ("lone \ud800 surrogate", "control characters"),
    ("csi \u009b2J", "control characters"),
    ("line\u2028separator", "control characters"),
    ("mark\u200e", "control characters"),
])
def test_notes_and_reasons_are_bounded_and_printable(service, trained, text_value, expected):
    """A 5 MB note was stored and copied into the audit trail; escape and bidi-override
    characters were written raw into exports.  Every note and reason door refuses them."""
    me = service.actors["therapist"]
    in_care(service, trained, "E-TEXT", plan_with("moderate"))
    rec_id, rec = service.recommend(me, "E-TEXT")
    audit_before = len(service.audit_events(service.actors["supervisor"]))
    doors = {
        "note": lambda: service.record_visit(me, "E-TEXT", visit(1, 5, note=text_value)),
        "reason_text": lambda: service.accept(me, rec_id, plan_with("gentle"), reason_code="patient_preference",
                                              reason_text=text_value, change_code="patient_preference"),
        "change_reason": lambda: service.accept(me, rec_id, plan_with("gentle"), change_code="other",
                                                change_reason=text_value),
        "correction_reason": lambda: service.record_followup(me, "E-TEXT", {"followup_pain_score": 3.0},
                                                             correction_reason=text_value),
        "reason": lambda: service.rollback(service.actors["data_staff"], reason=text_value),
    }
    for column, door in doors.items():
        with pytest.raises(InputRejected) as caught:
            door()
        assert [e.column for e in caught.value.errors] == [column]
        assert expected in caught.value.errors[0].expected and len(caught.value.errors[0].value) < 80
    assert len(service.audit_events(service.actors["supervisor"])) == audit_before
    assert _visit_count(service) == 0 and len(_decisions(service, "E-TEXT")) == 1
    service.record_visit(me, "E-TEXT", visit(1, 5, note="line one\nline two\twith a tab"))  # kept


def test_tuning_marks_gate_and_cap_and_stores_no_plan(service, trained):
    me = service.actors["therapist"]
    in_care(service, trained, "E-TUNE", plan_with("firm"))
    _two_painful_sessions(service, "E-TUNE")
    assert service.tune(me, "E-TUNE", plan_with("firm", 3)).blocked_by == ("TOL-DISCOMFORT",)
    assert service.tune(me, "E-TUNE", plan_with("moderate", 3)).blocked_by == ()
    region = service.intake(me, "E-TUNE")["pain_region"]
    service.record_visit(me, "E-TUNE", visit(1, 5, discomfort=None, massage="none",
                                             training_given=False, infected_regions=[region]))
    assert service.tune(me, "E-TUNE", plan_with("firm", 3)).blocked_by[-1] == "TOL-DISCOMFORT"
    assert "CI-INFECTED-PAIN-REGION" in service.tune(me, "E-TUNE", plan_with("gentle")).blocked_by
    assert _decisions(service, "E-TUNE") == [plan_with("firm").as_dict()]


def test_a_plan_cannot_be_changed_after_the_episode_ended(service, trained):
    """The outcome of an ended episode is paired with its plan for training: a plan accepted
    after the end would be a plan the patient never had."""
    me = service.actors["therapist"]
    in_care(service, trained, "E-DONE", plan_with("moderate"))
    rec_id, _ = service.recommend(me, "E-DONE")
    service.record_visit(me, "E-DONE", visit(1, 3, kind="end_of_programme"))
    with pytest.raises(InputRejected, match="ended"):
        service.accept(me, rec_id, plan_with("gentle"), reason_code="patient_preference",
                       change_code="patient_preference")
    with pytest.raises(InputRejected, match="ended"):
        service.recommend(me, "E-DONE")
    in_care(service, trained, "E-DONE-FU", plan_with("moderate"), i=1)
    rec_id, _ = service.recommend(me, "E-DONE-FU")
    service.record_followup(me, "E-DONE-FU", {"followup_pain_score": 3})
    with pytest.raises(InputRejected, match="ended"):
        service.accept(me, rec_id, plan_with("gentle"), reason_code="patient_preference",
                       change_code="patient_preference")
    assert _decisions(service, "E-DONE") == [plan_with("moderate").as_dict()]
    assert _decisions(service, "E-DONE-FU") == [plan_with("moderate").as_dict()]


# ---------------------------------------------------------------- corrections


def test_correcting_discomfort_away_is_a_recorded_correction_not_a_silent_bypass(service, trained):
    """Legitimate (a misread score is corrected), but only as a new record with who and why,
    both records kept, in the database and the audit trail."""
    me = service.actors["therapist"]
    in_care(service, trained, "E-ERASE", plan_with("firm"))
    service.record_visit(me, "E-ERASE", visit(6, 6, discomfort=8, massage="firm"))
    second = service.record_visit(me, "E-ERASE", visit(3, 6, discomfort=9, massage="firm"))
    review = service.review(me, "E-ERASE")
    with pytest.raises(gate.GateViolation):
        service.accept(me, review.recommendation_id, plan_with("firm", 3),
                       reason_code="patient_preference", change_code="patient_preference")
    fixed = service.correct_visit(me, second, visit(3, 6, discomfort=2, massage="firm"),
                                  reason="discomfort was 2, typed 9")
    assert service.progress(me, "E-ERASE").cap is None
    with pytest.raises(InputRejected, match="made before the patient's record changed"):
        service.accept(me, review.recommendation_id, plan_with("firm", 3),  # made under the cap
                       reason_code="patient_preference", change_code="patient_preference")
    service.accept(me, service.review(me, "E-ERASE").recommendation_id, plan_with("firm", 3),
                   reason_code="patient_preference", change_code="patient_preference")
    records = service.progress(me, "E-ERASE").records
    assert [(r.id, r.discomfort, r.supersedes_id) for r in records][-2:] == [(second, 9, None),
                                                                             (fixed, 2, second)]
    event = _events(service, "visit_corrected")[-1]
    assert event["actor"] == me.username and event["reason"] == "discomfort was 2, typed 9"
    assert json.loads(event["before"])["discomfort"] == 9
    assert json.loads(event["after"])["discomfort"] == 2


def test_a_correction_cannot_erase_a_contraindication_found_at_a_visit(service, trained):
    """A contraindication found at a visit blocks massage from then on: a correction may fix
    the rest of the record, but dropping the finding would lift the gate."""
    me = service.actors["therapist"]
    in_care(service, trained, "E-UNINFECT", plan_with("none"))
    region = service.intake(me, "E-UNINFECT")["pain_region"]
    found = service.record_visit(me, "E-UNINFECT", visit(2, 5, discomfort=None, massage="none",
                                                         training_given=False, infected_regions=[region],
                                                         fever=True))
    before = _visit_count(service)
    with pytest.raises(InputRejected) as caught:
        service.correct_visit(me, found, visit(2, 5, discomfort=None, massage="none", training_given=False),
                              reason="no infection after all")
    assert {(e.column, e.value) for e in caught.value.errors} == {("infected_regions", region),
                                                                  ("fever", "true")}
    assert _visit_count(service) == before
    assert "CI-INFECTED-PAIN-REGION" in service.tune(me, "E-UNINFECT", plan_with("gentle")).blocked_by
    # the rest of the record can still be corrected, the finding kept
    service.correct_visit(me, found, visit(2, 4, discomfort=None, massage="none", training_given=False,
                                           infected_regions=[region], fever=True), reason="pain 4")


def test_correcting_a_visit_of_one_episode_cannot_touch_another(service, trained):
    """correct_visit takes only the visit's id: the correction belongs to that visit's
    episode, is judged on its patient, and is audited against it."""
    me = service.actors["therapist"]
    in_care(service, trained, "E-MINE", plan_with("moderate"))
    in_care(service, trained, "E-THEIRS", plan_with("none"), i=1)
    theirs = service.record_visit(me, "E-THEIRS", visit(2, 5, massage="none"))
    fixed = service.correct_visit(me, theirs, visit(2, 4, massage="none"), reason="pain 4")
    assert [v.id for v in service.progress(me, "E-THEIRS").visits] == [fixed]
    assert service.progress(me, "E-MINE").records == []
    assert _events(service, "visit_corrected")[-1]["target"] == "episode:E-THEIRS"


def test_a_correction_chain_cannot_fork_in_the_database(service, trained):
    """Two records superseding the same visit would make both count: the database refuses."""
    me = service.actors["therapist"]
    in_care(service, trained, "E-FORK", plan_with("moderate"))
    first = service.record_visit(me, "E-FORK", visit(2, 5))
    service.correct_visit(me, first, visit(2, 4), reason="pain 4")
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        with service.db.write() as s:
            row = s.get(Visit, first)
            s.add(Visit(episode_id=row.episode_id, visit_date=row.visit_date, kind="session",
                        pain_score=3, massage_intensity="none", training_given=False,
                        adverse_event=False, note="", contraindications={}, supersedes_id=first,
                        correction_reason="fork", recorded_by="therapist"))
    assert len(service.progress(me, "E-FORK").visits) == 1


def test_concurrent_corrections_of_one_visit_store_one(service, trained):
    me = service.actors["therapist"]
    in_care(service, trained, "E-RACE", plan_with("moderate"))
    first = service.record_visit(me, "E-RACE", visit(2, 5))
    barrier, results = threading.Barrier(4), []

    def correct(pain: int) -> None:
        barrier.wait()
        try:
            results.append(service.correct_visit(me, first, visit(2, pain), reason=f"pain {pain}"))
        except InputRejected as exc:
            results.append(exc)

    threads = [threading.Thread(target=correct, args=(p,)) for p in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = [r for r in results if isinstance(r, int)]
    assert len(stored) == 1, results
    assert all("already corrected" in str(r) for r in results if not isinstance(r, int))
    assert len(service.progress(me, "E-RACE").visits) == 1


def test_an_end_of_programme_visit_corrected_to_a_session_reopens_only_with_a_record(service, trained):
    """Legitimate (the end was recorded too early), audited; an explicit follow-up keeps the
    episode closed whatever the visits say."""
    me = service.actors["therapist"]
    in_care(service, trained, "E-REOPEN", plan_with("moderate"))
    end = service.record_visit(me, "E-REOPEN", visit(3, 3, kind="end_of_programme"))
    assert "E-REOPEN" in set(service.training_frame()["episode_id"])
    service.correct_visit(me, end, visit(3, 3), reason="not the last session yet")
    assert "E-REOPEN" not in set(service.training_frame()["episode_id"])
    service.record_visit(me, "E-REOPEN", visit(1, 2))
    assert _events(service, "visit_corrected")[-1]["reason"] == "not the last session yet"
    service.record_followup(me, "E-REOPEN", {"followup_pain_score": 2})
    with pytest.raises(InputRejected, match="closed"):
        service.record_visit(me, "E-REOPEN", visit(0, 2))


def test_a_followup_is_never_overwritten_without_a_reason(service, trained):
    me = service.actors["therapist"]
    in_care(service, trained, "E-FU2", plan_with("moderate"))
    service.record_followup(me, "E-FU2", {"followup_pain_score": 3})
    for reason in ("", "   "):
        with pytest.raises(InputRejected, match="already has a follow-up"):
            service.record_followup(me, "E-FU2", {"followup_pain_score": 8}, correction_reason=reason)
    with pytest.raises(InputRejected, match="already has a follow-up"):
        service.record_followup(me, "E-FU2", {}, lost_to_followup=True)
    row = service.training_frame().set_index("episode_id").loc["E-FU2"]
    assert row["followup_pain_score"] == 3


# ---------------------------------------------------------------- what a visit may be


def test_no_visits_for_imported_history_or_an_episode_without_a_plan(sqlite_service, trained):
    svc = sqlite_service
    me = svc.actors["therapist"]
    svc.import_file(svc.actors["data_staff"], to_csv_bytes(trained["cohort"].episodes.head(3)),
                    "history.csv")
    code = trained["cohort"].episodes.iloc[0]["episode_id"]
    with pytest.raises(InputRejected, match="imported history"):
        svc.record_visit(me, code, visit(1, 5, massage="none"))
    with pytest.raises(InputRejected, match="imported history"):
        svc.review(me, code)
    svc.save_intake(me, clean_intake(trained["cohort"], 5, episode_id="E-NOPLAN", patient_id="P-NOPLAN"))
    with pytest.raises(InputRejected, match="no accepted plan"):
        svc.record_visit(me, "E-NOPLAN", visit(1, 5, massage="none"))
    with pytest.raises(InputRejected, match="no episode"):
        svc.record_visit(me, "E-NOWHERE", visit(1, 5, massage="none"))
    assert _visit_count(svc) == 0


BAD_VALUES = [
    ("pain_score", True, "true"), ("pain_score", 5.5, "5.5"), ("pain_score", "five", "five"),
    ("pain_score", -1, "-1"), ("discomfort", 11, "11"), ("discomfort", "7/10", "7/10"),
    ("visit_date", "2026-02-30", "2026-02-30"), ("visit_date", "yesterday", "yesterday"),
    ("kind", "END", "END"), ("kind", "surgery", "surgery"),
    ("massage_intensity", "extreme", "extreme"), ("training_given", "maybe", "maybe"),
    ("exercise_days_last_week", 8, "8"), ("adverse_event", 2, "2"),
    ("infected_regions", ["moon"], "moon"), ("fever", "perhaps", "perhaps"),
]


@pytest.mark.parametrize(("column", "value", "shown"), BAD_VALUES)
def test_a_bad_visit_value_is_refused_by_name_and_stores_nothing(sqlite_service, trained, column, value,
                                                                  shown):
    svc = sqlite_service
    in_care(svc, trained, "E-VAL", plan_with("moderate"))
    with pytest.raises(InputRejected) as caught:
        svc.record_visit(svc.actors["therapist"], "E-VAL", {**visit(1, 5), column: value})
    assert (column, shown) in {(e.column, e.value) for e in caught.value.errors}
    assert _visit_count(svc) == 0


def test_dates_outside_the_course_are_refused_by_name(service, trained):
    me = service.actors["therapist"]
    in_care(service, trained, "E-DATES", plan_with("moderate"))  # intake 40 days ago
    for days_ago in (-1, 41, 365 * 30):
        day = (dt.date.today() - dt.timedelta(days=days_ago)).isoformat()
        with pytest.raises(InputRejected) as caught:
            service.record_visit(me, "E-DATES", visit(days_ago, 5))
        assert [(e.column, e.value) for e in caught.value.errors] == [("visit_date", day)]
    first = service.record_visit(me, "E-DATES", visit(3, 5))
    with pytest.raises(InputRejected) as caught:
        service.correct_visit(me, first, visit(-2, 5), reason="moved")
    assert caught.value.errors[0].column == "visit_date"
    assert _visit_count(service) == 1


def test_an_intake_without_a_date_still_bounds_visits_by_the_day_it_was_entered(sqlite_service, trained):
    """The intake date is optional in the contract: then the day the episode was entered is
    its first day (as the progress view takes it), and a visit decades earlier is refused."""
    svc = sqlite_service
    me = svc.actors["therapist"]
    intake = clean_intake(trained["cohort"], episode_id="E-NODATE", patient_id="P-NODATE")
    svc.save_intake(me, {k: v for k, v in intake.items() if k != "intake_date"})
    rec_id, rec = svc.recommend(me, "E-NODATE")
    svc.accept(me, rec_id, rec.best.plan)
    with pytest.raises(InputRejected) as caught:
        svc.record_visit(svc.actors["therapist"], "E-NODATE", visit(365 * 30, 5))
    assert caught.value.errors[0].column == "visit_date"
    assert _visit_count(svc) == 0


def test_a_nul_byte_in_a_note_is_refused_by_name_on_both_backends(service, trained):
    """PostgreSQL text cannot hold NUL: the form must refuse it, not crash in the driver."""
    me = service.actors["therapist"]
    in_care(service, trained, "E-NUL", plan_with("moderate"))
    with pytest.raises(InputRejected) as caught:
        service.record_visit(me, "E-NUL", visit(1, 5, note="ok\x00=cmd"))
    assert [e.column for e in caught.value.errors] == ["note"]
    first = service.record_visit(me, "E-NUL", visit(1, 5))
    with pytest.raises(InputRejected):
        service.correct_visit(me, first, visit(1, 4), reason="typo\x00")
    assert _visit_count(service) == 1


# ---------------------------------------------------------------- roles


@pytest.mark.parametrize("role", ["data_staff", "supervisor", "admin"])
def test_only_therapists_record_or_correct_visits(sqlite_service, trained, role):
    svc = sqlite_service
    in_care(svc, trained, "E-ROLE", plan_with("moderate"))
    first = svc.record_visit(svc.actors["therapist"], "E-ROLE", visit(2, 5))
    with pytest.raises(PermissionDenied):
        svc.record_visit(svc.actors[role], "E-ROLE", visit(1, 5))
    with pytest.raises(PermissionDenied):
        svc.correct_visit(svc.actors[role], first, visit(2, 1), reason="mine now")
    assert _visit_count(svc) == 1
    assert len(_events(svc, "denied")) == 2


@pytest.mark.parametrize("role", ["therapist", "admin"])
def test_only_data_staff_and_supervisors_export_visits(sqlite_service, trained, tmp_path, role):
    svc = sqlite_service
    with pytest.raises(PermissionDenied):
        svc.export_visits(svc.actors[role], tmp_path / "visits.csv")
    assert not (tmp_path / "visits.csv").exists()


@pytest.mark.parametrize("role", ["data_staff", "admin"])
def test_the_day_list_is_for_clinical_readers_only(sqlite_service, trained, role):
    with pytest.raises(PermissionDenied):
        sqlite_service.day_list(sqlite_service.actors[role], everyone=True)


# ---------------------------------------------------------------- exports


def test_every_formula_trigger_in_notes_and_reasons_is_escaped_in_the_visits_export(service, trained,
                                                                                  tmp_path):
    me = service.actors["therapist"]
    in_care(service, trained, "E-FORMULA", plan_with("moderate"))
    payloads = [t + 'HYPERLINK("http://evil.example","x")' for t in FORMULA_TRIGGERS]
    for i, payload in enumerate(payloads):
        first = service.record_visit(me, "E-FORMULA", visit(10 - i, 5, note=payload))
        service.correct_visit(me, first, visit(10 - i, 4, note=payload), reason=payload)
    path = tmp_path / "visits.csv"
    service.export_visits(service.actors["data_staff"], path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in ("note", "correction_reason"):
        cells = [c for c in frame[column] if c]
        assert len(cells) >= len(payloads) and all("HYPERLINK" in c for c in cells)
        assert not [c for c in cells if c.startswith(FORMULA_TRIGGERS)], cells


# ---------------------------------------------------------------- the database itself


def test_visits_cannot_be_changed_or_removed_with_raw_sql(service, trained):
    me = service.actors["therapist"]
    in_care(service, trained, "E-RAW", plan_with("moderate"))
    first = service.record_visit(me, "E-RAW", visit(2, 5, discomfort=9))
    sqlite = service.db.url.startswith("sqlite")
    statements = [f"UPDATE visits SET discomfort = 0 WHERE id = {first}",
                  f"DELETE FROM visits WHERE id = {first}",
                  "DELETE FROM visits"]
    columns = ("id, episode_id, visit_date, kind, pain_score, discomfort, massage_intensity, "
               "training_given, exercise_days, adverse_event, note, contraindications, "
               "correction_reason, recorded_by, recorded_at")
    values = (f"SELECT id, episode_id, visit_date, kind, pain_score, 0, massage_intensity, "
              f"training_given, exercise_days, adverse_event, note, contraindications, "
              f"correction_reason, recorded_by, recorded_at FROM visits WHERE id = {first}")
    if sqlite:  # REPLACE deletes the old row without firing DELETE triggers
        statements.append(f"INSERT OR REPLACE INTO visits ({columns}) {values}")
        statements.append(f"REPLACE INTO visits ({columns}) {values}")
    else:
        statements.append("TRUNCATE visits CASCADE")
        statements.append(f"INSERT INTO visits ({columns}) {values} "
                          "ON CONFLICT (id) DO UPDATE SET discomfort = 0")
    for statement in statements:
        with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"):
            with service.db.write() as s:
                s.execute(text(statement))
    with service.db.read() as s:
        assert s.execute(select(Visit.discomfort)).scalars().all() == [9]


# ---------------------------------------------------------------- the day list and FHIR


def test_the_day_list_shows_no_other_therapists_patients_and_survives_odd_courses(service, trained):
    me, other = service.actors["therapist"], service.actors["supervisor"]
    in_care(service, trained, "E-ODD", plan_with("none"))
    only = service.record_visit(me, "E-ODD", visit(2, 0, discomfort=None, massage="none",
                                                   training_given=False))
    service.correct_visit(me, only, visit(2, 0, discomfort=None, massage="none", training_given=False,
                                          kind="review"), reason="it was a review")
    in_care(service, trained, "E-ZERO", plan_with("moderate"), i=1, pain_score=0)
    day = service.day_list(me)
    assert set(day["episode_id"]) == {"E-ODD", "E-ZERO"}
    assert day.set_index("episode_id").loc["E-ODD", "visits"] == 1
    assert service.day_list(other).empty


ODD_IDS = ["E/1", "E:2.x-_", "a" * 62, "0", "E..--//::"]


@pytest.mark.parametrize("code", ODD_IDS)
def test_the_fhir_bundle_is_valid_for_any_allowed_id(sqlite_service, trained, code):
    svc = sqlite_service
    me = svc.actors["therapist"]
    in_care(svc, trained, code, plan_with("moderate"))
    svc.record_visit(me, code, visit(2, 5))
    svc.record_visit(me, code, visit(2, 4))
    progress = svc.progress(me, code)
    bundle = care_bundle(code, progress.patient_id, progress.plan, progress.gate_now,
                         progress.pain_scores())
    ids = [e.resource.id for e in bundle.entry]
    assert len(ids) == len(set(ids)) == 4
    for entry in bundle.entry[1:]:
        assert entry.resource.basedOn[0].reference == f"CarePlan/{bundle.entry[0].resource.id}"
