"""Model registry: train and register versions, the promotion gate, promote and roll back.

Artifacts live in ``<model dir>/registry/`` under content-addressed names, are
written before their row and are only ever referenced once their row commits;
version numbers are allocated in the row's own transaction (retried on a
clash), so concurrent trainings cannot overwrite each other's files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from recommender.contract.columns import Kind
from recommender.contract.csv_io import read_episodes, to_csv_bytes
from recommender.model.artifacts import (
    card_path,
    load_model,
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
    check_free_text,
)
from recommender.services.data import DataService
from recommender.services.identity import Actor
from recommender.services.permissions import Action, Role
from recommender.storage.audit import canonical_json
from recommender.storage.schema import ModelVersion, Promotion

# A held-out cohort with fewer followed-up episodes than this is not evaluated at all.
MIN_HELDOUT_OUTCOMES = 10
# The promotion gate needs at least this many followed-up episodes the candidate was
# never fitted on; with fewer it refuses (a supervisor may force, with a reason).
MIN_PROMOTION_COHORT = 50
# A rollback target is re-checked by the gate on at most this many recorded intakes.
ROLLBACK_CHECK_EPISODES = 500
VERSION_ALLOCATION_ATTEMPTS = 5
REGISTRY_FOLDER = "registry"
# gc leaves temporary files younger than this alone (a training may be writing them).
GC_MIN_AGE_SECONDS = 3600
# Card fields too large to show or store twice.
BULKY_CARD_FIELDS = ("training_episode_ids",)


class RegistryService:
    """Model registry: train and register versions, the promotion gate, promote and roll back."""

    def __init__(self, store: AuditedStore, access: AccessControl, history: DataService,
                 model_dir: Path) -> None:
        self.store = store
        self.access = access
        self.history = history
        self.model_dir = Path(model_dir)
        self._model_cache: dict[int, TreatmentRecommender] = {}

    @property
    def registry_dir(self) -> Path:
        return self.model_dir / REGISTRY_FOLDER

    # ------------------------------------------------------------------ reading

    def current_version(self) -> ModelVersion | None:
        with self.store.read() as s:
            return self._current(s)

    def _current(self, s) -> ModelVersion | None:
        stack, _ = self._history(s)
        return s.get(ModelVersion, stack[-1]) if stack else None

    @staticmethod
    def _history(s) -> tuple[list[int], set[int]]:
        """The promotion stack (current last) and the versions rolled back, from the
        ordered history: promote pushes, rollback pops and marks."""
        stack: list[int] = []
        rolled_back: set[int] = set()
        for p in s.execute(select(Promotion).where(Promotion.alias == ALIAS).order_by(Promotion.id)).scalars():
            if p.kind == "rollback":
                if stack:
                    rolled_back.add(stack.pop())
                while stack and stack[-1] != p.to_version:
                    stack.pop()
            else:
                rolled_back.discard(p.to_version)
                stack.append(p.to_version)
        return stack, rolled_back

    def load_version(self, version: ModelVersion) -> TreatmentRecommender:
        """A registered model, verified against its signature and the hash the database holds."""
        if version.version not in self._model_cache:
            model, _ = load_model(version.artifact_path, expected_sha256=version.artifact_sha256)
            self._model_cache = {version.version: model}  # keep one model in memory
        return self._model_cache[version.version]

    def current_model(self) -> tuple[ModelVersion, TreatmentRecommender]:
        version = self.current_version()
        if version is None:
            raise ValueError("no model is promoted yet: train one and promote it")
        return version, self.load_version(version)

    # ------------------------------------------------------------------ registering

    def train(self, actor: Actor, seed: int = 0, progress=None, holdout: float = 0.2) -> int:
        """Train on the recorded history, hold out a cohort for the promotion gate, register."""
        actor = self.access.require(actor, Action.TRAIN)
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
        card = model_card(model, parsed, "database export", hashlib.sha256(data).hexdigest(), seed,
                          fitted_ids=list(rows.loc[~is_held, "episode_id"]))
        card["holdout"] = {"episodes": list(held_rows["episode_id"]), "share": holdout, **verdict}
        evaluation = self._evaluation_record(model, held_rows)
        path, card = self._publish(lambda tmp: save_model(model, tmp, card))
        return self._add_version(actor, path, card, verdict,
                                 {"rows": len(rows), "holdout_rows": len(held_rows), **verdict},
                                 evaluation)

    def register_artifact(self, actor: Actor, path: str | Path) -> int:
        """Register an artifact this installation trained elsewhere (`recommender train`).

        Its signed card is verified and the model loaded from a copy (so the registered
        file cannot change under the registry) before anything is recorded."""
        actor = self.access.require(actor, Action.TRAIN)
        path = Path(path)

        loaded: list[TreatmentRecommender] = []

        def copy(tmp: Path) -> dict:
            shutil.copyfile(path, tmp)
            shutil.copyfile(card_path(path), card_path(tmp))
            model, card = load_model(tmp)  # signature, size and hash of exactly what is kept
            loaded.append(model)
            return card

        published, card = self._publish(copy)
        evaluation = self._evaluation_record(loaded[0], self._card_holdout_rows(card))
        return self._add_version(actor, published, card, {"value": None, "ci_low": None, "ci_high": None},
                                 {"registered": str(path)}, evaluation)

    def _publish(self, write) -> tuple[Path, dict]:
        """Write an artifact (and card) under a temporary name, then move it to its
        content-addressed name; returns that path and the verified card."""
        self.registry_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.registry_dir / f".tmp-{time.time_ns()}-{id(write)}.joblib"
        try:
            card = write(tmp)
            final = self.registry_dir / f"model-{card['artifact_sha256'][:20]}.joblib"
            card_path(tmp).replace(card_path(final))
            tmp.replace(final)
        finally:
            tmp.unlink(missing_ok=True)
            card_path(tmp).unlink(missing_ok=True)
        return final, card

    def _add_version(self, actor: Actor, path: Path, card: dict, verdict: dict, audit: dict,
                     evaluation: dict) -> int:
        """Allocate the next version number in the row's own transaction (retried on a clash)."""
        for attempt in range(VERSION_ALLOCATION_ATTEMPTS):
            try:
                with self.store.write() as s:
                    version = (s.execute(select(func.max(ModelVersion.version))).scalar() or 0) + 1
                    s.add(ModelVersion(version=version, artifact_path=str(path.resolve()),
                                       artifact_sha256=card["artifact_sha256"], card=card,
                                       policy_value=verdict["value"], policy_value_low=verdict["ci_low"],
                                       policy_value_high=verdict["ci_high"], evaluation=evaluation,
                                       created_by=actor.username))
                    s.flush()
                    self.store.log(s, actor, "train", f"model:v{version}", None,
                                   {"version": version, "sha256": card["artifact_sha256"], **audit})
                return version
            except IntegrityError:
                if attempt == VERSION_ALLOCATION_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def collect_garbage(self, actor: Actor) -> list[str]:
        """Remove temporary files left by interrupted trainings and registry artifacts that
        no version refers to; returns what was removed."""
        actor = self.access.require(actor, Action.TRAIN, "models:gc")
        if not self.registry_dir.is_dir():
            return []
        with self.store.read() as s:
            referenced = {Path(p).name for p in s.execute(select(ModelVersion.artifact_path)).scalars()}
        referenced |= {card_path(Path(n)).name for n in referenced}
        now = time.time()
        removed = []
        for f in sorted(self.registry_dir.iterdir()):
            if not f.is_file() or f.name in referenced:
                continue
            if f.name.startswith(".") and now - f.stat().st_mtime < GC_MIN_AGE_SECONDS:
                continue  # a training may still be writing it
            if f.name.startswith(".") or f.name.startswith("model-"):
                f.unlink()
                removed.append(f.name)
        with self.store.write() as s:
            self.store.log(s, actor, "models_gc", "models", None, {"removed": removed})
        return removed

    # ------------------------------------------------------------------ evaluating

    @staticmethod
    def _evaluate_on(model: TreatmentRecommender, rows: pd.DataFrame) -> dict:
        """Gate violations of ``model``'s plans for ``rows`` and their doubly-robust value."""
        n = int(rows["followup_pain_score"].notna().sum()) if len(rows) else 0
        if n < MIN_HELDOUT_OUTCOMES:
            return {"value": None, "ci_low": None, "ci_high": None, "violations": 0, "rows": len(rows),
                    "followed_up": n}
        recs = model.recommend_frame(rows)
        plans = np.array([r.best.plan.encode() for r in recs])
        value = DoublyRobust(model, rows).value(plans)
        return {"value": value["estimate"], "ci_low": value["ci_low"], "ci_high": value["ci_high"],
                "violations": int(gate.violations(rows, plans).sum()), "rows": len(rows),
                "followed_up": n}

    def _recorded_rows(self) -> pd.DataFrame:
        frame = self.history.training_frame()
        if not len(frame):
            return frame
        return read_episodes(to_csv_bytes(frame), Kind.TRAINING).valid_rows()

    def _holdout_rows(self, candidate: ModelVersion) -> pd.DataFrame:
        """The version's own held-out cohort, as recorded now."""
        return self._card_holdout_rows(candidate.card)

    def _card_holdout_rows(self, card: dict) -> pd.DataFrame:
        held_codes = set(card.get("holdout", {}).get("episodes", []))
        rows = self._recorded_rows()
        if not held_codes or not len(rows):
            return rows.iloc[0:0]
        return rows[rows["episode_id"].isin(held_codes)].reset_index(drop=True)

    def promotion_cohort(self, candidate: ModelVersion, cohort_file: str | Path | None = None
                         ) -> pd.DataFrame:
        """Real episodes the candidate was never fitted on: the recorded ones outside its
        training data, or the rows of ``cohort_file`` outside it."""
        trained_on = set(candidate.card.get("training_episode_ids") or [])
        if cohort_file is not None:
            cohort_file = Path(cohort_file)
            if sha256_file(cohort_file) == candidate.card.get("training_file_sha256"):
                raise InputRejected(f"{cohort_file.name} is the file v{candidate.version} was "
                                    "trained on: give episodes it has not seen")
            parsed = read_episodes(cohort_file, Kind.TRAINING)
            if parsed.report.errors:  # judged on all of it or not at all: nothing dropped unseen
                raise InputRejected(f"{cohort_file.name}: {len(parsed.report.bad_rows)} invalid "
                                    "row(s) in the cohort file; correct them to evaluate on it",
                                    sorted(parsed.report.errors))
            rows = parsed.valid_rows()
        else:
            if not trained_on:
                return self._recorded_rows().iloc[0:0]  # unknown training data: no safe cohort
            rows = self._recorded_rows()
        if not len(rows):
            return rows
        return rows[~rows["episode_id"].isin(trained_on)].reset_index(drop=True)

    def evaluate_version(self, actor: Actor, version: int) -> tuple[dict | None, pd.DataFrame]:
        """The version's held-out evaluation: the stored one, or (for a version registered
        before evaluations were stored) computed now and stored with it, once."""
        actor = self.access.require(actor, Action.EVALUATE, f"model:v{version}")
        candidate = self._version(version)
        if candidate.evaluation is not None:
            return _evaluation_view(candidate.evaluation)
        evaluation = self._evaluation_record(self.load_version(candidate), self._holdout_rows(candidate))
        with self.store.write() as s:
            row = s.get(ModelVersion, version)
            if row.evaluation is None:  # a concurrent job may have stored it first
                row.evaluation = evaluation
                self.store.log(s, actor, "evaluate", f"model:v{version}", None,
                               {"rows": (evaluation["report"] or {}).get("rows", 0)})
            evaluation = row.evaluation
        return _evaluation_view(evaluation)

    def stored_evaluation(self, actor: Actor, version: int) -> tuple[dict | None, pd.DataFrame] | None:
        """The stored evaluation (None: not evaluated yet) — what pages show; never computes."""
        actor = self.access.require(actor, Action.EVALUATE, f"model:v{version}")
        evaluation = self._version(version).evaluation
        return None if evaluation is None else _evaluation_view(evaluation)

    @staticmethod
    def _evaluation_record(model: TreatmentRecommender, rows: pd.DataFrame) -> dict:
        """Report and per-episode predicted/observed points on a held-out cohort, as JSON."""
        if len(rows) == 0 or rows["followup_pain_score"].notna().sum() < MIN_HELDOUT_OUTCOMES:
            return {"report": None, "points": None}
        report = evaluate(model, rows)
        preds = model.predict_paired(rows, encode_frame(rows))
        observed = (rows["pain_score"] - rows["followup_pain_score"]).to_numpy(float)
        keep = rows["followup_pain_score"].notna().to_numpy()
        points = {"predicted": preds["mean"][keep], "observed": observed[keep],
                  "covered": ((observed >= preds["low"]) & (observed <= preds["high"]))[keep]}
        return json_safe({"report": report, "points": {k: v.tolist() for k, v in points.items()}})

    def _version(self, version: int) -> ModelVersion:
        with self.store.read() as s:
            candidate = s.get(ModelVersion, version)
        if candidate is None:
            raise InputRejected(f"no model version {version}")
        return candidate

    def compare_with_current(self, actor: Actor, version: int,
                             cohort_file: str | Path | None = None) -> PromotionVerdict:
        """What the promotion gate would say now, without promoting."""
        actor = self.access.require(actor, Action.EVALUATE, f"model:v{version}")
        return self.promotion_verdict(version, cohort_file)

    def promotion_verdict(self, version: int, cohort_file: str | Path | None = None) -> PromotionVerdict:
        """The promotion gate, always evaluated afresh on real episodes the candidate was not
        fitted on: at least MIN_PROMOTION_COHORT followed-up ones, no gate violation there,
        and a policy value not clearly below the current model's on them (the 95 % CI of the
        paired difference must reach zero)."""
        candidate = self._version(version)
        with self.store.read() as s:
            current = self._current(s)
        rows = self.promotion_cohort(candidate, cohort_file)
        n = int(rows["followup_pain_score"].notna().sum()) if len(rows) else 0
        if n < MIN_PROMOTION_COHORT:
            return PromotionVerdict(False, 0, None, None, None, None,
                                    f"refused: only {n} followed-up episode(s) that v{version} was not "
                                    f"trained on (at least {MIN_PROMOTION_COHORT} are needed to "
                                    "evaluate it); record more, give --cohort, or a supervisor may "
                                    "force it with a reason", cohort_size=n)
        # One judge for both policies: the current model's outcome model when there is one, so a
        # weak candidate cannot grade itself (its own basis can inflate its DR correction).
        judge = self.load_version(current) if current is not None and current.version != version else None
        model = self.load_version(candidate)
        if judge is None:
            cand = self._evaluate_on(model, rows)
            problems = ([f"{cand['violations']} gate violation(s) on the held-out cohort"]
                        if cand["violations"] else [])
            message = "; ".join(problems) or f"passes: no gate violations, value {cand['value']:.2f}"
            return PromotionVerdict(not problems, cand["violations"], cand["value"],
                                    (cand["ci_low"], cand["ci_high"]), None, None,
                                    f"{message} (cohort: {n} held-out episodes)", cohort_size=n)
        return self._compared_verdict(model, judge, rows, n)

    @staticmethod
    def _compared_verdict(model: TreatmentRecommender, judge: TreatmentRecommender,
                          rows: pd.DataFrame, n: int) -> PromotionVerdict:
        """Candidate against the current model on the same episodes, both judged by the
        current model's outcome model.  The paired difference's interval accounts for how
        the two estimates vary together; comparing the candidate's estimate with the current
        model's interval did not (a guideline-only candidate 0.15 points worse passed it on
        4 of 12 1,500-episode cohorts, the paired test on 2)."""
        plans = {name: np.array([r.best.plan.encode() for r in m.recommend_frame(rows)])
                 for name, m in (("candidate", model), ("current", judge))}
        dr = DoublyRobust(judge, rows)
        cand, cur, diff = dr.compare(plans["candidate"], plans["current"])
        violations = int(gate.violations(rows, plans["candidate"]).sum())
        problems = [f"{violations} gate violation(s) on the held-out cohort"] if violations else []
        if not diff["ci_high"] >= 0:  # a NaN interval (no spread to judge by) fails closed
            problems.append(
                f"estimated policy value {cand['estimate']:.2f} is below the current model's "
                f"{cur['estimate']:.2f} by more than chance (difference {diff['estimate']:+.2f}, "
                f"95% CI {diff['ci_low']:+.2f} to {diff['ci_high']:+.2f}, on the same patients)")
        message = "; ".join(problems) or (
            f"passes: no gate violations; value {cand['estimate']:.2f} vs current "
            f"{cur['estimate']:.2f}, not clearly below it (difference {diff['estimate']:+.2f}, "
            f"95% CI {diff['ci_low']:+.2f} to {diff['ci_high']:+.2f}, which reaches zero)")
        return PromotionVerdict(
            not problems, violations, cand["estimate"], (cand["ci_low"], cand["ci_high"]),
            cur["estimate"], (cur["ci_low"], cur["ci_high"]),
            f"{message} (cohort: {n} held-out episodes)", cohort_size=n,
            difference=diff["estimate"], difference_ci=(diff["ci_low"], diff["ci_high"]))

    # ------------------------------------------------------------------ promoting

    def promote(self, actor: Actor, version: int, force: bool = False, reason: str = "",
                cohort_file: str | Path | None = None) -> PromotionVerdict:
        """Make ``version`` current if it passes the gate; a supervisor may force it with a reason.

        A ``cohort_file`` is evidence the requester chose: a file of only the patients on whom
        both models agree makes any candidate look equal.  So promoting on one needs the
        right to force a promotion and a reason, both audited; by default the gate judges on
        the recorded episodes, which nobody picks."""
        actor = self.access.current(actor)
        chosen = cohort_file is not None
        actor = self.access.require(actor, promotion_action(actor.role, force or chosen),
                                    f"model:v{version}")
        check_free_text(reason=reason)
        if force and not reason.strip():
            raise InputRejected("forcing a promotion needs a reason")
        if chosen and not reason.strip():
            raise InputRejected("promoting on a cohort file needs a reason: which episodes it "
                                "holds and why they, not the recorded ones, should judge")
        current = self.current_version()
        if current is not None and current.version == version:
            raise InputRejected(f"model version {version} is already current")
        verdict = self.promotion_verdict(version, cohort_file)
        with self.store.write() as s:
            current = self._current(s)
            if not verdict.passed and not force:
                self.store.log(s, actor, "promote", f"model:v{version}",
                               {"current": current.version if current else None},
                               {"promoted": False, "verdict": dataclasses.asdict(verdict),
                                "cohort_file": Path(cohort_file).name if chosen else None},
                               reason="refused by the promotion gate")
                return verdict
            s.add(Promotion(alias=ALIAS, from_version=current.version if current else None,
                            to_version=version, kind="force" if force else "promote",
                            verdict=json.loads(canonical_json(dataclasses.asdict(verdict))),
                            reason=reason.strip(), by=actor.username))
            self.store.log(s, actor, "promote", f"model:v{version}",
                           {"current": current.version if current else None},
                           {"current": version, "forced": force, "verdict": dataclasses.asdict(verdict),
                            "cohort_file": Path(cohort_file).name if chosen else None},
                           reason=reason.strip())
        return verdict

    def rollback(self, actor: Actor, reason: str = "") -> int:
        """Return to the version promoted before the current one (skipping versions already
        rolled back), once it passes its verification and the safety gate again."""
        actor = self.access.require(actor, Action.ROLLBACK)
        check_free_text(reason=reason)
        if not (reason or "").strip():
            raise InputRejected("a rollback needs a reason")
        with self.store.read() as s:
            stack, rolled_back = self._history(s)
        if not stack:
            raise InputRejected("nothing to roll back: no model has been promoted")
        current = stack[-1]
        earlier = [v for v in stack[:-1] if v not in rolled_back and v != current]
        if not earlier:
            raise InputRejected(f"nothing to roll back to: v{current} is the only version left in "
                                "the promotion history")
        target = earlier[-1]
        self._recheck(target)
        with self.store.write() as s:
            s.add(Promotion(alias=ALIAS, from_version=current, to_version=target, kind="rollback",
                            verdict={"rechecked": True}, reason=reason.strip(), by=actor.username))
            self.store.log(s, actor, "rollback", f"model:v{target}", {"current": current},
                           {"current": target}, reason=reason.strip())
        return target

    def _recheck(self, version: int) -> None:
        """A version being made current again: its artifact verifies, and none of its plans
        for recorded patients breaks the gate (recommend_frame re-checks every plan)."""
        target = self._version(version)
        model = self.load_version(target)
        rows = self._recorded_rows()
        if len(rows):
            rows = rows.tail(ROLLBACK_CHECK_EPISODES).reset_index(drop=True)
            recs = model.recommend_frame(rows)
            plans = np.array([r.best.plan.encode() for r in recs])
            if int(gate.violations(rows, plans).sum()):
                raise gate.GateViolation(f"v{version} recommends contraindicated plans; not restored")

    # ------------------------------------------------------------------ listing

    def model_versions(self, actor: Actor) -> pd.DataFrame:
        actor = self.access.require(actor, Action.VIEW_MODELS)
        with self.store.read() as s:
            current = self._current(s)
            _, rolled_back = self._history(s)
            rows = s.execute(select(ModelVersion).order_by(ModelVersion.version)).scalars().all()
        return pd.DataFrame([{
            "version": v.version, "current": bool(current and current.version == v.version),
            "rolled_back": v.version in rolled_back,
            "created_at": v.created_at, "created_by": v.created_by,
            "rows": v.card.get("training", {}).get("valid_rows"),
            "policy_value": v.policy_value, "ci_low": v.policy_value_low, "ci_high": v.policy_value_high,
            "sha256": v.artifact_sha256[:12],
        } for v in rows], columns=["version", "current", "rolled_back", "created_at", "created_by",
                                   "rows", "policy_value", "ci_low", "ci_high", "sha256"])

    def model_card(self, actor: Actor, version: int) -> dict:
        actor = self.access.require(actor, Action.VIEW_MODELS, f"model:v{version}")
        card = dict(self._version(version).card)
        for name in BULKY_CARD_FIELDS:
            card.pop(name, None)
        card["holdout"] = {k: v for k, v in card.get("holdout", {}).items() if k != "episodes"}
        return card


def promotion_action(role: str, force: bool) -> Action:
    """What promoting means for this role: data staff request (the gate decides), supervisors
    promote, and forcing past the gate is its own right."""
    if force:
        return Action.FORCE_PROMOTE
    return Action.REQUEST_PROMOTION if role == Role.DATA_STAFF.value else Action.PROMOTE


def json_safe(value):
    """Plain JSON values for a JSON column: numpy scalars unwrapped, NaN and ±inf as null
    (PostgreSQL's json type refuses them)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _evaluation_view(evaluation: dict) -> tuple[dict | None, pd.DataFrame]:
    """A stored evaluation as the pages use it: the report and a points frame."""
    points = evaluation.get("points")
    frame = pd.DataFrame(points) if points else pd.DataFrame(columns=["predicted", "observed", "covered"])
    return evaluation.get("report"), frame
