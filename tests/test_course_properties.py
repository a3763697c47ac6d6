"""Properties of the course of care: whatever the visit history, a review never offers
massage above the discomfort cap nor a contraindicated plan, and the cap and the flags
follow their written rules (hypothesis)."""

from __future__ import annotations

import datetime as dt
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.contract.columns import INTENSITIES, REGIONS
from recommender.safety.plans import INTENSITY_LEVEL
from recommender.safety.tolerance import HIGH_DISCOMFORT, MassageSession, discomfort_cap
from recommender.services import course
from tests.strategies import intakes, massage_is_contraindicated, plans

START = dt.date(2026, 1, 5)
found_at_visit = st.fixed_dictionaries({}, optional={
    "infected_regions": st.lists(st.sampled_from(REGIONS), min_size=1, max_size=2, unique=True),
    "inflamed_skin_regions": st.lists(st.sampled_from(REGIONS), min_size=1, max_size=2, unique=True),
    "fever": st.just(True), "heart_condition": st.just(True), "anticoagulant_therapy": st.just(True),
})


@st.composite
def visit_histories(draw, max_size: int = 8) -> list[course.VisitRecord]:
    """Random visit records, with corrections, in entry order."""
    records: list[course.VisitRecord] = []
    for i in range(draw(st.integers(0, max_size))):
        massage = draw(st.sampled_from(INTENSITIES))
        training = draw(st.booleans())
        treated = massage != "none" or training
        supersedes = (draw(st.sampled_from([None, *(r.id for r in records)]))
                      if records and draw(st.booleans()) else None)
        records.append(course.VisitRecord(
            id=i + 1, visit_date=START + dt.timedelta(days=draw(st.integers(0, 80))),
            kind=draw(st.sampled_from(["session", "session", "review"])),
            pain_score=draw(st.integers(0, 10)),
            discomfort=draw(st.integers(0, 10)) if treated else None,
            massage_intensity=massage, training_given=training,
            exercise_days_last_week=draw(st.one_of(st.none(), st.integers(0, 7))),
            adverse_event=draw(st.booleans()),
            contraindications=draw(st.one_of(st.just({}), found_at_visit)),
            supersedes_id=supersedes))
    return records


def _as_typed(contraindications: dict) -> dict:
    return {k: frozenset(v) if isinstance(v, list) else v for k, v in contraindications.items()}


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(intake=intakes(), history=visit_histories())
def test_a_review_never_offers_massage_above_the_cap_or_a_contraindicated_plan(trained, intake, history):
    """The review's own steps (ClinicalService.review without the database): the state now,
    the cap, and the engine's recommendation under both."""
    visits = course.effective(history)
    state = course.current_state(intake, visits)
    cap = course.cap_for(visits)
    rec = trained["model"].recommend(state, max_massage_level=None if cap is None else cap.max_level)
    for prediction in rec.ranked():
        plan = prediction.plan
        # contraindicated neither at intake nor by anything found at a visit since
        assert not massage_is_contraindicated(intake, plan)
        for v in visits:
            assert not massage_is_contraindicated({**intake, **_as_typed(v.contraindications)}, plan) or \
                not plan.has_massage
        if cap is not None:
            assert not plan.has_massage or INTENSITY_LEVEL[plan.massage_intensity] <= cap.max_level
        assert course.plan_blocked_by(state, cap, plan) == []


@given(history=visit_histories(), plan=plans)
def test_what_accept_refuses_is_exactly_the_gate_on_the_state_now_and_the_cap(history, plan):
    visits = course.effective(history)
    intake = {"pain_region": "neck", "pain_score": 6, "pain_tolerance": "medium",
              "heart_condition": False, "infectious_disease": False, "phlebitis": False,
              "inflamed_skin_regions": frozenset(), "infected_regions": frozenset()}
    state = course.current_state(intake, visits)
    cap = course.cap_for(visits)
    blocked = course.plan_blocked_by(state, cap, plan)
    over_cap = cap is not None and plan.has_massage and INTENSITY_LEVEL[plan.massage_intensity] > cap.max_level
    assert ("TOL-DISCOMFORT" in blocked) == over_cap
    found = {k: v for rec in visits for k, v in _as_typed(rec.contraindications).items()}
    unsafe = any(massage_is_contraindicated({**intake, **_as_typed(rec.contraindications)}, plan)
                 for rec in visits) or massage_is_contraindicated(intake, plan)
    assert (len(blocked) > int(over_cap)) == unsafe, (found, blocked)


