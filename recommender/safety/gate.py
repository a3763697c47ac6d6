"""The contraindication gate: hard-coded, versioned rules that remove unsafe plans.

There is deliberately no switch, setting or parameter that weakens the gate:
every recommendation, tuning and acceptance path calls :func:`evaluate` and
re-checks the final plan with :func:`assert_allowed`.  Changing a rule means
changing this file and bumping ``RULESET_VERSION``, which is recorded with
every model, recommendation and decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

import numpy as np
import pandas as pd

from recommender.contract.columns import INTENSITIES
from recommender.safety.plans import M_LEVEL, M_SESSIONS, Plan, guideline_plan_for

RULESET_VERSION = "2026.11.1"

_BATAVIA = (
    "Batavia M. Contraindications for therapeutic massage: do sources agree? "
    "J Bodyw Mov Ther. 2004;8(1):48-57."
)
_BASIS = "Clinic clinical basis (product brief, 2026): massage contraindications."


class Effect(str, Enum):
    NO_MASSAGE = "no_massage"
    NO_FIRM_MASSAGE = "no_firm_massage"
    AVOID_REGION = "avoid_region"


# The one statement of the massage rule: each effect caps the massage intensity level a
# plan may have (0 none, 1 gentle, 2 moderate, 3 firm); a patient's cap is the lowest cap
# among the rules that fire, and a plan is allowed when it has no massage or massage no
# firmer than the cap (see :func:`permits`).
NO_LIMIT = len(INTENSITIES) - 1
EFFECT_MAX_LEVEL = {"no_massage": 0, "no_firm_massage": NO_LIMIT - 1, "avoid_region": NO_LIMIT}


def permits(sessions, level, max_level):
    """Whether plans with these massage sessions and intensity levels respect ``max_level``
    (numpy-broadcast: scalars, a plan column against one cap, or plans × patients)."""
    return (np.asarray(sessions) == 0) | (np.asarray(level) <= np.asarray(max_level))


class Scope(str, Enum):
    WHOLE_BODY = "whole_body"
    REGION = "region"


@dataclass(frozen=True)
class Rule:
    rule_id: str
    effect: Effect
    scope: Scope
    message: str  # may contain {region}
    evidence: str
    citation: str


@dataclass(frozen=True)
class GateReason:
    """Why the gate restricted a patient's plans: one rule that fired."""

    rule_id: str
    effect: Effect
    scope: Scope
    region: str | None
    message: str
    evidence: str
    citation: str

    def as_dict(self) -> dict[str, object]:
        return {
            "rule_id": self.rule_id,
            "effect": self.effect.value,
            "scope": self.scope.value,
            "region": self.region,
            "message": self.message,
            "evidence": self.evidence,
            "citation": self.citation,
        }


