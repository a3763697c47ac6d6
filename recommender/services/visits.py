"""Visit records as the database holds them, read into :class:`course.VisitRecord`.

Shared by the clinical service (the patient's state now), the care service (progress,
the day list) and the data service (an end-of-programme visit is an outcome).
"""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from recommender.services.course import VisitRecord
from recommender.storage.schema import FollowUp, Visit


def visit_record(v: Visit) -> VisitRecord:
    return VisitRecord(
        id=v.id, visit_date=v.visit_date, kind=v.kind, pain_score=v.pain_score,
        discomfort=v.discomfort, massage_intensity=v.massage_intensity,
        training_given=v.training_given, exercise_days_last_week=v.exercise_days,
        adverse_event=v.adverse_event, note=v.note, contraindications=dict(v.contraindications),
        supersedes_id=v.supersedes_id, correction_reason=v.correction_reason,
        recorded_by=v.recorded_by, recorded_at=v.recorded_at)


def visit_records(s: Session, episode_id: int) -> list[VisitRecord]:
    """Every visit record of an episode, corrections included, in entry order."""
    rows = s.execute(select(Visit).where(Visit.episode_id == episode_id).order_by(Visit.id)).scalars()
    return [visit_record(v) for v in rows]


def records_by_episode(s: Session, episode_ids: list[int]) -> dict[int, list[VisitRecord]]:
    """:func:`visit_records` for many episodes in one query."""
    out: dict[int, list[VisitRecord]] = {}
    for v in s.execute(select(Visit).where(Visit.episode_id.in_(episode_ids)).order_by(Visit.id)).scalars():
        out.setdefault(v.episode_id, []).append(visit_record(v))
    return out


def ended_episode_ids() -> Select:
    """Episodes that have ended: a follow-up is recorded, or an end-of-programme visit that
    no later record corrects."""
    corrected = select(Visit.supersedes_id).where(Visit.supersedes_id.is_not(None))
    return select(FollowUp.episode_id).union(
        select(Visit.episode_id).where(Visit.kind == "end_of_programme", Visit.id.not_in(corrected)))