sessions = st.lists(st.builds(MassageSession, st.sampled_from(INTENSITIES),
                              st.one_of(st.none(), st.integers(0, 10))), max_size=10)


@given(sessions=sessions)
def test_the_cap_follows_its_written_rule(sessions):
    """Restated independently: 7+ at two of the last three sessions with massage caps the
    intensity one step below the gentlest intensity given at those sessions."""
    last = [s for s in sessions if s.intensity != "none"][-3:]
    high = [s for s in last if s.discomfort is not None and s.discomfort >= HIGH_DISCOMFORT]
    cap = discomfort_cap(sessions)
    if len(high) < 2:
        assert cap is None
    else:
        assert cap.max_level == min(INTENSITIES.index(s.intensity) for s in high) - 1
        assert cap.max_level < min(INTENSITIES.index(s.intensity) for s in high)


@given(history=visit_histories(), baseline=st.integers(0, 10), weeks=st.sampled_from([4, 6, 8, 12]))
def test_flags_follow_their_written_rules(history, baseline, weeks):
    visits = course.effective(history)
    flags = course.flags(baseline, START, weeks, visits)
    if visits and visits[-1].visit_date >= START + dt.timedelta(days=weeks * 3.5):
        drop = baseline - visits[-1].pain_score
        important = drop >= 2 or (baseline > 0 and drop / baseline >= 0.3)
        assert (course.FLAG_NOT_IMPROVING in flags) == (not important)
    else:
        assert course.FLAG_NOT_IMPROVING not in flags
    assert (course.FLAG_ADVERSE_EVENT in flags) == any(v.adverse_event for v in visits)
    treated = [v for v in visits if v.discomfort is not None and v.treated][-3:]
    assert (course.FLAG_HIGH_DISCOMFORT in flags) == (sum(v.discomfort >= 7 for v in treated) >= 2)


@given(history=visit_histories())
def test_corrected_records_never_count(history):
    visits = course.effective(history)
    replaced = {r.supersedes_id for r in history if r.supersedes_id}
    assert not {v.id for v in visits} & replaced
    assert len(visits) == len(history) - len(replaced)


@st.composite
def recorded_visits(draw) -> list[dict]:
    """Visit forms as a therapist might fill them in (some will be refused, as they should)."""
    out = []
    for days_ago in sorted(draw(st.lists(st.integers(0, 30), min_size=1, max_size=6)), reverse=True):
        massage = draw(st.sampled_from(INTENSITIES))
        visit = {"visit_date": (dt.date.today() - dt.timedelta(days=days_ago)).isoformat(),
                 "kind": "session", "pain_score": draw(st.integers(0, 10)),
                 "discomfort": draw(st.integers(0, 10)), "massage_intensity": massage,
                 "training_given": True, "adverse_event": False}
        visit.update(draw(st.one_of(st.just({}), found_at_visit)))
        out.append(visit)
    return out


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None, max_examples=12)
@given(history=recorded_visits(), i=st.integers(0, 200))
def test_the_review_service_never_offers_what_the_cap_or_the_gate_forbids(sqlite_service, trained,
                                                                           history, i):
    """The same property end to end: stored visits, then ClinicService.review."""
    from recommender.safety import gate
    from recommender.services import InputRejected
    from tests.conftest import intake_dict

    svc, me = sqlite_service, sqlite_service.actors["therapist"]
    episode = f"PROP-{uuid.uuid4().hex[:12]}"
    svc.save_intake(me, intake_dict(trained["cohort"], i, episode_id=episode, patient_id=episode,
                                    intake_date=(dt.date.today() - dt.timedelta(days=60)).isoformat()))
    rec_id, rec = svc.recommend(me, episode)
    svc.accept(me, rec_id, rec.best.plan)
    for visit in history:
        try:
            svc.record_visit(me, episode, visit)
        except InputRejected:
            pass  # e.g. massage recorded on a region found infected: refused, nothing stored
    progress = svc.progress(me, episode)
    if not progress.visits:
        return
    review = svc.review(me, episode)
    state_now = review.state
    for prediction in review.recommendation.ranked():
        plan = prediction.plan
        assert gate.evaluate(state_now).allows(plan)
        assert not massage_is_contraindicated(svc.clinical.typed_intake(svc.intake(me, episode)), plan)
        if progress.cap is not None:
            assert not plan.has_massage or INTENSITY_LEVEL[plan.massage_intensity] <= progress.cap.max_level
