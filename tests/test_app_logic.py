"""The logic behind the pages: plan controls and locks, handout, FHIR export, reports, idle timeout."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recommender.outputs.fhir import PainScore, care_bundle, care_bundle_json, care_plan
from recommender.outputs.handout import (
    Clinic,
    handout,
    handout_html,
    handout_lines,
    times_a_week,
)
from recommender.safety import gate
from recommender.contract.columns import INTENSITIES
from recommender.safety.plans import Plan
from recommender.safety.tolerance import DiscomfortCap
from recommender.web.plan_form import build_plan, differs, form_to_intake, plan_controls
from recommender.web.reports import filter_events, override_stats, weekly, weekly_chart
from recommender.web.ui import is_idle

from .strategies import intakes, massage_is_contraindicated, plans

CLEAN = {"pain_region": "hand_wrist", "heart_condition": False, "infectious_disease": False,
         "phlebitis": False, "inflamed_skin_regions": frozenset({"knee"}), "infected_regions": frozenset()}
PLAN = Plan(4, "gentle", 2, 3, 30, 8)


@given(intakes())
def test_every_selectable_control_value_is_allowed(intake):
    """Property: whatever a therapist selects in the tuning controls passes the gate."""
    decision = gate.evaluate(intake)
    controls = plan_controls(decision)
    for sessions in controls.massage_sessions:
        for intensity in controls.intensities:
            plan = build_plan(sessions, intensity, 2, 3, 30, 8)
            assert not massage_is_contraindicated(intake, plan)
    assert bool(controls.locked_reason) == any(
        r.effect is not gate.Effect.AVOID_REGION for r in decision.reasons)


def test_controls_lock_massage_with_reason():
    controls = plan_controls(gate.evaluate({**CLEAN, "phlebitis": True}))
    assert controls.massage_sessions == (0,) and controls.intensities == ("none",)
    assert "phlebitis" in controls.locked_reason
    anticoag = plan_controls(gate.evaluate({**CLEAN, "anticoagulant_therapy": True}))
    assert "firm" not in anticoag.intensities and "anticoagulants" in anticoag.locked_reason


def test_controls_follow_the_discomfort_cap_too():
    from recommender.safety.tolerance import DiscomfortCap

    moderate = plan_controls(gate.evaluate(CLEAN), DiscomfortCap(max_level=2, high_sessions=2, given="firm"))
    assert moderate.intensities == ("gentle", "moderate") and "no firmer than moderate" in moderate.locked_reason
    none = plan_controls(gate.evaluate(CLEAN), DiscomfortCap(max_level=0, high_sessions=2, given="gentle"))
    assert none.massage_sessions == (0,) and none.intensities == ("none",)
    # the cap only ever narrows what the gate allows
    anticoag = plan_controls(gate.evaluate({**CLEAN, "anticoagulant_therapy": True}),
                             DiscomfortCap(max_level=3, high_sessions=2, given="firm"))
    assert "firm" not in anticoag.intensities


def test_a_plan_above_the_cap_or_forbidden_by_the_gate_is_not_permitted():
    from recommender.safety.tolerance import DiscomfortCap
    from recommender.web.plan_form import permitted

    firm, moderate = Plan(2, "firm", 2, 3, 30, 8), Plan(2, "moderate", 2, 3, 30, 8)
    cap = DiscomfortCap(max_level=2, high_sessions=2, given="firm")
    assert permitted(firm, gate.evaluate(CLEAN)) and not permitted(firm, gate.evaluate(CLEAN), cap)
    assert permitted(moderate, gate.evaluate(CLEAN), cap)
    assert not permitted(moderate, gate.evaluate({**CLEAN, "phlebitis": True}))


def test_a_difference_never_reads_minus_zero():
    from recommender.web.wording import signed

    assert signed(-0.04) == "±0.0" and signed(0.0) == "±0.0"
    assert signed(0.26) == "+0.3" and signed(-1.25) in ("-1.2", "-1.3")


def test_timeouts_are_said_in_words():
    from recommender.services.sessions import duration_words

    assert duration_words(dt.timedelta(minutes=15)) == "15 minutes"
    assert duration_words(dt.timedelta(minutes=1)) == "1 minute"
    assert duration_words(dt.timedelta(seconds=12)) == "12 seconds"
    assert duration_words(dt.timedelta(minutes=2.5)) == "2.5 minutes"


def test_a_gate_refusal_is_shown_not_raised():
    from recommender.web.ui import show_refusal

    show_refusal(gate.GateViolation("plan above the discomfort cap"))  # an error box, no traceback


def test_build_plan_and_differences():
    assert build_plan(0, "firm", 1, 2, 30, 8) == Plan(0, "none", 1, 2, 30, 8)
    assert differs(PLAN, build_plan(4, "gentle", 3, 3, 30, 8)) == ["muscle_training_sessions_per_week"]
    from recommender.web.wording import labels

    assert labels(["muscle_training_sessions_per_week"]) == "muscle training sessions a week"
    assert form_to_intake({"phlebitis": True, "infected_regions": ["neck", "hip"], "bmi": None}) == {
        "phlebitis": "true", "infected_regions": "hip;neck", "bmi": ""}


CLINIC = Clinic("Riverside Pain Clinic", "Call 0123 456 789")


def _sheet(patient, plan, decision, cap=None):
    return handout(patient, plan, decision, CLINIC, "ann", dt.date(2026, 1, 5), cap=cap)


def test_handout_is_plain_and_safe():
    decision = gate.evaluate(CLEAN)
    text = "\n".join(handout_lines(_sheet("P1", PLAN, decision)))
    assert "4 times a week" in text and "gentle pressure" in text and "8 weeks" in text
    assert "time(s)" not in text and "day(s)" not in text
    assert "Riverside Pain Clinic" in text and "Therapist: ann" in text and "2026-01-05" in text
    assert "Questions? Call 0123 456 789" in text
    assert "Tell your therapist if anything is uncomfortable" in text
    assert "knee" in text  # region to avoid
    blocked = "\n".join(handout_lines(_sheet("P1", Plan(0, "none", 2, 3, 30, 8),
                                              gate.evaluate({**CLEAN, "phlebitis": True}))))
    assert "Massage is not part of your plan" in blocked and "Pain massage" not in blocked
    page = handout_html(_sheet("<script>", PLAN, decision))
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "print()" not in page  # the page never opens the print dialog by itself


@given(intake=intakes(), plan=plans)
def test_no_handout_or_fhir_export_schedules_contraindicated_massage(intake, plan):
    """An accepted plan stays on record when a later finding forbids its massage; what goes to
    the patient (handout) and to other systems (FHIR) must then say massage is stopped."""
    decision = gate.evaluate(intake)
    forbidden = massage_is_contraindicated(intake, plan)
    activities = _sheet("P1", plan, decision).activities
    assert any("massage" in a.lower() for a in activities) == (plan.has_massage and not forbidden)
    resource = care_plan("E-1", "P-1", plan, decision).model_dump(mode="json")
    detail = [a["detail"] for a in resource.get("activity", [])]
    scheduled = [d for d in detail if "massage" in d["description"].lower() and d["status"] == "scheduled"]
    assert bool(scheduled) == (plan.has_massage and not forbidden)
    stopped = [d for d in detail if d["status"] == "stopped"]
    assert bool(stopped) == (plan.has_massage and forbidden)
    assert ("no massage" in resource["description"]) == (not plan.has_massage or forbidden)
    assert all("scheduledTiming" not in d and d["statusReason"]["text"] for d in stopped)


@given(plan=plans, level=st.integers(0, 3))
def test_no_handout_or_fhir_export_schedules_massage_firmer_than_the_discomfort_cap(plan, level):
    cap = DiscomfortCap(max_level=level, high_sessions=2, given="firm")
    decision = gate.evaluate(CLEAN)
    sheet = _sheet("P1", plan, decision, cap)
    resource = care_plan("E-1", "P-1", plan, decision, cap=cap).model_dump(mode="json")
    scheduled = [a["detail"]["description"].split()[0].lower() for a in resource.get("activity", [])
                 if "massage" in a["detail"]["description"].lower()
                 and a["detail"]["status"] == "scheduled"]
    listed = [a for a in sheet.activities if "massage" in a.lower()]
    allowed = INTENSITIES[: level + 1]
    assert all(word in allowed for word in scheduled)
    assert all(any(f"{i} pressure" in a for i in allowed if i != "none") for a in listed)
    assert bool(listed) == bool(scheduled) == (plan.has_massage and level > 0)
    summary = resource["description"]
    assert ("no massage" in summary) == (not plan.has_massage or level == 0)
    assert not any(f"{i} massage" in summary for i in INTENSITIES[level + 1:])
    if plan.has_massage and INTENSITIES.index(plan.massage_intensity) > level:
        assert any("lowered" in n or "stopped" in n for n in sheet.notes)


def test_a_plan_whose_massage_a_later_finding_forbids_is_shown_as_stopped():
    from recommender.outputs.handout import MASSAGE_STOPPED_LINE
    from recommender.web.plan_form import contraindicated_plan_warning

    infected = gate.evaluate({**CLEAN, "infected_regions": ["hand_wrist"]})
    sheet = _sheet("P1", PLAN, infected)
    assert MASSAGE_STOPPED_LINE in sheet.notes and not any("massage" in a.lower() for a in sheet.activities)
    assert "Muscle training" in sheet.activities[0]  # the rest of the plan goes on
    assert "infected" in contraindicated_plan_warning(PLAN, infected)
    assert "reviewed and replaced" in contraindicated_plan_warning(PLAN, infected)
    ended = contraindicated_plan_warning(PLAN, infected, ended=True)  # nothing left to replace
    assert "has ended" in ended and "replaced" not in ended
    assert contraindicated_plan_warning(PLAN, gate.evaluate(CLEAN)) is None


@pytest.mark.parametrize("n, words", [(1, "once a week"), (2, "twice a week"), (3, "3 times a week")])
def test_plain_frequencies(n, words):
    assert times_a_week(n) == words


def test_fhir_care_plan_is_valid_and_matches_plan():
    decision = gate.evaluate(CLEAN)
    resource = care_plan("E-1", "P-1", PLAN, decision, created=dt.date(2026, 1, 5))
    assert resource.status == "active" and resource.intent == "plan"
    assert len(resource.activity) == 3
    timing = resource.activity[0].detail.scheduledTiming.repeat
    assert (timing.frequency, timing.periodUnit, timing.duration) == (4, "wk", 30)
    data = care_plan("E-1", "P-1", Plan(0, "none", 0, 5, 20, 4), decision).model_dump(mode="json")
    assert [a["detail"]["description"] for a in data["activity"]] == ["Own therapeutic exercise at home"]
    assert data["subject"]["identifier"]["value"] == "P-1"


@pytest.mark.parametrize("episode", ["E 1", "O'Brien/2", "a#b", "x" * 64, "-E-minus"])
def test_fhir_ids_are_derived_and_clinic_ids_kept(episode):
    """Any episode id gives a valid resource id; the clinic's id travels unchanged."""
    from recommender.outputs.fhir import fhir_id

    data = care_plan(episode, "P/1 #2", PLAN, gate.evaluate(CLEAN)).model_dump(mode="json")
    assert data["id"] == fhir_id("careplan", episode) and len(data["id"]) <= 64
    assert data["identifier"][0]["value"] == episode
    assert data["subject"]["identifier"]["value"] == "P/1 #2"


