"""Data staff's files: all-or-nothing import of contract files, export of training files."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from recommender.contract.atomic import atomic_write_bytes
from recommender.contract.columns import OUTCOME, PLAN_COLUMNS, Kind, columns_for
from recommender.contract.csv_io import (
    EpisodeFile,
    format_cell,
    read_episodes,
    to_csv_bytes,
)
from recommender.contract.validation import RowError
from recommender.safety.plans import Plan
from recommender.services import course
from recommender.services.base import (
    AccessControl,
    AuditedStore,
    InputRejected,
    check_free_text,
    clinic_today,
    intake_date_errors,
    intake_record,
    record_sha256,
)
from recommender.services.identity import Actor
from recommender.services.permissions import Action
from recommender.services.visits import ended_episode_ids, records_by_episode
from recommender.storage.schema import (
    DataImport,
    Decision,
    Episode,
    FollowUp,
    Patient,
    utcnow,
)

FILE_NAME_MAX_LENGTH = 255  # data_imports.file_name


OUTCOME_NAMES = frozenset(c.name for c in OUTCOME)


def training_columns(parsed: EpisodeFile) -> list[str]:
    """The plan and outcome columns a file has (those of a training file)."""
    return [c for c in parsed.columns if c in OUTCOME_NAMES or c in PLAN_COLUMNS]


def import_refusal(parsed: EpisodeFile, kind: str, today: dt.date) -> tuple[str, list[RowError]] | None:
    """Why a readable file whose cells are valid still cannot be imported, with the bad cells
    (None when it can): a training file offered as intakes (its past episodes would become
    patients in care), or intake dates the clinic cannot have seen.  The import page shows
    it before anything is submitted; the import refuses on it."""
    past = training_columns(parsed)
    if Kind(kind) is Kind.INTAKE and past:
        return (f"it has plan or outcome column(s) ({', '.join(past)}): it is a training file of "
                "past episodes. Import it as training history; as intakes, its episodes would "
                "become patients in care. Nothing was imported", [])
    bad_dates = intake_date_errors(parsed.frame, today)
    if bad_dates:
        return (f"{len(bad_dates)} intake date(s) the clinic cannot have seen; nothing was "
                "imported", bad_dates)
    return None


class DataService:
    """Data staff's files: all-or-nothing import of contract files, export of training files."""

    def __init__(self, store: AuditedStore, access: AccessControl) -> None:
        self.store = store
        self.access = access

    def import_file(self, actor: Actor, data: bytes, file_name: str,
                    kind: str = "training") -> tuple[int, EpisodeFile]:
        """Import a contract file, all rows or none; returns (import id, parsed file)."""
        actor = self.access.require(actor, Action.IMPORT, f"file:{file_name}")
        check_free_text(file_name=file_name)
        if not file_name or len(file_name) > FILE_NAME_MAX_LENGTH:
            raise InputRejected(f"file name {file_name[:40]!r}… has {len(file_name)} characters: "
                                f"rename the file to at most {FILE_NAME_MAX_LENGTH}")
        digest = hashlib.sha256(data).hexdigest()
        parsed = read_episodes(data, kind)
        if Kind(kind) is Kind.INTAKE and training_columns(parsed):
            refusal = import_refusal(parsed, kind, clinic_today())
            self._record_rejected_import(actor, file_name, digest, kind, parsed,
                                         reason="refused: a training file imported as intakes")
            raise InputRejected(f"{file_name}: {refusal[0]}")
        if not parsed.report.valid:
            self._record_rejected_import(actor, file_name, digest, kind, parsed)
            raise InputRejected(f"{file_name}: {len(parsed.report.bad_rows)} invalid row(s); "
                                "nothing was imported", parsed.report.errors)
        frame = parsed.frame
        refusal = import_refusal(parsed, kind, clinic_today())
        if refusal is not None:
            message, errors = refusal
            self._record_rejected_import(actor, file_name, digest, kind, parsed,
                                         reason=f"refused: {len(errors)} intake date(s) after "
                                                "today or before 1900")
            raise InputRejected(f"{file_name}: {message}", errors)
        with self.store.write() as s:
            errors = _already_imported(s, frame)
            if errors:
                raise InputRejected(f"{file_name}: {len(errors)} episode(s) already imported; "
                                    "nothing was imported", errors)
            imp = DataImport(file_name=file_name, file_sha256=digest, kind=kind,
                             rows_accepted=len(frame), rows_rejected=0, imported_by=actor.username)
            s.add(imp)
            s.flush()
            self._bulk_insert(s, frame, kind, imp.id, actor)
            self.store.log(s, actor, "import", f"file:{file_name}", None,
                      {"import_id": imp.id, "sha256": digest, "rows": len(frame), "kind": kind})
            return imp.id, parsed

    def already_imported(self, actor: Actor, parsed: EpisodeFile) -> list[RowError]:
        """The rows of a checked file whose episode id is already in the database, so the
        upload page can say the import would be refused before anyone presses Import (read
        only: the import checks again in its own transaction)."""
        self.access.require(actor, Action.IMPORT)
        with self.store.read() as s:
            return _already_imported(s, parsed.frame)

    def _record_rejected_import(self, actor: Actor, file_name: str, digest: str, kind: str,
                                parsed: EpisodeFile, reason: str | None = None) -> None:
        """A refused file is still recorded (no episode rows): who tried what, and why not."""
        bad = len(parsed.report.bad_rows)
        with self.store.write() as s:
            imp = DataImport(file_name=file_name, file_sha256=digest, kind=kind, rows_accepted=0,
                             rows_rejected=bad, imported_by=actor.username)
            s.add(imp)
            s.flush()
            self.store.log(s, actor, "import", f"file:{file_name}", None,
                      {"import_id": imp.id, "sha256": digest, "rows": parsed.report.n_rows,
                       "rejected_rows": bad, "kind": kind},
                      reason=reason or f"refused: {len(parsed.report.errors)} invalid value(s) in "
                                       f"{bad} row(s)")

    def _bulk_insert(self, s, frame: pd.DataFrame, kind: str, import_id: int, actor: Actor) -> None:
        patients = {p.patient_code: p.id for p in s.execute(
            select(Patient).where(Patient.patient_code.in_(set(frame["patient_id"])))).scalars()}
        new = sorted(set(frame["patient_id"]) - set(patients))
        if new:
            s.execute(Patient.__table__.insert(), [{"patient_code": p, "created_at": utcnow()} for p in new])
            patients.update({p.patient_code: p.id for p in s.execute(
                select(Patient).where(Patient.patient_code.in_(new))).scalars()})
        records = frame.to_dict("records")
        episodes = []
        for r in records:
            intake = intake_record(r)
            plan = {c: format_cell(r[c]) for c in PLAN_COLUMNS} if kind == "training" else None
            episodes.append({"episode_code": r["episode_id"], "patient_id": patients[r["patient_id"]],
                             "intake": intake, "intake_sha256": record_sha256(intake),
                             "source": f"import:{import_id}", "historical_plan": plan,
                             "is_history": plan is not None,
                             "created_by": actor.username, "created_at": utcnow()})
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
             "recorded_by": actor.username, "recorded_at": utcnow()}
            for r in records])

    def training_frame(self) -> pd.DataFrame:
        """Contract training rows from recorded episodes: imported history, plus decisions
        whose outcome is known.  The outcome is the explicit follow-up (or loss to follow-up)
        when one is recorded, else the end-of-programme visit (docs/visits-format.md states
        the rule).  Pending episodes are left out."""
        with self.store.read() as s:
            rows = s.execute(
                select(Episode, FollowUp).join(FollowUp, FollowUp.episode_id == Episode.id)
                .order_by(Episode.id)).all()
            decisions = {d.episode_id: d.accepted_plan for d in s.execute(
                select(Decision).order_by(Decision.id)).scalars()}
            followed = {e.id for e, _ in rows}
            ended = [e for e in s.execute(select(Episode).where(
                Episode.id.in_(ended_episode_ids()), Episode.id.in_(select(Decision.episode_id)))
                .order_by(Episode.id)).scalars() if e.id not in followed]
            visits = records_by_episode(s, [e.id for e in ended])
        out = []
        for episode, followup in rows:
            plan = decisions.get(episode.id) or episode.historical_plan
            if plan is None:
                continue
            row = {**episode.intake, **plan, **followup.outcome}
            if followup.lost_to_followup:
                row["followup_pain_score"] = None
            out.append(row)
        for episode in ended:
            plan = decisions[episode.id]
            out.append({**episode.intake, **plan,
                        **course.visit_outcome(Plan(**plan), course.effective(visits[episode.id]))})
        names = [c.name for c in columns_for(Kind.TRAINING)]
        frame = pd.DataFrame(out)
        return frame[[c for c in names if c in frame]] if len(frame) else pd.DataFrame(columns=names)

    def export_training(self, actor: Actor, path: str | Path) -> int:
        actor = self.access.require(actor, Action.EXPORT_TRAINING, f"file:{Path(path).name}")
        frame = self.training_frame()
        data = to_csv_bytes(frame)
        # re-read through the contract reader: we only hand out files we would accept
        if len(frame):
            check = read_episodes(data, Kind.TRAINING)
            if not check.report.valid:
                raise InputRejected("recorded data does not form a valid training file",
                                    check.report.errors)
        with self.store.write() as s:
            atomic_write_bytes(path, data)
            self.store.log(s, actor, "export", f"file:{Path(path).name}", None,
                      {"rows": len(frame), "sha256": hashlib.sha256(data).hexdigest()})
        return len(frame)


def _already_imported(s, frame: pd.DataFrame) -> list[RowError]:
    """One error per row of ``frame`` whose episode id the database already holds."""
    codes = set(frame["episode_id"])
    clash = set(s.execute(select(Episode.episode_code).where(Episode.episode_code.in_(codes))).scalars())
    return [RowError(int(r["_row"]), "episode_id", r["episode_id"], "an episode_id not already in the database")
            for r in frame.to_dict("records") if r["episode_id"] in clash]
