"""The discomfort rule: treatment should not have to hurt to work.

A versioned rule beside the contraindication gate.  When the patient reported
discomfort of 7/10 or more at two of the last three sessions that included
massage, massage intensity is capped one step below the gentlest intensity
given at those high-discomfort sessions (a cap of ``none`` means no massage).
Everything that offers or stores a plan for the episode applies the cap: a
review never recommends above it, tuning marks plans above it as blocked, and
accepting one is refused.  The cap lifts by itself once three later massage
sessions no longer meet the condition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from recommender.contract.columns import INTENSITIES
from recommender.safety.plans import INTENSITY_LEVEL, Plan

TOLERANCE_RULESET_VERSION = "2026.11.1"
RULE_ID = "TOL-DISCOMFORT"
HIGH_DISCOMFORT = 7  # 0–10: "high" from here up
WINDOW = 3  # the last three sessions with massage …
REQUIRED = 2  # … of which at least two with high discomfort
EVIDENCE = ("Treatment is adjusted when the patient reports discomfort: it should not have to "
            "hurt to work (clinic clinical basis).")


@dataclass(frozen=True)
class MassageSession:
    """What the rule needs of one visit: the intensity given and the discomfort reported."""

    intensity: str  # "none" when no massage was given
    discomfort: int | None


@dataclass(frozen=True)
class DiscomfortCap:
    """The rule fired: the highest massage intensity level a plan may have now, and why."""

    max_level: int  # 0 none, 1 gentle, 2 moderate, 3 firm
    high_sessions: int  # of the last WINDOW massage sessions, how many hurt
    given: str  # gentlest intensity given at those sessions
    rule_id: str = RULE_ID
    ruleset_version: str = TOLERANCE_RULESET_VERSION

    @property
    def max_intensity(self) -> str:
        return INTENSITIES[self.max_level]

    @property
    def message(self) -> str:
        limit = ("no massage" if self.max_level == 0
                 else f"massage no firmer than {self.max_intensity}")
        return (f"Discomfort was {HIGH_DISCOMFORT}/10 or more at {self.high_sessions} of the last "
                f"{WINDOW} sessions with massage (at {self.given} intensity): {limit} for now.")

    def permits(self, plan: Plan) -> bool:
        return not plan.has_massage or INTENSITY_LEVEL[plan.massage_intensity] <= self.max_level

    def as_dict(self) -> dict[str, object]:
        return {"rule_id": self.rule_id, "ruleset_version": self.ruleset_version,
                "max_intensity": self.max_intensity, "high_sessions": self.high_sessions,
                "given": self.given, "message": self.message, "evidence": EVIDENCE}


def capped_intensity(plan: Plan, cap: DiscomfortCap | None) -> str:
    """The plan's massage intensity, lowered to the cap when the cap is gentler ("none" when
    it allows no massage): what a handout or an export may schedule now."""
    if cap is None or cap.permits(plan):
        return plan.massage_intensity
    return cap.max_intensity


def discomfort_cap(sessions: Sequence[MassageSession]) -> DiscomfortCap | None:
    """The cap that the visits so far (oldest first) call for, or None."""
    massage = [v for v in sessions if v.intensity != "none"][-WINDOW:]
    high = [v for v in massage if v.discomfort is not None and v.discomfort >= HIGH_DISCOMFORT]
    if len(high) < REQUIRED:
        return None
    gentlest = min(INTENSITY_LEVEL[v.intensity] for v in high)
    return DiscomfortCap(max_level=gentlest - 1, high_sessions=len(high),
                         given=INTENSITIES[gentlest])


def lower_tolerance(tolerance: str, tolerances: Sequence[str]) -> str:
    """One step lower on the contract's tolerance scale (the lowest stays)."""
    return tolerances[max(0, list(tolerances).index(tolerance) - 1)]
