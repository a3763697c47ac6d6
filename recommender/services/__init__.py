"""The service layer: every clinical and data action, with permissions and audit.

The names below load on first use (PEP 562), so importing a light module such as
``recommender.services.permissions`` does not pull in the database and the model.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ClinicService": "recommender.services.facade",
    "open_service": "recommender.services.facade",
    "upgrade_installation": "recommender.services.facade",
    "InputRejected": "recommender.services.base",
    "OVERRIDE_REASONS": "recommender.services.base",
    "PLAN_CHANGE_REASONS": "recommender.services.base",
    "PromotionVerdict": "recommender.services.base",
    "recommendation_output": "recommender.services.clinical",
    "AuditUnavailable": "recommender.storage.audit",  # the trail refuses writes (fail closed)
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'recommender.services' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
