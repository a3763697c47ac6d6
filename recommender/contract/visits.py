"""The visit record: one treatment session or review of an episode.

Written down once, like the episode contract: the visit form is checked against
these columns, ``recommender visits export`` writes them, and
``docs/visits-format.md`` is generated from them (``render_visits_markdown``).
The visits file is the project's own format, beside contract 1.1 (which it does
not change): its identity columns are the contract's.
"""

from __future__ import annotations

import dataclasses

from recommender.contract.columns import (
    CONTRAINDICATIONS,
    EXTRA_CONTRAINDICATIONS,
    IDENTITY,
    INTENSITIES,
    Column,
    Type,
)

VISITS_FORMAT_VERSION = "1.0"
VISIT_KINDS = ("session", "review", "end_of_programme")

# What the therapist records at a visit.
VISIT = (
    Column("visit_date", Type.DATE, True, label="Visit date", meaning="the day of the visit"),
    Column("kind", Type.CATEGORY, True, choices=VISIT_KINDS, label="Kind of visit",
           meaning="`session` (treatment), `review` (re-plan), `end_of_programme` (the last "
                   "visit: its pain score is the episode's follow-up outcome)"),
    Column("pain_score", Type.INTEGER, True, 0, 10, label="Pain now (0–10)",
           meaning="numeric rating scale (NRS) at this visit, 10 worst"),
    Column("discomfort", Type.INTEGER, False, 0, 10, label="Discomfort during treatment (0–10)",
           meaning="how much the treatment itself hurt; empty when no treatment was given"),
    Column("massage_intensity", Type.CATEGORY, True, choices=INTENSITIES,
           label="Massage given", meaning="`none` when no massage was given at this visit"),
    Column("training_given", Type.BOOLEAN, True, label="Muscle training given",
           meaning="supervised muscle training at this visit"),
    Column("exercise_days_last_week", Type.INTEGER, False, 0, 7,
           label="Own exercise days in the last 7 days",
           meaning="days of the patient's own exercise in the 7 days before the visit, as the "
                   "plan's `exercise_days_per_week` counts them"),
    Column("adverse_event", Type.BOOLEAN, True, label="Adverse event",
           meaning="any harm attributed to treatment since the last visit"),
    Column("note", Type.STRING, False, label="Note", meaning="free text"),
)
# Contraindications found at a visit (the contract's columns and meanings): they add to the
# intake's and block massage from this visit on.
VISIT_CONTRAINDICATIONS = tuple(dataclasses.replace(c, required=False, allow_empty=False)
                                for c in CONTRAINDICATIONS + EXTRA_CONTRAINDICATIONS)
# Written by the export only: identity, the record's place in its correction chain, and who.
RECORD = (
    Column("visit_id", Type.INTEGER, True, 1, None, meaning="the record's number"),
    Column("supersedes_visit_id", Type.INTEGER, False, 1, None,
           meaning="the record this one corrects, if any"),
    Column("superseded", Type.BOOLEAN, True,
           meaning="`true` when a later record corrects this one (it no longer counts)"),
    Column("correction_reason", Type.STRING, False, meaning="why the earlier record was corrected"),
    Column("recorded_by", Type.STRING, True, meaning="user who recorded it"),
    Column("recorded_at", Type.STRING, True, meaning="when, ISO 8601 UTC"),
)
VISIT_EXPORT_COLUMNS: tuple[Column, ...] = (IDENTITY[:2] + RECORD[:1] + VISIT
                                            + VISIT_CONTRAINDICATIONS + RECORD[1:])
VISIT_INPUT_COLUMNS = {c.name: c for c in VISIT + VISIT_CONTRAINDICATIONS}