def test_fhir_bundle_carries_pain_scores_as_loinc_observations_of_the_care_plan():
    from fhir.resources.R4B.bundle import Bundle
    from fhir.resources.R4B.observation import Observation
    from pydantic import ValidationError

    scores = [PainScore(dt.date(2026, 1, 5), 7, "intake"), PainScore(dt.date(2026, 1, 19), 5, "visit:3")]
    data = json.loads(care_bundle_json("E 1", "P-1", PLAN, gate.evaluate(CLEAN), scores))
    Bundle.model_validate(data)  # validates as a whole, round trip included
    assert data["type"] == "collection"
    plan, *observations = [e["resource"] for e in data["entry"]]
    assert plan["resourceType"] == "CarePlan" and len(observations) == 2
    for obs, score in zip(observations, scores):
        assert obs["resourceType"] == "Observation" and obs["status"] == "final"
        assert obs["code"]["coding"][0] == {
            "system": "http://loinc.org", "code": "72514-3",
            "display": "Pain severity - 0-10 verbal numeric rating [Score] - Reported"}
        assert obs["valueInteger"] == score.score
        assert obs["effectiveDateTime"] == score.day.isoformat()
        assert obs["basedOn"] == [{"reference": f"CarePlan/{plan['id']}"}]
        assert obs["subject"]["identifier"]["value"] == "P-1"
    assert len({o["id"] for o in observations}) == 2
    with pytest.raises(ValidationError):  # a score that is not an integer is refused
        Observation.model_validate({**observations[0], "valueInteger": "seven"})
    assert care_bundle("E 1", "P-1", PLAN, gate.evaluate(CLEAN), []).entry[0].resource.id == plan["id"]
    # once the programme has ended, the plan and what it scheduled are completed, not active
    done = json.loads(care_bundle_json("E 1", "P-1", PLAN, gate.evaluate(CLEAN), scores, ended=True))
    Bundle.model_validate(done)
    ended_plan = done["entry"][0]["resource"]
    assert ended_plan["status"] == "completed"
    assert {a["detail"]["status"] for a in ended_plan["activity"]} == {"completed"}
    assert plan["status"] == "active" and {a["detail"]["status"] for a in plan["activity"]} == {"scheduled"}
    # a follow-up may record a half point (the contract's follow-up score is a number): kept as is
    half = json.loads(care_bundle_json("E 1", "P-1", PLAN, gate.evaluate(CLEAN),
                                       [PainScore(dt.date(2026, 3, 2), 3.5, "followup:1")]))
    Bundle.model_validate(half)
    obs = half["entry"][1]["resource"]
    assert "valueInteger" not in obs and obs["valueQuantity"]["value"] == 3.5