RULES: dict[str, Rule] = {
    r.rule_id: r
    for r in (
        Rule("CI-HEART", Effect.NO_MASSAGE, Scope.WHOLE_BODY,
             "No massage: the patient has a heart condition.",
             "Massage is not given at all to people with heart problems.",
             f"{_BASIS} {_BATAVIA}"),
        Rule("CI-INFECTIOUS", Effect.NO_MASSAGE, Scope.WHOLE_BODY,
             "No massage: the patient has an infectious disease.",
             "Massage is not given at all to people with infectious diseases.",
             f"{_BASIS} {_BATAVIA}"),
        Rule("CI-PHLEBITIS", Effect.NO_MASSAGE, Scope.WHOLE_BODY,
             "No massage: the patient has phlebitis or thrombophlebitis.",
             "Massage is not given at all to people with phlebitis; it may dislodge a thrombus.",
             f"{_BASIS} {_BATAVIA}"),
        Rule("CI-SKIN-PAIN-REGION", Effect.NO_MASSAGE, Scope.REGION,
             "No massage: the skin of the pain region ({region}) is inflamed.",
             "Massage is never given on inflamed skin; plan massage targets the pain region.",
             f"{_BASIS} {_BATAVIA}"),
        Rule("CI-INFECTED-PAIN-REGION", Effect.NO_MASSAGE, Scope.REGION,
             "No massage: the pain region ({region}) is infected.",
             "Massage is never given on an infected body part; plan massage targets the pain region.",
             f"{_BASIS} {_BATAVIA}"),
        Rule("CI-SKIN-OTHER-REGION", Effect.AVOID_REGION, Scope.REGION,
             "Avoid touching the {region}: its skin is inflamed.",
             "Massage is never given on inflamed skin.",
             f"{_BASIS} {_BATAVIA}"),
        Rule("CI-INFECTED-OTHER-REGION", Effect.AVOID_REGION, Scope.REGION,
             "Avoid touching the {region}: it is infected.",
             "Massage is never given on an infected body part.",
             f"{_BASIS} {_BATAVIA}"),
        Rule("CI-FEVER", Effect.NO_MASSAGE, Scope.WHOLE_BODY,
             "No massage: the patient has a fever.",
             "Fever is a general contraindication to massage until it has resolved.",
             _BATAVIA),
        Rule("CI-DVT", Effect.NO_MASSAGE, Scope.WHOLE_BODY,
             "No massage: the patient has a deep-vein thrombosis.",
             "Massage over or near a deep-vein thrombosis risks embolism; it is withheld.",
             _BATAVIA),
        Rule("CI-ANTICOAGULANT", Effect.NO_FIRM_MASSAGE, Scope.WHOLE_BODY,
             "No firm massage: the patient takes anticoagulants (bruising risk).",
             "Deep or firm pressure is avoided in patients on anticoagulant therapy.",
             _BATAVIA),
        Rule("CI-FRACTURE-PAIN-REGION", Effect.NO_MASSAGE, Scope.REGION,
             "No massage: the pain region ({region}) has a recent fracture.",
             "Massage is not given over a recent, unhealed fracture.",
             _BATAVIA),
        Rule("CI-FRACTURE-OTHER-REGION", Effect.AVOID_REGION, Scope.REGION,
             "Avoid touching the {region}: recent fracture.",
             "Massage is not given over a recent, unhealed fracture.",
             _BATAVIA),
        Rule("CI-UNKNOWN", Effect.NO_MASSAGE, Scope.WHOLE_BODY,
             "No massage: '{region}' was not recorded, so safety cannot be confirmed.",
             "When a contraindication has not been assessed, massage is withheld until it is.",
             "Project safety policy (fail closed)."),
    )
}

_WHOLE_BODY_FLAGS = (
    ("heart_condition", "CI-HEART", True),
    ("infectious_disease", "CI-INFECTIOUS", True),
    ("phlebitis", "CI-PHLEBITIS", True),
    ("fever", "CI-FEVER", False),
    ("deep_vein_thrombosis", "CI-DVT", False),
    ("anticoagulant_therapy", "CI-ANTICOAGULANT", False),
)  # (column, rule, required by the contract)
_REGION_LISTS = (
    ("inflamed_skin_regions", "CI-SKIN-PAIN-REGION", "CI-SKIN-OTHER-REGION", True),
    ("infected_regions", "CI-INFECTED-PAIN-REGION", "CI-INFECTED-OTHER-REGION", True),
    ("recent_fracture_regions", "CI-FRACTURE-PAIN-REGION", "CI-FRACTURE-OTHER-REGION", False),
)


class GateViolation(RuntimeError):
    """A plan that the gate forbids reached a point where it would be used."""


@dataclass(frozen=True)
class GateDecision:
    """What the gate allows for one patient, and every reason behind it."""

    massage_allowed: bool
    max_massage_level: int  # highest allowed intensity level (0 = no massage)
    reasons: tuple[GateReason, ...]
    ruleset_version: str = RULESET_VERSION

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.rule_id for r in self.reasons)

    @property
    def avoid_regions(self) -> tuple[str, ...]:
        return tuple(r.region for r in self.reasons if r.effect is Effect.AVOID_REGION)

    def guideline_plan(self) -> Plan:
        """The guideline plan with massage removed or softened as this decision requires."""
        return guideline_plan_for(self.massage_allowed, self.max_massage_level)

    def allows(self, plan: Plan) -> bool:
        return not self.forbidding_reasons(plan)

    def allowed_mask(self, encoded_plans: np.ndarray) -> np.ndarray:
        """Boolean mask over encoded plans (rows as in :mod:`recommender.safety.plans`)."""
        return permits(encoded_plans[:, M_SESSIONS], encoded_plans[:, M_LEVEL], self.max_massage_level)

    def allowed_intensities(self) -> tuple[str, ...]:
        """Massage intensities (other than none) that this patient may be given."""
        return tuple(i for level, i in enumerate(INTENSITIES) if level and permits(1, level, self.max_massage_level))

    def forbidding_reasons(self, plan: Plan) -> list[GateReason]:
        """The reasons that forbid this plan (empty when it is allowed)."""
        sessions, level = plan.massage_sessions_per_week, INTENSITIES.index(plan.massage_intensity)
        return [r for r in self.reasons if not permits(sessions, level, EFFECT_MAX_LEVEL[r.effect.value])]


