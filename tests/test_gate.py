"""The contraindication gate: required rules, reasons, and properties over random intakes."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hypothesis import given

from recommender.safety import gate
from recommender.safety.plans import PLAN_SPACE, Plan

from .strategies import intakes, massage_is_contraindicated, plans

BASE = {
    "pain_region": "neck",
    "heart_condition": False,
    "infectious_disease": False,
    "phlebitis": False,
    "inflamed_skin_regions": frozenset(),
    "infected_regions": frozenset(),
}
MASSAGE = Plan(3, "moderate", 2, 3, 30, 8)
FIRM = Plan(2, "firm", 2, 3, 30, 8)
NO_MASSAGE = Plan(0, "none", 2, 3, 30, 8)


@pytest.mark.parametrize(
    "change, rule_id",
    [
        ({"heart_condition": True}, "CI-HEART"),
        ({"infectious_disease": True}, "CI-INFECTIOUS"),
        ({"phlebitis": True}, "CI-PHLEBITIS"),
        ({"inflamed_skin_regions": frozenset({"neck"})}, "CI-SKIN-PAIN-REGION"),
        ({"infected_regions": frozenset({"neck", "knee"})}, "CI-INFECTED-PAIN-REGION"),
        ({"fever": True}, "CI-FEVER"),
        ({"deep_vein_thrombosis": True}, "CI-DVT"),
        ({"recent_fracture_regions": frozenset({"neck"})}, "CI-FRACTURE-PAIN-REGION"),
        ({"phlebitis": None}, "CI-UNKNOWN"),
        ({"infected_regions": None}, "CI-UNKNOWN"),
    ],
)
def test_required_rules_forbid_all_massage(change, rule_id):
    decision = gate.evaluate({**BASE, **change})
    assert not decision.massage_allowed
    assert rule_id in decision.rule_ids
    assert not decision.allows(MASSAGE) and not decision.allows(FIRM)
    assert decision.allows(NO_MASSAGE)
    reason = next(r for r in decision.reasons if r.rule_id == rule_id)
    assert reason.message and reason.evidence and reason.citation


def test_other_region_is_listed_to_avoid_but_massage_allowed():
    decision = gate.evaluate({**BASE, "inflamed_skin_regions": frozenset({"knee"}),
                              "infected_regions": "hip"})
    assert decision.massage_allowed and decision.allows(MASSAGE)
    assert set(decision.avoid_regions) == {"knee", "hip"}
    assert {r.scope for r in decision.reasons} == {gate.Scope.REGION}


def test_anticoagulants_forbid_only_firm_massage():
    decision = gate.evaluate({**BASE, "anticoagulant_therapy": True})
    assert decision.allows(MASSAGE) and not decision.allows(FIRM)
    assert decision.forbidding_reasons(FIRM)[0].rule_id == "CI-ANTICOAGULANT"


def test_clean_intake_has_no_reasons():
    decision = gate.evaluate(BASE)
    assert decision.reasons == () and decision.allowed_mask(PLAN_SPACE.matrix).all()
    assert decision.ruleset_version == gate.RULESET_VERSION


def test_assert_allowed_raises_with_reason():
    with pytest.raises(gate.GateViolation, match="CI-PHLEBITIS"):
        gate.assert_allowed({**BASE, "phlebitis": True}, MASSAGE)
    assert gate.assert_allowed(BASE, MASSAGE).massage_allowed


def test_gate_has_no_switch():
    """No parameter of the public gate functions can weaken it."""
    for fn in (gate.evaluate, gate.assert_allowed, gate.evaluate_frame):
        params = set(inspect.signature(fn).parameters)
        assert params <= {"intake", "plan", "intakes"}, params


@given(intakes(), plans)
def test_gate_agrees_with_independent_restatement(intake, plan):
    decision = gate.evaluate(intake)
    assert decision.allows(plan) == (not massage_is_contraindicated(intake, plan))


@given(intakes())
def test_no_allowed_plan_breaks_a_rule_and_every_forbidden_plan_has_a_reason(intake):
    decision = gate.evaluate(intake)
    mask = decision.allowed_mask(PLAN_SPACE.matrix)
    for i in np.flatnonzero(mask)[::97]:
        assert not massage_is_contraindicated(intake, PLAN_SPACE.plan(i))
    forbidden = np.flatnonzero(~mask)
    for i in forbidden[::53]:
        plan = PLAN_SPACE.plan(i)
        assert massage_is_contraindicated(intake, plan)
        assert decision.forbidding_reasons(plan)
    # the vectorised mask and the per-plan check agree everywhere
    per_plan = np.array([not decision.forbidding_reasons(PLAN_SPACE.plan(i))
                         for i in range(0, len(PLAN_SPACE), 61)])
    assert (mask[::61] == per_plan).all()