def test_fhir_validation_rejects_a_malformed_care_plan():
    """The library validates structure: a wrong type in a field is refused."""
    from fhir.resources.R4B.careplan import CarePlan
    from pydantic import ValidationError

    good = care_plan("E-1", "P-1", PLAN, gate.evaluate(CLEAN)).model_dump(mode="json")
    bad = {**good, "activity": [{"detail": {"status": "scheduled", "scheduledTiming":
                                            {"repeat": {"frequency": "twice"}}}}]}
    with pytest.raises(ValidationError):
        CarePlan.model_validate(bad)


def _decisions() -> pd.DataFrame:
    return pd.DataFrame({
        "therapist": ["ann", "ann", "bob"], "overridden": [True, False, False],
        "massage_blocked": [False, True, False], "followed_up": [True, False, True],
        "decided_at": ["2026-01-05T10:00:00+00:00", "2026-01-13T10:00:00+00:00",
                       "2026-01-14T10:00:00+00:00"],
    })


def test_override_and_weekly_stats():
    stats = override_stats(_decisions()).set_index("therapist")
    assert stats.loc["ann", "override_rate"] == 0.5 and stats.loc["bob", "followup_rate"] == 1.0
    assert stats.loc["ann", "massage_blocked"] == 1
    weeks = weekly(_decisions())
    assert list(weeks["decisions"]) == [1, 2]
    spec = weekly_chart(weeks.iloc[:1]).to_dict()  # one week still draws bars, side by side
    assert spec["mark"]["type"] == "bar" and spec["encoding"]["x"]["type"] == "ordinal"
    assert spec["encoding"]["xOffset"]["field"] == "series"
    rows = next(iter(spec["datasets"].values()))
    assert {r["series"] for r in rows} == {"Decisions", "Departed from the recommendation",
                                          "Massage blocked by the gate"}
    assert all(r["week"].startswith("week of ") for r in rows)


