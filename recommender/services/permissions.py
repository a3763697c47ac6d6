"""Roles and what each may do, enforced in the service layer (not only in the UI)."""

from __future__ import annotations

from enum import Enum


class Role(str, Enum):
    THERAPIST = "therapist"
    DATA_STAFF = "data_staff"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Action(str, Enum):
    VIEW_PATIENTS = "view_patients"
    ENTER_INTAKE = "enter_intake"
    RECOMMEND = "recommend"
    TUNE = "tune"
    ACCEPT = "accept"
    RECORD_FOLLOWUP = "record_followup"
    RECORD_VISIT = "record_visit"
    EXPORT_VISITS = "export_visits"
    IMPORT = "import"
    TRAIN = "train"
    EVALUATE = "evaluate"
    REQUEST_PROMOTION = "request_promotion"
    ROLLBACK = "rollback"
    EXPORT_TRAINING = "export_training"
    VIEW_MODELS = "view_models"
    VIEW_AUDIT = "view_audit"
    EXPORT_AUDIT = "export_audit"
    PROMOTE = "promote"
    FORCE_PROMOTE = "force_promote"
    MANAGE_USERS = "manage_users"


A = Action
ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.THERAPIST: frozenset({A.VIEW_PATIENTS, A.ENTER_INTAKE, A.RECOMMEND, A.TUNE, A.ACCEPT,
                               A.RECORD_FOLLOWUP, A.RECORD_VISIT}),
    Role.DATA_STAFF: frozenset({A.IMPORT, A.TRAIN, A.EVALUATE, A.REQUEST_PROMOTION, A.ROLLBACK,
                                A.EXPORT_TRAINING, A.EXPORT_VISITS, A.VIEW_MODELS}),
    # supervisors read everything, audit, and promote (or force, with a reason)
    Role.SUPERVISOR: frozenset({A.VIEW_PATIENTS, A.VIEW_MODELS, A.VIEW_AUDIT, A.EXPORT_AUDIT,
                                A.PROMOTE, A.FORCE_PROMOTE, A.ROLLBACK, A.EVALUATE, A.EXPORT_VISITS}),
    # administrators manage accounts and nothing clinical
    Role.ADMIN: frozenset({A.MANAGE_USERS}),
}


class PermissionDenied(PermissionError):
    """An actor tried an action outside their role (the attempt is audited)."""


def allowed(role: str, action: Action) -> bool:
    try:
        return action in ROLE_ACTIONS[Role(role)]
    except ValueError:
        return False
