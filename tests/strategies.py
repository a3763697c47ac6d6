"""Hypothesis strategies for contract intakes and plans."""

from __future__ import annotations

from hypothesis import strategies as st

from recommender.contract.columns import (
    ACTIVITY_LEVELS,
    PAIN_CAUSES,
    REGIONS,
    SEXES,
    TOLERANCES,
)
from recommender.safety.plans import PLAN_SPACE, Plan

region_sets = st.frozensets(st.sampled_from(REGIONS), max_size=3)
maybe_bool = st.one_of(st.none(), st.booleans())


@st.composite
def intakes(draw, complete: bool = False) -> dict:
    """Random intakes; unless ``complete``, optional and even required safety fields may be missing."""
    required_bool = st.booleans() if complete else st.one_of(st.booleans(), st.none())
    required_regions = region_sets if complete else st.one_of(region_sets, st.none())
    intake = {
        "episode_id": draw(st.text(min_size=1, max_size=8)),
        "patient_id": "P1",
        "age": draw(st.integers(18, 100)),
        "sex": draw(st.sampled_from(SEXES)),
        "pain_region": draw(st.sampled_from(REGIONS)),
        "pain_cause": draw(st.sampled_from(PAIN_CAUSES)),
        "pain_duration_months": draw(st.floats(0, 240)),
        "pain_score": draw(st.integers(0, 10)),
        "pain_tolerance": draw(st.sampled_from(TOLERANCES)),
        "activity_level": draw(st.sampled_from(ACTIVITY_LEVELS)),
        "heart_condition": draw(required_bool),
        "infectious_disease": draw(required_bool),
        "phlebitis": draw(required_bool),
        "inflamed_skin_regions": draw(required_bool.flatmap(lambda _: required_regions)),
        "infected_regions": draw(required_regions),
    }
    for column in ("fever", "deep_vein_thrombosis", "anticoagulant_therapy"):
        value = draw(maybe_bool)
        if value is not None:
            intake[column] = value
    fractures = draw(st.one_of(st.none(), region_sets))
    if fractures is not None:
        intake["recent_fracture_regions"] = fractures
    for column, low, high in (("sleep_quality", 0, 10), ("anxiety_score", 0, 6),
                              ("depression_score", 0, 6)):
        if draw(st.booleans()):
            intake[column] = draw(st.integers(low, high))
    return intake


plans = st.integers(0, len(PLAN_SPACE) - 1).map(PLAN_SPACE.plan)


def massage_is_contraindicated(intake: dict, plan: Plan) -> bool:
    """The contract's rules and ours, restated independently of the gate's code."""
    if not plan.has_massage:
        return False

    def flag(name, required):
        v = intake.get(name)
        return (v is None and required) or bool(v)

    def regions(name, required):
        v = intake.get(name)
        return None if v is None else set(v)

    if any(flag(n, True) for n in ("heart_condition", "infectious_disease", "phlebitis")):
        return True
    if any(flag(n, False) for n in ("fever", "deep_vein_thrombosis")):
        return True
    for name, required in (("inflamed_skin_regions", True), ("infected_regions", True),
                           ("recent_fracture_regions", False)):
        r = regions(name, required)
        if r is None and required:
            return True
        if r and intake["pain_region"] in r:
            return True
    if intake.get("anticoagulant_therapy") and plan.massage_intensity == "firm":
        return True
    return False
