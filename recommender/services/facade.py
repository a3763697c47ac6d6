"""``ClinicService``: one object that wires the services together for the app and the CLI.

Every action takes the acting user first, checks the role (a denial is itself
audited), and makes its changes and its audit event in one transaction.  The
services below do the work; each gets what it depends on in its constructor,
so the wiring is here and nowhere else.  The Streamlit pages reach data only
through this façade (tests/test_architecture.py checks it); so does the CLI,
except ``db upgrade``, which creates the schema the services need.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from recommender.model.artifacts import CardSigner
from recommender.services.accounts import AccountService
from recommender.services.base import AccessControl, AuditedStore
from recommender.services.care import CareService
from recommender.services.clinical import ClinicalService
from recommender.services.data import DataService
from recommender.services.jobs import JobService
from recommender.services.oversight import OversightService
from recommender.services.registry import RegistryService
from recommender.services.sessions import SessionRegistry
from recommender.settings import get_settings
from recommender.storage.audit import AuditTrail
from recommender.storage.database import Database
from recommender.storage.schema import AuditEvent


class ClinicService:
    """Clinic operations for signed-in actors, by responsibility:

    ``accounts`` (sign-in, users), ``data`` (import, export), ``registry`` (train,
    evaluate, promote), ``clinical`` (intake, recommend, review, accept, follow-up),
    ``care`` (visits, progress, the day list), ``oversight`` (audit, statistics) and
    ``jobs`` (heavy work queued for the worker).  The most used methods are also offered
    here directly.
    """

    def __init__(self, db: Database, audit: AuditTrail | None = None,
                 model_dir: str | Path | None = None) -> None:
        self.db = db
        self.audit = audit or AuditTrail()
        store = AuditedStore(db, self.audit)
        self.access = access = AccessControl(store, SessionRegistry(store))
        self.accounts = AccountService(store, access)
        self.data = DataService(store, access)
        self.registry = RegistryService(store, access, history=self.data,
                                        model_dir=Path(model_dir) if model_dir else get_settings().model_dir)
        self.clinical = ClinicalService(store, access, models=self.registry)
        self.care = CareService(store, access, clinical=self.clinical)
        self.oversight = OversightService(store, access)
        self.jobs = JobService(store, access)

        a, d, r, c, o = self.accounts, self.data, self.registry, self.clinical, self.oversight
        # accounts
        self.sign_in, self.sign_out, self.has_users = a.sign_in, a.sign_out, a.has_users
        self.authenticate, self.resume = a.authenticate, a.resume
        self.add_user, self.disable_user, self.enable_user = a.add_user, a.disable_user, a.enable_user
        self.reset_password, self.set_role, self.list_users = a.reset_password, a.set_role, a.list_users
        self.published_password_accounts = a.published_password_accounts
        self.has_published_password = a.has_published_password
        self.recover_admin = a.recover_admin
        # data
        self.import_file, self.training_frame, self.export_training = (
            d.import_file, d.training_frame, d.export_training)
        self.already_imported = d.already_imported
        # registry
        self.current_version, self.current_model, self.train = r.current_version, r.current_model, r.train
        self.evaluate_version, self.compare_with_current = r.evaluate_version, r.compare_with_current
        self.stored_evaluation = r.stored_evaluation
        self.promotion_verdict, self.promote, self.rollback = r.promotion_verdict, r.promote, r.rollback
        self.register_artifact, self.model_versions, self.model_card = (
            r.register_artifact, r.model_versions, r.model_card)
        self.collect_garbage = r.collect_garbage
        # clinical
        self.validate_intake, self.save_intake, self.intake = c.validate_intake, c.save_intake, c.intake
        self.find_episodes, self.typed_intake, self.recommend = c.find_episodes, c.typed_intake, c.recommend
        self.tune, self.accept, self.record_followup = c.tune, c.accept, c.record_followup
        self.current_decision, self.review, self.discomfort_cap = c.current_decision, c.review, c.discomfort_cap
        self.state_digest = c.state_digest
        # course of care
        v = self.care
        self.record_visit, self.correct_visit, self.progress = v.record_visit, v.correct_visit, v.progress
        self.day_list, self.export_visits = v.day_list, v.export_visits
        # oversight
        self.verify_audit, self.audit_events, self.export_audit = (
            o.verify_audit, o.audit_events, o.export_audit)
        self.decisions_frame = o.decisions_frame
        # jobs
        self.submit_job, self.job, self.latest_job = self.jobs.submit, self.jobs.job, self.jobs.latest


def open_service(url: str | None = None, check: bool = True) -> ClinicService:
    """The service on the configured database (refusing an out-of-date schema)."""
    db = Database(url)
    if check:
        db.check_schema()
    return ClinicService(db, AuditTrail())


def upgrade_installation(url: str | None = None) -> tuple[str, list[str]]:
    """Create or migrate the schema; on a database with no audit events yet, also create the
    audit key and the model signing key if they do not exist.  Returns the revision and what
    was created.  Nothing else ever creates an audit key: a missing one is an error."""
    db = Database(url)
    try:
        revision = db.upgrade()
        with db.read() as s:
            empty = s.execute(select(AuditEvent.seq).limit(1)).first() is None
        made = []
        if empty:
            audit = AuditTrail()
            if audit.create_key():
                made.append(f"created the audit key {audit.key_path}")
            signer = CardSigner()
            if signer.create_key():
                made.append(f"created the model signing key {signer.key_path}")
        return revision, made
    finally:
        db.dispose()