def _reason(rule_id: str, region: str | None = None) -> GateReason:
    rule = RULES[rule_id]
    return GateReason(
        rule_id=rule.rule_id,
        effect=rule.effect,
        scope=rule.scope,
        region=region,
        message=rule.message.format(region=(region or "").replace("_", " ")),
        evidence=rule.evidence,
        citation=rule.citation,
    )


def is_missing(value: object) -> bool:
    """Not recorded: None, NaN or pandas' NA (the gate treats these as unknown)."""
    return value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA


def _regions(value: object) -> frozenset[str] | None:
    if is_missing(value):
        return None
    if isinstance(value, str):
        return frozenset(p.strip() for p in value.split(";") if p.strip())
    return frozenset(value)


def evaluate(intake: Mapping[str, object]) -> GateDecision:
    """Apply every rule to one intake (a contract row as a mapping).

    Fails closed: a required contraindication that was not recorded forbids massage.
    """
    reasons: list[GateReason] = []
    pain_region = intake.get("pain_region")
    if is_missing(pain_region):
        reasons.append(_reason("CI-UNKNOWN", "pain_region"))
    for column, rule_id, required in _WHOLE_BODY_FLAGS:
        value = intake.get(column)
        if is_missing(value):
            if required:
                reasons.append(_reason("CI-UNKNOWN", column))
        elif bool(value):
            reasons.append(_reason(rule_id))
    for column, pain_rule, other_rule, required in _REGION_LISTS:
        regions = _regions(intake.get(column))
        if regions is None:
            if required:
                reasons.append(_reason("CI-UNKNOWN", column))
            continue
        for region in sorted(regions):
            rule = pain_rule if region == pain_region else other_rule
            reasons.append(_reason(rule, region))

    max_level = min((EFFECT_MAX_LEVEL[r.effect.value] for r in reasons), default=NO_LIMIT)
    return GateDecision(max_level > 0, max_level, tuple(reasons))


def evaluate_frame(intakes: pd.DataFrame) -> list[GateDecision]:
    """:func:`evaluate` for every row of a contract frame."""
    return [evaluate(row) for row in intakes.to_dict("records")]


def max_levels(decisions: list[GateDecision]) -> np.ndarray:
    """Highest allowed massage level per patient, for vectorised masking."""
    return np.array([d.max_massage_level for d in decisions], dtype=float)


def allowed_matrix(levels: np.ndarray, encoded_plans: np.ndarray) -> np.ndarray:
    """(patients, plans) mask: no massage, or massage no firmer than each patient's limit.

    ``levels`` from :func:`max_levels`; the same rule as :meth:`GateDecision.allowed_mask`."""
    plans = np.asarray(encoded_plans)
    return permits(plans[None, :, M_SESSIONS], plans[None, :, M_LEVEL], np.asarray(levels)[:, None])


def assert_allowed(intake: Mapping[str, object], plan: Plan) -> GateDecision:
    """Re-check a plan just before it is output or stored; raise if it is unsafe."""
    decision = evaluate(intake)
    reasons = decision.forbidding_reasons(plan)
    if reasons:
        raise GateViolation(
            f"plan '{plan.describe()}' is contraindicated: "
            + "; ".join(f"{r.rule_id}: {r.message}" for r in reasons)
        )
    return decision


def violations(intakes: pd.DataFrame, encoded_plans: np.ndarray) -> np.ndarray:
    """Per row, whether its plan breaks the gate (for audits and benchmarks)."""
    levels = max_levels(evaluate_frame(intakes))
    return ~permits(encoded_plans[:, M_SESSIONS], encoded_plans[:, M_LEVEL], levels)
