"""The service layer: every clinical and data action, with permissions and audit."""

from recommender.services.base import OVERRIDE_REASONS, InputRejected, PromotionVerdict
from recommender.services.clinical import recommendation_output
from recommender.services.facade import (
           ClinicService,
           open_service,
           upgrade_installation,
)

__all__ = ["ClinicService", "InputRejected", "OVERRIDE_REASONS", "PromotionVerdict", "open_service",
           "recommendation_output", "upgrade_installation"]
