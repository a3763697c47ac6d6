"""Model registry: train and register versions, the promotion gate, promote and roll back."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import func, select

from recommender.contract.columns import Kind
from recommender.contract.csv_io import read_episodes, to_csv_bytes
from recommender.model.artifacts import (
    ArtifactError,
    load_model,
    read_card,
    save_model,
    sha256_file,
)
from recommender.model.engine import TreatmentRecommender
from recommender.model.evaluation import DoublyRobust, evaluate
from recommender.model.training import model_card
from recommender.safety import gate
from recommender.safety.plans import encode_frame
from recommender.services.base import (
    ALIAS,
    AccessControl,
    AuditedStore,
    InputRejected,
    PromotionVerdict,
)
from recommender.services.data import DataService
from recommender.services.identity import Actor
from recommender.services.permissions import Action, Role
from recommender.storage.audit import canonical_json
from recommender.storage.schema import ModelVersion, Promotion

# A held-out cohort with fewer followed-up episodes than this is not evaluated.
MIN_HELDOUT_OUTCOMES = 10


class RegistryService:
    """Model registry: train and register versions, the promotion gate, promote and roll back."""

    def __init__(self, store: AuditedStore, access: AccessControl, history: DataService, model_dir: Path) -> None:
        self.store = store
        self.access = access
        self.history = history
        self.model_dir = Path(model_dir)
        self._model_cache: dict[int, TreatmentRecommender] = {}
        self._evaluation_cache: dict[int, tuple[dict | None, pd.DataFrame]] = {}

    def current_version(self) -> ModelVersion | None:
        with self.store.read() as s:
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

    def train(self, actor: Actor, seed: int = 0, progress=None, holdout: float = 0.2) -> int:
        """Train on the recorded history, hold out a cohort for the promotion gate, register."""
        self.access.require(actor, Action.TRAIN)
        frame = self.history.training_frame()
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

        held_rows = rows[is_held].reset_index(drop=True)
        verdict = self._evaluate_on(model, held_rows)
        card = model_card(model, parsed, "database export", hashlib.sha256(data).hexdigest(), seed)
        card["holdout"] = {"episodes": list(held_rows["episode_id"]), "share": holdout, **verdict}
        with self.store.write() as s:
            version = (s.execute(select(func.max(ModelVersion.version))).scalar() or 0) + 1
            path = self.model_dir / f"model-v{version}.joblib"
            card = save_model(model, path, {**card, "version": version})
            s.add(ModelVersion(version=version, artifact_path=str(path.resolve()),
                               artifact_sha256=card["artifact_sha256"], card=card,
                               policy_value=verdict["value"], policy_value_low=verdict["ci_low"],
                               policy_value_high=verdict["ci_high"], created_by=actor.username))
            self.store.log(s, actor, "train", f"model:v{version}", None,
                      {"version": version, "sha256": card["artifact_sha256"],
                       "rows": len(rows), "holdout_rows": len(held_rows), **verdict})
        return version

    @staticmethod
    def _evaluate_on(model: TreatmentRecommender, rows: pd.DataFrame) -> dict:
        if len(rows) == 0 or rows["followup_pain_score"].notna().sum() < MIN_HELDOUT_OUTCOMES:
            return {"value": None, "ci_low": None, "ci_high": None, "violations": 0, "rows": len(rows)}
        recs = model.recommend_frame(rows)
        plans = np.array([r.best.plan.encode() for r in recs])
        value = DoublyRobust(model, rows).value(plans)
        return {"value": value["estimate"], "ci_low": value["ci_low"], "ci_high": value["ci_high"],
                "violations": int(gate.violations(rows, plans).sum()), "rows": len(rows)}

    def _holdout_rows(self, candidate: ModelVersion) -> pd.DataFrame:
        held_codes = set(candidate.card.get("holdout", {}).get("episodes", []))
        frame = self.history.training_frame()
        if not held_codes or not len(frame):
            return frame.iloc[0:0]
        rows = read_episodes(to_csv_bytes(frame), Kind.TRAINING).valid_rows()
        return rows[rows["episode_id"].isin(held_codes)].reset_index(drop=True)

    def evaluate_version(self, actor: Actor, version: int) -> tuple[dict | None, pd.DataFrame]:
        """Evaluation report on the version's held-out cohort, and per-episode predictions."""
        self.access.require(actor, Action.EVALUATE, f"model:v{version}")
        if version not in self._evaluation_cache:  # a version and its held-out cohort never change
            self._evaluation_cache[version] = self._evaluate_version(version)
        return self._evaluation_cache[version]

    def _evaluate_version(self, version: int) -> tuple[dict | None, pd.DataFrame]:
        with self.store.read() as s:
            candidate = s.get(ModelVersion, version)
            if candidate is None:
                raise ValueError(f"no model version {version}")
        rows = self._holdout_rows(candidate)
        if len(rows) == 0 or rows["followup_pain_score"].notna().sum() < MIN_HELDOUT_OUTCOMES:
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
        self.access.require(actor, Action.EVALUATE, f"model:v{version}")
        return self.promotion_verdict(version)

    def _candidate_evaluation(self, candidate: ModelVersion, rows: pd.DataFrame) -> dict:
        """The held-out evaluation made when the version was trained (same model, same rows),
        once its artifact is confirmed unchanged; computed afresh only when none was stored."""
        stored = candidate.card.get("holdout", {})
        if "violations" in stored:
            if sha256_file(candidate.artifact_path) != candidate.artifact_sha256:
                raise ArtifactError(f"{candidate.artifact_path}: SHA-256 does not match the registry")
            return {k: stored[k] for k in ("value", "ci_low", "ci_high", "violations")}
        return self._evaluate_on(self.load_version(candidate), rows)

    def promotion_verdict(self, version: int) -> PromotionVerdict:
        """The promotion gate: no gate violation on the held-out cohort, and a policy value not
        below the current model's confidence interval on that same cohort."""
        with self.store.read() as s:
            candidate = s.get(ModelVersion, version)
            if candidate is None:
                raise ValueError(f"no model version {version}")
            current = self._current(s)
        rows = self._holdout_rows(candidate)
        cand = self._candidate_evaluation(candidate, rows)
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
        self.access.require(actor, action, f"model:v{version}")
        if force and not reason.strip():
            raise InputRejected("forcing a promotion needs a reason")
        current = self.current_version()
        if current is not None and current.version == version:
            raise ValueError(f"model version {version} is already current")
        verdict = self.promotion_verdict(version)
        with self.store.write() as s:
            current = self._current(s)
            if not verdict.passed and not force:
                self.store.log(s, actor, "promote", f"model:v{version}",
                          {"current": current.version if current else None},
                          {"promoted": False, "verdict": dataclasses.asdict(verdict)},
                          reason="refused by the promotion gate")
                return verdict
            s.add(Promotion(alias=ALIAS, from_version=current.version if current else None,
                            to_version=version, kind="force" if force else "promote",
                            verdict=json.loads(canonical_json(dataclasses.asdict(verdict))),
                            reason=reason.strip(), by=actor.username))
            self.store.log(s, actor, "promote", f"model:v{version}",
                      {"current": current.version if current else None},
                      {"current": version, "forced": force, "verdict": dataclasses.asdict(verdict)},
                      reason=reason.strip())
        return verdict

    def rollback(self, actor: Actor, reason: str = "") -> int:
        """Point ``current`` back at the version it replaced."""
        self.access.require(actor, Action.ROLLBACK)
        with self.store.write() as s:
            last = s.execute(select(Promotion).where(Promotion.alias == ALIAS)
                             .order_by(Promotion.id.desc()).limit(1)).scalar_one_or_none()
            if last is None or last.from_version is None:
                raise ValueError("nothing to roll back to")
            s.add(Promotion(alias=ALIAS, from_version=last.to_version, to_version=last.from_version,
                            kind="rollback", verdict={}, reason=reason.strip(), by=actor.username))
            self.store.log(s, actor, "rollback", f"model:v{last.from_version}", {"current": last.to_version},
                      {"current": last.from_version}, reason=reason.strip())
            return last.from_version

    def register_artifact(self, actor: Actor, path: str | Path) -> int:
        """Register an artifact trained elsewhere (e.g. `recommender train`)."""
        self.access.require(actor, Action.TRAIN)
        card = read_card(path)
        load_model(path)  # verifies the hash before anything is recorded
        with self.store.write() as s:
            version = (s.execute(select(func.max(ModelVersion.version))).scalar() or 0) + 1
            s.add(ModelVersion(version=version, artifact_path=str(Path(path).resolve()),
                               artifact_sha256=card["artifact_sha256"], card=card,
                               created_by=actor.username))
            self.store.log(s, actor, "train", f"model:v{version}", None,
                      {"version": version, "sha256": card["artifact_sha256"], "registered": str(path)})
        return version

    def model_versions(self, actor: Actor) -> pd.DataFrame:
        self.access.require(actor, Action.VIEW_MODELS)
        with self.store.read() as s:
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
        self.access.require(actor, Action.VIEW_MODELS, f"model:v{version}")
        with self.store.read() as s:
            v = s.get(ModelVersion, version)
            if v is None:
                raise ValueError(f"no model version {version}")
            card = dict(v.card)
        card.get("holdout", {}).pop("episodes", None)
        return card

