"""The service layer: every clinical and data action, with permissions and audit.

Every method takes the acting user first, checks the role (a denial is itself
audited), and makes its changes and its audit event in one transaction — the
record and its audit entry exist together or not at all.  The CLI and the
Streamlit app both call this layer; neither talks to the database directly.

The methods live by responsibility in :mod:`recommender.services`; this class
puts them behind one object.
"""

from __future__ import annotations

from .audit import AuditTrail
from .db.database import Database
from .services.accounts import AccountsMixin
from .services.base import OVERRIDE_REASONS, InputRejected, PromotionVerdict
from .services.clinical import ClinicalMixin, recommendation_output
from .services.data import DataMixin
from .services.oversight import OversightMixin
from .services.registry import RegistryMixin

__all__ = ["ClinicService", "InputRejected", "OVERRIDE_REASONS", "PromotionVerdict", "open_service",
           "recommendation_output"]


class ClinicService(AccountsMixin, ClinicalMixin, DataMixin, RegistryMixin, OversightMixin):
    """Clinic operations for signed-in actors."""


def open_service(url: str | None = None, check: bool = True) -> ClinicService:
    """The service on the configured database (refusing an out-of-date schema)."""
    db = Database(url)
    if check:
        db.check_schema()
    return ClinicService(db, AuditTrail())


