"""The service layer: every clinical and data action, with permissions and audit.

Every method takes the acting user first, checks the role (a denial is itself
audited), and makes its changes and its audit event in one transaction — the
record and its audit entry exist together or not at all.  The CLI and the
Streamlit app both call this layer; neither talks to the database directly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import gate
from .accounts import (
    MAX_FAILED_ATTEMPTS,
    SYSTEM,
    Actor,
    SignInFailed,
    hash_password,
    verify_password,
)
from .artifacts import load_model, read_card, save_model
from .audit import AuditTrail, VerifyResult, canonical_json
from .contract import INTAKE_COLUMNS, OUTCOME, PLAN_COLUMNS, Kind, columns_for
from .csv_io import EpisodeFile, format_cell, read_episodes, to_csv_bytes
from .db.database import Database
from .settings import model_dir as model_dir_default
from .db.schema import (
    DataImport,
    Decision,
    Episode,
    FollowUp,
    ModelVersion,
    Patient,
    Promotion,
    RecommendationRecord,
    User,
)
from .engine import Recommendation, TreatmentRecommender
from .permissions import Action, PermissionDenied, Role, allowed
from .plans import Plan
from .validation import RowError, parse_column

OVERRIDE_REASONS = {
    "patient_preference": "Patient preference",
    "tolerance": "Patient reports discomfort / low tolerance",
    "schedule": "Patient's schedule or transport",
    "clinical_judgement": "Clinical judgement (explain in the note)",
    "comorbidity": "Comorbidity not captured in the intake",
    "equipment": "Equipment or staff availability",
}
ALIAS = "current"


class InputRejected(ValueError):
    """Input that breaks the contract; ``errors`` name row, column, value and expectation."""

    def __init__(self, message: str, errors: list[RowError] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


@dataclasses.dataclass(frozen=True)
class PromotionVerdict:
    passed: bool
    violations: int
    candidate_value: float | None
    candidate_ci: tuple[float, float] | None
    current_value: float | None
    current_ci: tuple[float, float] | None
    message: str


def _sha(obj: object) -> str:
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def intake_record(row: dict) -> dict:
    """A typed intake row as JSON-safe contract values (the form they are stored in)."""
    out = {}
    for c in INTAKE_COLUMNS:
        if c in row:
            value = format_cell(row[c])
            out[c] = value if value != "" else None
    return out


class ClinicService:
    """Clinic operations for signed-in actors."""

    def __init__(self, db: Database, audit: AuditTrail | None = None,
                 model_dir: str | Path | None = None) -> None:
        self.db = db
        self.audit = audit or AuditTrail()
        self.model_dir = Path(model_dir) if model_dir else model_dir_default()
        self._model_cache: dict[int, TreatmentRecommender] = {}
        self._evaluation_cache: dict[int, tuple[dict | None, pd.DataFrame]] = {}

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """A write transaction; the audit chain head is published outside the database
        only after it commits."""
        with self.db.write() as session:
            yield session
        head = session.info.get("audit_head")
        if head is not None:
            self.audit.publish_head(*head)

    def _log(self, session, actor: Actor, action: str, target: str = "", before=None, after=None,
             reason: str = "") -> None:
        self.audit.append(session, actor.username, actor.role, action, target, before, after, reason)

    def require(self, actor: Actor, action: Action, target: str = "") -> None:
        """Raise PermissionDenied (and audit the attempt) unless the role allows ``action``."""
        if actor.role == SYSTEM.role or allowed(actor.role, action):
            return
        with self._tx() as s:
            self._log(s, actor, "denied", target, after={"action": action.value},
                      reason=f"role {actor.role} may not {action.value}")
        raise PermissionDenied(f"a {actor.role.replace('_', ' ')} may not {action.value.replace('_', ' ')}")

    # ------------------------------------------------------------------ accounts

    def sign_in(self, username: str, password: str) -> Actor:
        """The same failure for unknown users, wrong passwords and locked accounts."""
        with self._tx() as s:
            user = s.execute(select(User).where(User.username == username)).scalar_one_or_none()
            ok = verify_password(user.password_hash if user else None, password)
            if user and ok and user.active and not user.locked:
                user.failed_attempts = 0
                actor = Actor(user.username, user.role)
                self._log(s, actor, "login", f"user:{username}")
                return actor
            if user is None:
                self._log(s, Actor(username[:80], "unknown"), "failed_login", f"user:{username[:80]}",
                          reason="unknown user")
            else:
                why = "account locked" if user.locked else "account disabled" if not user.active \
                    else "wrong password"
                if not user.locked and user.active:
                    user.failed_attempts += 1
                self._log(s, Actor(user.username, user.role), "failed_login", f"user:{username}",
                          reason=why)
                if not user.locked and user.failed_attempts >= MAX_FAILED_ATTEMPTS:
                    user.locked = True
                    self._log(s, Actor(user.username, user.role), "lockout", f"user:{username}",
                              after={"locked": True},
                              reason=f"{MAX_FAILED_ATTEMPTS} failed sign-in attempts")
        raise SignInFailed()

    def sign_out(self, actor: Actor) -> None:
        with self._tx() as s:
            self._log(s, actor, "logout", f"user:{actor.username}")

    def add_user(self, actor: Actor, username: str, role: str, password: str) -> None:
        self.require(actor, Action.MANAGE_USERS, f"user:{username}")
        Role(role)  # raises ValueError for an unknown role
        if not username or len(username) > 80:
            raise ValueError("username must have 1 to 80 characters")
        with self._tx() as s:
            if s.execute(select(User).where(User.username == username)).scalar_one_or_none():
                raise ValueError(f"user {username!r} already exists")
            s.add(User(username=username, role=role, password_hash=hash_password(password)))
            self._log(s, actor, "user_change", f"user:{username}", None,
                      {"username": username, "role": role, "active": True}, "user added")

    def _change_user(self, actor: Actor, username: str, change: Callable[[User], dict], reason: str):
        self.require(actor, Action.MANAGE_USERS, f"user:{username}")
        with self._tx() as s:
            user = s.execute(select(User).where(User.username == username)).scalar_one_or_none()
            if user is None:
                raise ValueError(f"no user {username!r}")
            before = {"role": user.role, "active": user.active, "locked": user.locked}
            after = change(user)
            self._log(s, actor, "user_change", f"user:{username}", before, after, reason)

    def disable_user(self, actor: Actor, username: str) -> None:
        def change(u: User) -> dict:
            u.active = False
            return {"role": u.role, "active": False, "locked": u.locked}

        self._change_user(actor, username, change, "user disabled")

    def enable_user(self, actor: Actor, username: str) -> None:
        def change(u: User) -> dict:
            u.active, u.locked, u.failed_attempts = True, False, 0
            return {"role": u.role, "active": True, "locked": False}

        self._change_user(actor, username, change, "user enabled and unlocked")

    def reset_password(self, actor: Actor, username: str, password: str) -> None:
        new_hash = hash_password(password)

        def change(u: User) -> dict:
            u.password_hash, u.locked, u.failed_attempts = new_hash, False, 0
            return {"role": u.role, "active": u.active, "locked": False, "password": "reset"}

        self._change_user(actor, username, change, "password reset")

    def set_role(self, actor: Actor, username: str, role: str) -> None:
        Role(role)

        def change(u: User) -> dict:
            u.role = role
            return {"role": role, "active": u.active, "locked": u.locked}

        self._change_user(actor, username, change, "role changed")

    def list_users(self, actor: Actor) -> pd.DataFrame:
        self.require(actor, Action.MANAGE_USERS)
        with self.db.read() as s:
            rows = s.execute(select(User).order_by(User.username)).scalars().all()
            return pd.DataFrame([{"username": u.username, "role": u.role, "active": u.active,
                                  "locked": u.locked, "failed_attempts": u.failed_attempts}
                                 for u in rows])

    def has_users(self) -> bool:
        with self.db.read() as s:
            return bool(s.execute(select(func.count(User.id))).scalar())

    # ------------------------------------------------------------------ patients and intake

    def validate_intake(self, intake: dict) -> dict:
        """Check one intake against the contract; returns the typed row or raises InputRejected."""
        frame = pd.DataFrame([{c: intake.get(c) for c in INTAKE_COLUMNS if c in intake}])
        parsed = read_episodes(to_csv_bytes(frame), Kind.INTAKE)
        if not parsed.report.valid:
            raise InputRejected("the intake has invalid values", parsed.report.errors)
        return parsed.frame.iloc[0].to_dict()

    def save_intake(self, actor: Actor, intake: dict) -> str:
        """Store a new episode (and its patient); returns the episode id."""
        self.require(actor, Action.ENTER_INTAKE)
        typed = self.validate_intake(intake)
        record = intake_record(typed)
        with self._tx() as s:
            episode = self._add_episode(s, record, actor, source="form")
            self._log(s, actor, "intake", f"episode:{episode.episode_code}", None, record)
        return record["episode_id"]

    def _add_episode(self, s, record: dict, actor: Actor, source: str,
                     plan: dict | None = None) -> Episode:
        if s.execute(select(Episode.id).where(Episode.episode_code == record["episode_id"])).first():
            raise InputRejected(f"episode {record['episode_id']!r} already exists")
        patient = s.execute(select(Patient).where(Patient.patient_code == record["patient_id"])
                            ).scalar_one_or_none()
        if patient is None:
            patient = Patient(patient_code=record["patient_id"])
            s.add(patient)
            s.flush()
        episode = Episode(episode_code=record["episode_id"], patient_id=patient.id, intake=record,
                          intake_sha256=_sha(record), source=source, historical_plan=plan,
                          created_by=actor.username)
        s.add(episode)
        s.flush()
        return episode

    def intake(self, actor: Actor, episode_code: str) -> dict:
        self.require(actor, Action.VIEW_PATIENTS, f"episode:{episode_code}")
        with self.db.read() as s:
            return dict(self._episode(s, episode_code).intake)

    @staticmethod
    def _episode(s, episode_code: str) -> Episode:
        episode = s.execute(select(Episode).where(Episode.episode_code == episode_code)).scalar_one_or_none()
        if episode is None:
            raise ValueError(f"no episode {episode_code!r}")
        return episode

    def find_episodes(self, actor: Actor, text: str = "", limit: int = 50) -> pd.DataFrame:
        self.require(actor, Action.VIEW_PATIENTS)
        with self.db.read() as s:
            q = select(Episode.episode_code, Patient.patient_code, Episode.created_at).join(
                Patient, Patient.id == Episode.patient_id)
            if text:
                like = f"%{text}%"
                q = q.where(Episode.episode_code.ilike(like) | Patient.patient_code.ilike(like))
            rows = s.execute(q.order_by(Episode.id.desc()).limit(limit)).all()
        return pd.DataFrame(rows, columns=["episode_id", "patient_id", "created_at"])

    @staticmethod
    def typed_intake(record: dict) -> dict:
        """A stored intake record back as typed values (booleans, region sets, numbers)."""
        frame = pd.DataFrame([{k: ("" if v is None else v) for k, v in record.items()}])
        return read_episodes(to_csv_bytes(frame), Kind.INTAKE).frame.iloc[0].to_dict()

    # ------------------------------------------------------------------ models

    def current_version(self) -> ModelVersion | None:
        with self.db.read() as s:
            return self._current(s)

    def _current(self, s) -> ModelVersion | None:
        last = s.execute(select(Promotion).where(Promotion.alias == ALIAS)
                         .order_by(Promotion.id.desc()).limit(1)).scalar_one_or_none()
        return s.get(ModelVersion, last.to_version) if last else None

    def load_version(self, version: ModelVersion) -> TreatmentRecommender:
        """A registered model, verified against the hash the database holds."""
        if version.version not in self._model_cache:
            model, _ = load_model(version.artifact_path, expected_sha256=version.artifact_sha256)
            self._model_cache = {version.version: model}  # keep one model in memory
        return self._model_cache[version.version]

    def current_model(self) -> tuple[ModelVersion, TreatmentRecommender]:
        version = self.current_version()
        if version is None:
            raise ValueError("no model is promoted yet: train one and promote it")
        return version, self.load_version(version)

    # ------------------------------------------------------------------ recommend, tune, accept

    def recommend(self, actor: Actor, episode_code: str) -> tuple[int, Recommendation]:
        """Recommend for a stored episode and record the recommendation."""
        self.require(actor, Action.RECOMMEND, f"episode:{episode_code}")
        version, model = self.current_model()
        with self.db.read() as s:
            episode = self._episode(s, episode_code)
            record = dict(episode.intake)
        rec = model.recommend(self.typed_intake(record))
        output = recommendation_output(rec)
        with self._tx() as s:
            episode = self._episode(s, episode_code)
            row = RecommendationRecord(episode_id=episode.id, intake_sha256=_sha(record),
                                       model_version=version.version,
                                       ruleset_version=rec.ruleset_version, output=output,
                                       created_by=actor.username)
            s.add(row)
            s.flush()
            self._log(s, actor, "recommend", f"episode:{episode_code}", None,
                      {"recommendation_id": row.id, "plan": output["ranked"][0]["plan"],
                       "model_version": version.version, "ruleset_version": rec.ruleset_version,
                       "gate_rule_ids": list(rec.gate.rule_ids)})
            return row.id, rec

    def tune(self, actor: Actor, episode_code: str, plan: Plan, audit: bool = True):
        """Predicted outcome of a plan the therapist is adjusting (forbidden plans say why)."""
        self.require(actor, Action.TUNE, f"episode:{episode_code}")
        _, model = self.current_model()
        with self.db.read() as s:
            record = dict(self._episode(s, episode_code).intake)
        prediction = model.predict_plans(self.typed_intake(record), [plan])[0]
        if audit:
            with self._tx() as s:
                self._log(s, actor, "tune", f"episode:{episode_code}", None,
                          {"plan": plan.as_dict(), "predicted_reduction":
                           round(prediction.predicted_reduction, 2),
                           "blocked_by": list(prediction.blocked_by)})
        return prediction

    def accept(self, actor: Actor, recommendation_id: int, plan: Plan, reason_code: str | None = None,
               reason_text: str = "", idempotency_key: str | None = None) -> int:
        """Record the plan a therapist accepted; returns the decision id.

        Idempotent per key (default: one decision per recommendation), so a double click —
        even two concurrent requests — stores one decision.  The gate is checked again here:
        no role or path can store a contraindicated plan.
        """
        self.require(actor, Action.ACCEPT, f"recommendation:{recommendation_id}")
        key = idempotency_key or f"recommendation:{recommendation_id}"
        try:
            return self._accept(actor, recommendation_id, plan, reason_code, reason_text, key)
        except _AlreadyDecided:  # a concurrent request with the same key stored it first
            with self.db.read() as s:
                return s.execute(select(Decision.id).where(Decision.idempotency_key == key)).scalar_one()

    def _accept(self, actor: Actor, recommendation_id: int, plan: Plan, reason_code: str | None,
                reason_text: str, key: str) -> int:
        with self.db.read() as s:
            existing = s.execute(select(Decision).where(Decision.idempotency_key == key)).scalar_one_or_none()
            if existing is not None:
                return existing.id
        with self._tx() as s:
            rec = s.get(RecommendationRecord, recommendation_id)
            if rec is None:
                raise ValueError(f"no recommendation {recommendation_id}")
            episode = s.get(Episode, rec.episode_id)
            decision_gate = gate.assert_allowed(self.typed_intake(episode.intake), plan)
            recommended = rec.output["ranked"][0]["plan"]
            accepted = plan.as_dict()
            diff = {k: [recommended[k], accepted[k]] for k in PLAN_COLUMNS if recommended[k] != accepted[k]}
            if diff and reason_code not in OVERRIDE_REASONS:
                raise InputRejected(
                    "the accepted plan differs from the recommendation in "
                    + ", ".join(diff) + ": choose a reason code ("
                    + ", ".join(OVERRIDE_REASONS) + ")")
            if reason_code == "clinical_judgement" and diff and not reason_text.strip():
                raise InputRejected("explain the clinical judgement in the note")
            decision = Decision(episode_id=episode.id, recommendation_id=rec.id, accepted_plan=accepted,
                                differences=diff, reason_code=reason_code if diff else None,
                                reason_text=reason_text.strip(),
                                ruleset_version=decision_gate.ruleset_version,
                                idempotency_key=key, decided_by=actor.username)
            s.add(decision)
            try:
                s.flush()
            except IntegrityError:  # a concurrent double click won the race
                raise _AlreadyDecided(key) from None
            self._log(s, actor, "override" if diff else "accept", f"episode:{episode.episode_code}",
                      {"plan": recommended}, {"plan": accepted, "decision_id": decision.id,
                                              "differences": diff},
                      reason=(OVERRIDE_REASONS.get(reason_code or "", "") + (
                          f": {reason_text.strip()}" if reason_text.strip() else "")) if diff else "")
            return decision.id

    # ------------------------------------------------------------------ follow-up

    def record_followup(self, actor: Actor, episode_code: str, outcome: dict,
                        lost_to_followup: bool = False) -> None:
        self.require(actor, Action.RECORD_FOLLOWUP, f"episode:{episode_code}")
        columns = {c.name: c for c in OUTCOME}
        unknown = set(outcome) - set(columns)
        if unknown:
            raise InputRejected("unknown outcome field(s): " + ", ".join(sorted(unknown)))
        if not lost_to_followup and outcome.get("followup_pain_score") is None:
            raise InputRejected("a follow-up pain score is required unless the patient was lost")
        errors = []
        for name, value in outcome.items():
            raw = pd.Series(["" if value is None else str(format_cell(value))])
            _, errs = parse_column(raw, columns[name])
            errors += [dataclasses.replace(e, row=1) for e in errs]
        if errors:
            raise InputRejected("invalid follow-up values", errors)
        clean = {k: format_cell(v) if v is not None else None for k, v in outcome.items()}
        if lost_to_followup:
            clean["followup_pain_score"] = None
        with self._tx() as s:
            episode = self._episode(s, episode_code)
            existing = s.execute(select(FollowUp).where(FollowUp.episode_id == episode.id)).scalar_one_or_none()
            before = None if existing is None else {"outcome": existing.outcome,
                                                    "lost": existing.lost_to_followup}
            if existing is None:
                s.add(FollowUp(episode_id=episode.id, lost_to_followup=lost_to_followup, outcome=clean,
                               recorded_by=actor.username))
            else:
                existing.outcome, existing.lost_to_followup = clean, lost_to_followup
            self._log(s, actor, "followup", f"episode:{episode_code}", before,
                      {"outcome": clean, "lost": lost_to_followup})

    # ------------------------------------------------------------------ import and export

    def import_file(self, actor: Actor, data: bytes, file_name: str,
                    kind: str = "training") -> tuple[int, EpisodeFile]:
        """Import a contract file, all rows or none; returns (import id, parsed file)."""
        self.require(actor, Action.IMPORT, f"file:{file_name}")
        digest = hashlib.sha256(data).hexdigest()
        parsed = read_episodes(data, kind)
        if not parsed.report.valid:
            self._record_rejected_import(actor, file_name, digest, kind, parsed)
            raise InputRejected(f"{file_name}: {len(parsed.report.bad_rows)} invalid row(s); "
                                "nothing was imported", parsed.report.errors)
        frame = parsed.frame
        with self._tx() as s:
            codes = set(frame["episode_id"])
            clash = set(s.execute(select(Episode.episode_code).where(Episode.episode_code.in_(codes))
                                  ).scalars())
            if clash:
                errors = [RowError(int(r["_row"]), "episode_id", r["episode_id"],
                                   "an episode_id not already in the database")
                          for r in frame.to_dict("records") if r["episode_id"] in clash]
                raise InputRejected(f"{file_name}: {len(errors)} episode(s) already imported; "
                                    "nothing was imported", errors)
            imp = DataImport(file_name=file_name[:255], file_sha256=digest, kind=kind,
                             rows_accepted=len(frame), rows_rejected=0, imported_by=actor.username)
            s.add(imp)
            s.flush()
            self._bulk_insert(s, frame, kind, imp.id, actor)
            self._log(s, actor, "import", f"file:{file_name}", None,
                      {"import_id": imp.id, "sha256": digest, "rows": len(frame), "kind": kind})
            return imp.id, parsed

    def _record_rejected_import(self, actor: Actor, file_name: str, digest: str, kind: str,
                                parsed: EpisodeFile) -> None:
        """A refused file is still recorded (no episode rows): who tried what, and why not."""
        bad = len(parsed.report.bad_rows)
        with self._tx() as s:
            imp = DataImport(file_name=file_name[:255], file_sha256=digest, kind=kind, rows_accepted=0,
                             rows_rejected=bad, imported_by=actor.username)
            s.add(imp)
            s.flush()
            self._log(s, actor, "import", f"file:{file_name}", None,
                      {"import_id": imp.id, "sha256": digest, "rows": parsed.report.n_rows,
                       "rejected_rows": bad, "kind": kind},
                      reason=f"refused: {len(parsed.report.errors)} invalid value(s) in {bad} row(s)")

    def _bulk_insert(self, s, frame: pd.DataFrame, kind: str, import_id: int, actor: Actor) -> None:
        patients = {p.patient_code: p.id for p in s.execute(
            select(Patient).where(Patient.patient_code.in_(set(frame["patient_id"])))).scalars()}
        new = sorted(set(frame["patient_id"]) - set(patients))
        if new:
            s.execute(Patient.__table__.insert(), [{"patient_code": p, "created_at": _now()} for p in new])
            patients.update({p.patient_code: p.id for p in s.execute(
                select(Patient).where(Patient.patient_code.in_(new))).scalars()})
        records = frame.to_dict("records")
        episodes = []
        for r in records:
            intake = intake_record(r)
            plan = {c: format_cell(r[c]) for c in PLAN_COLUMNS} if kind == "training" else None
            episodes.append({"episode_code": r["episode_id"], "patient_id": patients[r["patient_id"]],
                             "intake": intake, "intake_sha256": _sha(intake),
                             "source": f"import:{import_id}", "historical_plan": plan,
                             "created_by": actor.username, "created_at": _now()})
        s.execute(Episode.__table__.insert(), episodes)
        if kind != "training":
            return
        ids = dict(s.execute(select(Episode.episode_code, Episode.id).where(
            Episode.episode_code.in_(set(frame["episode_id"])))).all())
        outcome_cols = [c.name for c in OUTCOME if c.name in frame]
        s.execute(FollowUp.__table__.insert(), [
            {"episode_id": ids[r["episode_id"]],
             "lost_to_followup": bool(pd.isna(r["followup_pain_score"])),
             "outcome": {c: (None if format_cell(r[c]) == "" else format_cell(r[c])) for c in outcome_cols},
             "recorded_by": actor.username, "recorded_at": _now()}
            for r in records])

    def training_frame(self) -> pd.DataFrame:
        """Contract training rows from recorded episodes: imported history plus decisions
        with a recorded follow-up (or loss to follow-up).  Pending episodes are left out."""
        with self.db.read() as s:
            rows = s.execute(
                select(Episode, FollowUp).join(FollowUp, FollowUp.episode_id == Episode.id)
                .order_by(Episode.id)).all()
            decisions = {d.episode_id: d.accepted_plan for d in s.execute(
                select(Decision).order_by(Decision.id)).scalars()}
        out = []
        for episode, followup in rows:
            plan = decisions.get(episode.id) or episode.historical_plan
            if plan is None:
                continue
            row = {**episode.intake, **plan, **followup.outcome}
            if followup.lost_to_followup:
                row["followup_pain_score"] = None
            out.append(row)
        names = [c.name for c in columns_for(Kind.TRAINING)]
        frame = pd.DataFrame(out)
        return frame[[c for c in names if c in frame]] if len(frame) else pd.DataFrame(columns=names)

    def export_training(self, actor: Actor, path: str | Path) -> int:
        self.require(actor, Action.EXPORT_TRAINING, f"file:{Path(path).name}")
        frame = self.training_frame()
        data = to_csv_bytes(frame)
        # re-read through the contract reader: we only hand out files we would accept
        if len(frame):
            check = read_episodes(data, Kind.TRAINING)
            if not check.report.valid:
                raise InputRejected("recorded data does not form a valid training file",
                                    check.report.errors)
        from .atomic import atomic_write_bytes

        with self._tx() as s:
            atomic_write_bytes(path, data)
            self._log(s, actor, "export", f"file:{Path(path).name}", None,
                      {"rows": len(frame), "sha256": hashlib.sha256(data).hexdigest()})
        return len(frame)

    # ------------------------------------------------------------------ training and registry

    def train(self, actor: Actor, seed: int = 0, progress=None, holdout: float = 0.2) -> int:
        """Train on the recorded history, hold out a cohort for the promotion gate, register."""
        self.require(actor, Action.TRAIN)
        frame = self.training_frame()
        if len(frame) == 0:
            raise ValueError("no recorded episodes with outcomes to train on")
        data = to_csv_bytes(frame)
        parsed = read_episodes(data, Kind.TRAINING)
        rows = parsed.valid_rows()
        rng = np.random.default_rng(seed)
        patients = rows["patient_id"].unique()
        held = set(rng.choice(patients, size=int(len(patients) * holdout), replace=False))
        is_held = rows["patient_id"].isin(held).to_numpy()
        model = TreatmentRecommender(random_state=seed).fit(rows[~is_held], progress=progress)
        from .training import model_card

        held_rows = rows[is_held].reset_index(drop=True)
        verdict = self._evaluate_on(model, held_rows)
        card = model_card(model, parsed, "database export", hashlib.sha256(data).hexdigest(), seed)
        card["holdout"] = {"episodes": list(held_rows["episode_id"]), "share": holdout, **verdict}
        with self._tx() as s:
            version = (s.execute(select(func.max(ModelVersion.version))).scalar() or 0) + 1
            path = self.model_dir / f"model-v{version}.joblib"
            card = save_model(model, path, {**card, "version": version})
            s.add(ModelVersion(version=version, artifact_path=str(path.resolve()),
                               artifact_sha256=card["artifact_sha256"], card=card,
                               policy_value=verdict["value"], policy_value_low=verdict["ci_low"],
                               policy_value_high=verdict["ci_high"], created_by=actor.username))
            self._log(s, actor, "train", f"model:v{version}", None,
                      {"version": version, "sha256": card["artifact_sha256"],
                       "rows": len(rows), "holdout_rows": len(held_rows), **verdict})
        return version

    @staticmethod
    def _evaluate_on(model: TreatmentRecommender, rows: pd.DataFrame) -> dict:
        from .evaluation import DoublyRobust

        if len(rows) == 0 or rows["followup_pain_score"].notna().sum() < 10:
            return {"value": None, "ci_low": None, "ci_high": None, "violations": 0, "rows": len(rows)}
        recs = model.recommend_frame(rows)
        plans = np.array([r.best.plan.encode() for r in recs])
        value = DoublyRobust(model, rows).value(plans)
        return {"value": value["estimate"], "ci_low": value["ci_low"], "ci_high": value["ci_high"],
                "violations": int(gate.violations(rows, plans).sum()), "rows": len(rows)}

    def _holdout_rows(self, candidate: ModelVersion) -> pd.DataFrame:
        held_codes = set(candidate.card.get("holdout", {}).get("episodes", []))
        frame = self.training_frame()
        if not held_codes or not len(frame):
            return frame.iloc[0:0]
        rows = read_episodes(to_csv_bytes(frame), Kind.TRAINING).valid_rows()
        return rows[rows["episode_id"].isin(held_codes)].reset_index(drop=True)

    def evaluate_version(self, actor: Actor, version: int) -> tuple[dict | None, pd.DataFrame]:
        """Evaluation report on the version's held-out cohort, and per-episode predictions."""
        self.require(actor, Action.EVALUATE, f"model:v{version}")
        if version not in self._evaluation_cache:  # a version and its held-out cohort never change
            self._evaluation_cache[version] = self._evaluate_version(version)
        return self._evaluation_cache[version]

    def _evaluate_version(self, version: int) -> tuple[dict | None, pd.DataFrame]:
        from .evaluation import evaluate
        from .plans import encode_frame

        with self.db.read() as s:
            candidate = s.get(ModelVersion, version)
            if candidate is None:
                raise ValueError(f"no model version {version}")
        rows = self._holdout_rows(candidate)
        if len(rows) == 0 or rows["followup_pain_score"].notna().sum() < 10:
            return None, pd.DataFrame()
        model = self.load_version(candidate)
        report = evaluate(model, rows)
        preds = model.predict_paired(rows, encode_frame(rows))
        observed = (rows["pain_score"] - rows["followup_pain_score"]).to_numpy(float)
        frame = pd.DataFrame({"predicted": preds["mean"], "observed": observed,
                              "covered": (observed >= preds["low"]) & (observed <= preds["high"])})
        return report, frame[rows["followup_pain_score"].notna().to_numpy()]

    def compare_with_current(self, actor: Actor, version: int) -> PromotionVerdict:
        """What the promotion gate would say now, without promoting."""
        self.require(actor, Action.EVALUATE, f"model:v{version}")
        return self.promotion_verdict(version)

    def promotion_verdict(self, version: int) -> PromotionVerdict:
        """The promotion gate: no gate violation on the held-out cohort, and a policy value not
        below the current model's confidence interval on that same cohort."""
        with self.db.read() as s:
            candidate = s.get(ModelVersion, version)
            if candidate is None:
                raise ValueError(f"no model version {version}")
            current = self._current(s)
        rows = self._holdout_rows(candidate)
        cand = self._evaluate_on(self.load_version(candidate), rows)
        if current is None or current.version == version:
            passed = cand["violations"] == 0
            return PromotionVerdict(passed, cand["violations"], cand["value"],
                                    (cand["ci_low"], cand["ci_high"]) if cand["value"] is not None else None,
                                    None, None,
                                    "no gate violations on the held-out cohort" if passed
                                    else f"{cand['violations']} gate violation(s) on the held-out cohort")
        cur = self._evaluate_on(self.load_version(current), rows)
        problems = []
        if cand["violations"]:
            problems.append(f"{cand['violations']} gate violation(s) on the held-out cohort")
        if cand["value"] is not None and cur["value"] is not None and cand["value"] < cur["ci_low"]:
            problems.append(f"estimated policy value {cand['value']:.2f} is below the current model's "
                            f"confidence interval ({cur['ci_low']:.2f}–{cur['ci_high']:.2f})")
        message = "; ".join(problems) or (
            f"passes: no gate violations; value {cand['value']:.2f} vs current {cur['value']:.2f}"
            if cand["value"] is not None and cur["value"] is not None else "passes: no gate violations")
        return PromotionVerdict(not problems, cand["violations"], cand["value"],
                                (cand["ci_low"], cand["ci_high"]) if cand["value"] is not None else None,
                                cur["value"], (cur["ci_low"], cur["ci_high"]) if cur["value"] is not None else None,
                                message)

    def promote(self, actor: Actor, version: int, force: bool = False, reason: str = "") -> PromotionVerdict:
        """Make ``version`` current if it passes the gate; a supervisor may force it with a reason."""
        if force:
            action = Action.FORCE_PROMOTE
        elif actor.role == Role.DATA_STAFF.value:
            action = Action.REQUEST_PROMOTION  # data staff ask; the gate decides
        else:
            action = Action.PROMOTE
        self.require(actor, action, f"model:v{version}")
        if force and not reason.strip():
            raise InputRejected("forcing a promotion needs a reason")
        current = self.current_version()
        if current is not None and current.version == version:
            raise ValueError(f"model version {version} is already current")
        verdict = self.promotion_verdict(version)
        with self._tx() as s:
            current = self._current(s)
            if not verdict.passed and not force:
                self._log(s, actor, "promote", f"model:v{version}",
                          {"current": current.version if current else None},
                          {"promoted": False, "verdict": dataclasses.asdict(verdict)},
                          reason="refused by the promotion gate")
                return verdict
            s.add(Promotion(alias=ALIAS, from_version=current.version if current else None,
                            to_version=version, kind="force" if force else "promote",
                            verdict=json.loads(canonical_json(dataclasses.asdict(verdict))),
                            reason=reason.strip(), by=actor.username))
            self._log(s, actor, "promote", f"model:v{version}",
                      {"current": current.version if current else None},
                      {"current": version, "forced": force, "verdict": dataclasses.asdict(verdict)},
                      reason=reason.strip())
        return verdict

    def rollback(self, actor: Actor, reason: str = "") -> int:
        """Point ``current`` back at the version it replaced."""
        self.require(actor, Action.ROLLBACK)
        with self._tx() as s:
            last = s.execute(select(Promotion).where(Promotion.alias == ALIAS)
                             .order_by(Promotion.id.desc()).limit(1)).scalar_one_or_none()
            if last is None or last.from_version is None:
                raise ValueError("nothing to roll back to")
            s.add(Promotion(alias=ALIAS, from_version=last.to_version, to_version=last.from_version,
                            kind="rollback", verdict={}, reason=reason.strip(), by=actor.username))
            self._log(s, actor, "rollback", f"model:v{last.from_version}", {"current": last.to_version},
                      {"current": last.from_version}, reason=reason.strip())
            return last.from_version

    def register_artifact(self, actor: Actor, path: str | Path) -> int:
        """Register an artifact trained elsewhere (e.g. `recommender train`)."""
        self.require(actor, Action.TRAIN)
        card = read_card(path)
        load_model(path)  # verifies the hash before anything is recorded
        with self._tx() as s:
            version = (s.execute(select(func.max(ModelVersion.version))).scalar() or 0) + 1
            s.add(ModelVersion(version=version, artifact_path=str(Path(path).resolve()),
                               artifact_sha256=card["artifact_sha256"], card=card,
                               created_by=actor.username))
            self._log(s, actor, "train", f"model:v{version}", None,
                      {"version": version, "sha256": card["artifact_sha256"], "registered": str(path)})
        return version

    def model_versions(self, actor: Actor) -> pd.DataFrame:
        self.require(actor, Action.VIEW_MODELS)
        with self.db.read() as s:
            current = self._current(s)
            rows = s.execute(select(ModelVersion).order_by(ModelVersion.version)).scalars().all()
        return pd.DataFrame([{
            "version": v.version, "current": bool(current and current.version == v.version),
            "created_at": v.created_at, "created_by": v.created_by,
            "rows": v.card.get("training", {}).get("valid_rows"),
            "policy_value": v.policy_value, "ci_low": v.policy_value_low, "ci_high": v.policy_value_high,
            "sha256": v.artifact_sha256[:12],
        } for v in rows])

    def model_card(self, actor: Actor, version: int) -> dict:
        self.require(actor, Action.VIEW_MODELS, f"model:v{version}")
        with self.db.read() as s:
            v = s.get(ModelVersion, version)
            if v is None:
                raise ValueError(f"no model version {version}")
            card = dict(v.card)
        card.get("holdout", {}).pop("episodes", None)
        return card

    # ------------------------------------------------------------------ audit

    def verify_audit(self, actor: Actor) -> VerifyResult:
        self.require(actor, Action.VIEW_AUDIT)
        with self.db.read() as s:
            return self.audit.verify(s)

    def audit_events(self, actor: Actor) -> pd.DataFrame:
        self.require(actor, Action.VIEW_AUDIT)
        with self.db.read() as s:
            return self.audit.events_frame(s)

    def export_audit(self, actor: Actor, path: str | Path) -> int:
        self.require(actor, Action.EXPORT_AUDIT, f"file:{Path(path).name}")
        with self.db.read() as s:
            n = self.audit.export_csv(s, path)
        with self._tx() as s:
            self._log(s, actor, "export", f"file:{Path(path).name}", None, {"audit_events": n})
        return n

    def decisions_frame(self, actor: Actor) -> pd.DataFrame:
        """Decisions with their recommendation, for supervisors' statistics."""
        self.require(actor, Action.VIEW_AUDIT)
        with self.db.read() as s:
            rows = s.execute(select(Decision, RecommendationRecord, Episode)
                             .join(RecommendationRecord, RecommendationRecord.id == Decision.recommendation_id)
                             .join(Episode, Episode.id == Decision.episode_id)).all()
            followed = set(s.execute(select(FollowUp.episode_id)).scalars())
        return pd.DataFrame([{
            "decision_id": d.id, "episode_id": e.episode_code, "therapist": d.decided_by,
            "decided_at": d.decided_at, "overridden": bool(d.differences),
            "reason_code": d.reason_code, "reason_text": d.reason_text,
            "differences": json.dumps(d.differences), "model_version": r.model_version,
            "massage_blocked": any(g["effect"] == "no_massage" for g in r.output.get("gate", [])),
            "followed_up": e.id in followed,
        } for d, r, e in rows])


class _AlreadyDecided(RuntimeError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _now():
    from .db.schema import utcnow

    return utcnow()


def recommendation_output(rec: Recommendation) -> dict:
    """What is stored of a recommendation: ranked plans, gate reasons, explanation."""
    return {
        "ranked": [{
            "plan": p.plan.as_dict(),
            "predicted_reduction": round(p.predicted_reduction, 3),
            "interval": [round(p.interval_low, 3), round(p.interval_high, 3)],
            "prob_improvement": round(p.prob_improvement, 4),
            "evidence_level": p.evidence_level, "support": p.support,
        } for p in rec.ranked()],
        "gate": [r.as_dict() for r in rec.gate.reasons],
        "explanation": rec.explanation,
        "fallback": rec.fallback,
        "ruleset_version": rec.ruleset_version,
    }


def open_service(url: str | None = None, check: bool = True) -> ClinicService:
    """The service on the configured database (refusing an out-of-date schema)."""
    db = Database(url)
    if check:
        db.check_schema()
    return ClinicService(db, AuditTrail())