def test_audit_filters():
    events = pd.DataFrame({
        "seq": [1, 2, 3], "ts": ["2026-01-01T09:00:00+00:00", "2026-01-02T09:00:00+00:00",
                                 "2026-01-03T09:00:00+00:00"],
        "actor": ["ann", "bob", "ann"], "action": ["login", "accept", "accept"],
        "target": ["user:ann", "episode:E-7", "episode:E-9"], "after": ["{}", "{}", "{}"],
    })
    assert list(filter_events(events, users=["ann"], actions=["accept"])["seq"]) == [3]
    assert list(filter_events(events, start=dt.date(2026, 1, 2), end=dt.date(2026, 1, 2))["seq"]) == [2]
    assert list(filter_events(events, patient="e-7")["seq"]) == [2]


def test_audit_filter_days_are_the_clinics_and_a_patient_id_finds_their_episodes_trail():
    events = pd.DataFrame({
        "seq": [1, 2, 3, 4],
        # 23:30 UTC on 1 Jan is already 2 Jan at UTC+14 (Kiritimati), as the table shows it
        "ts": ["2026-01-01T23:30:00+00:00", "2026-01-01T08:00:00+00:00",
               "2026-01-03T09:00:00.123456+00:00", "2026-01-04T09:00:00+00:00"],
        "actor": ["ann"] * 4, "action": ["intake", "login", "recommend", "visit"],
        "target": ["episode:W-1", "user:ann", "episode:W-1", "episode:W-2"],
        "after": ['{"patient_id": "P-HEART", "episode_id": "W-1"}', None, '{"plan": {}}', "{}"],
    })
    day = dt.date(2026, 1, 2)
    assert list(filter_events(events, day, day, zone="Pacific/Kiritimati")["seq"]) == [1]
    assert list(filter_events(events, day, day)["seq"]) == []  # in UTC it is 1 January
    # the patient id is only in the intake; the recommendation on that episode is theirs too
    assert list(filter_events(events, patient="p-heart")["seq"]) == [1, 3]
    assert list(filter_events(events, start=dt.date(2026, 1, 3), patient="P-HEART")["seq"]) == [3]
    # an imported patient is named by no event: the database says which episodes are theirs
    assert list(filter_events(events, patient="P-IMPORTED")["seq"]) == []
    assert list(filter_events(events, patient="P-IMPORTED", episodes=["W-2"])["seq"]) == [4]


def test_idle_rule():
    assert is_idle(0.0, 1000.0, 900.0) and not is_idle(500.0, 1000.0, 900.0)
    assert not is_idle(None, 1000.0, 900.0)


@pytest.mark.parametrize("value", ["[click](http://example.invalid)", "![x](http://e.invalid/i.png)",
                                   "<img src=x onerror=alert(1)>", "http://bare.invalid", "**bold**",
                                   "www.example.invalid", "a@b.invalid"])
def test_user_data_is_inert_in_markdown(value):
    """Every Markdown punctuation mark is escaped and autolink triggers are broken."""
    import re

    from recommender.web.wording import plain

    out = plain(value)
    assert not re.search(r"(?<!\\)[\[\]()<>!*_]", out)  # no unescaped markup character
    assert "://" not in out and "www." not in out and not re.search(r"@\w", out)
    assert out.replace("\\", "").replace("\u200b", "") == value  # and it still reads the same


def test_course_episode_choices_follow_a_new_search():
    from recommender.web.course_view import episode_choices

    # opened from My day, no search: listed and selected even when not in care's first page
    assert episode_choices(["A", "B"], "C", "", None) == (["C", "A", "B"], 0)
    assert episode_choices(["A", "B"], "B", "", "") == (["A", "B"], 1)
    # a new search selects from its own results, dropping the opened patient
    assert episode_choices(["B"], "C", "B", "") == (["B"], 0)
    # the same search again (a rerun) keeps what the therapist picked from it
    assert episode_choices(["B", "D"], "D", "B", "B") == (["B", "D"], 1)
    assert episode_choices([], None, "zzz", "") == ([], 0)


def test_required_region_lists_are_answered_before_an_empty_list_counts_as_none():
    from recommender.web.plan_form import ASKED_REGION_LISTS, region_answer_errors

    assert set(ASKED_REGION_LISTS) == {"inflamed_skin_regions", "infected_regions"}
    unanswered = region_answer_errors({}, {})
    assert [e.column for e in unanswered] == list(ASKED_REGION_LISTS)
    answered = {"inflamed_skin_regions": False, "infected_regions": True}
    assert region_answer_errors(answered, {"infected_regions": ["hip"]}) == []
    assert [e.expected for e in region_answer_errors(answered, {})] == ["the regions (you answered yes)"]
    wrong = region_answer_errors(answered, {"inflamed_skin_regions": ["neck"], "infected_regions": ["hip"]})
    assert [(e.column, e.value) for e in wrong] == [("inflamed_skin_regions", "neck")]
