"""The data contract as a Markdown document, generated from :mod:`.columns`.

``docs/data-contract.md`` is this function's output (``recommender contract-doc``
writes it; a test fails when the two drift), so users read exactly what the
code checks.
"""

from __future__ import annotations

from recommender.contract.columns import (
    CONTRACT_VERSION,
    CONTRAINDICATIONS,
    EXTRA_CONTRAINDICATIONS,
    IDENTIFIER_MAX_LENGTH,
    IDENTITY,
    INTAKE,
    OUTCOME,
    PLAN,
    REGIONS,
    Column,
    Type,
)

INTRO = """\
This is the file format that clinics hand to the project, and that the project
writes back. Everything that reads or writes episode data — import, training,
batch recommendation, simulation, export — speaks this format. Files are CSV,
UTF-8 (a BOM is accepted), comma-separated, one header row, one row per
episode of care. Column order is free. Unknown extra columns are ignored with
a warning, never an error. Column names are lower-case exactly as below.

An *intake file* has the identity, intake and contraindication columns.
A *training file* (past episodes) has those plus the plan and outcome columns.
A *recommendation file* (written by the project) has `episode_id` plus the plan
columns, and may add its own columns (predicted outcome, interval, reasons…)."""

IDENTIFIERS = f"""\
`episode_id` and `patient_id` are 1–{IDENTIFIER_MAX_LENGTH} characters: letters, digits and `-`, `_`, `.`, `:`,
`/`, with no spaces and no control characters. They are stored and written back exactly as
given; escaping for spreadsheets (a leading `'` before `=`, `+`, `-`, `@`) is applied only
when a CSV cell is written, and removed when it is read.

Version 1.1 only tightens version 1: identifiers get the rule above and
`pain_duration_months` an upper bound. A version-1 file that meets them is a 1.1 file."""

RULES = """\
- A training file row whose plan includes massage (`massage_sessions_per_week` > 0)
  for a patient for whom massage is contraindicated is still valid history
  (it happened), but the project never recommends, and never lets anyone accept,
  such a plan.
- A value outside its range or set, a missing required value, a duplicate
  `episode_id`, or `massage_intensity` inconsistent with sessions is an error
  for that row, reported with row number, column and the offending value."""


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def type_text(column: Column) -> str:
    """How the contract document names a column's type."""
    if column.type is Type.CATEGORY:
        if column.choices == REGIONS:
            return "a region"
        return ", ".join(f"`{c}`" for c in column.choices)
    if column.type in (Type.INTEGER, Type.NUMBER):
        text = (f"{column.type.value} ≥ {_number(column.low)}" if column.high is None
                else f"{column.type.value} {_number(column.low)}–{_number(column.high)}")
        return text + (", or empty" if column.allow_empty else "")
    return {Type.BOOLEAN: "boolean", Type.REGION_LIST: "region list", Type.DATE: "ISO 8601 date",
            Type.IDENTIFIER: "identifier (below)", Type.STRING: "text"}[column.type]


def _table(columns: tuple[Column, ...], with_required: bool = True,
           unique_episodes: bool = True) -> list[str]:
    if with_required:
        lines = ["| column | type | required | meaning |", "|---|---|---|---|"]
    else:
        lines = ["| column | type | meaning |", "|---|---|---|"]
    for c in columns:
        required = ("yes (may be empty)" if c.allow_empty and c.type is not Type.REGION_LIST
                    else "yes" if c.required else "no")
        kind = type_text(c) + (", unique in the file" if c.name == "episode_id" and unique_episodes
                               else "")
        cells = [c.name, kind] + ([required] if with_required else []) + [c.meaning]
        lines.append(("| " + " | ".join(cells)).rstrip() + " |")
    return lines


VISITS_INTRO = """\
The file that `recommender visits export OUT.csv --user NAME` writes: every visit of every
episode, one row per record, oldest first. It is CSV, UTF-8, comma-separated, with one header
row, and uses the same cell conventions as the episode contract (booleans `true`/`false`,
region lists joined by `;`, text cells that a spreadsheet would run as a formula start with `'`).

Visits are append-only. A correction is a new record that names the one it corrects
(`supersedes_visit_id`) with the reason; the corrected record stays in the file, marked
`superseded`, so the file is the whole history. Analyses should use the rows with
`superseded` = `false`. A record with massage is checked against the contraindications known
on its date (the intake's and those found at visits up to that day): massage on a day after a
finding is refused, while an earlier visit stays correctable. Notes and reasons hold at most
2,000 characters, without control characters.

**Which visit is the episode's outcome.** An explicit follow-up, when one was recorded, is
the episode's outcome (as before). Otherwise the episode's last `end_of_programme` visit that is
not superseded gives `followup_pain_score` (its pain score), `adverse_event` (any adverse event
at any visit) and `adherence` (own exercise days reported, over the days planned), and the
episode then appears in `recommender export-training`."""


def render_visits_markdown() -> str:
    """The visits file document (``docs/visits-format.md``)."""
    from recommender.contract.visits import (
        RECORD,
        VISIT,
        VISIT_CONTRAINDICATIONS,
        VISIT_EXPORT_COLUMNS,
        VISITS_FORMAT_VERSION,
    )

    order = ", ".join(f"`{c.name}`" for c in VISIT_EXPORT_COLUMNS)
    out = [f"# Visits file (version {VISITS_FORMAT_VERSION})", "", VISITS_INTRO, "",
           "## Columns, in this order", order, "",
           "## Identity",
           "`episode_id` and `patient_id` follow the episode contract's identifier rule.", "",
           *_table(IDENTITY[:2] + RECORD[:1], unique_episodes=False), "",
           "## The visit", *_table(VISIT), "",
           "## Contraindications found at the visit",
           "Empty unless found at this visit; they add to the intake's and block massage from "
           "this visit on (see the episode contract for their meaning).", "",
           *_table(VISIT_CONTRAINDICATIONS), "",
           "## The record", *_table(RECORD[1:]), ""]
    return "\n".join(out)


def render_markdown() -> str:
    """The whole contract document."""
    out = [f"# Data contract: episodes of care (version {CONTRACT_VERSION})", "", INTRO, "",
           "## Identifiers", IDENTIFIERS, "",
           "## Regions", ", ".join(f"`{r}`" for r in REGIONS), "",
           "## Identity", *_table(IDENTITY), "",
           "## Intake", *_table(INTAKE), "",
           "## Contraindications",
           "Booleans are written `true`/`false` (also accepted on input: `1`/`0`, `yes`/`no`,",
           "any case). Region lists are region names joined by `;`, empty when none.",
           *_table(CONTRAINDICATIONS), "",
           "The project accepts further contraindication columns of its own; they are",
           "optional, and a file without them is valid:", *_table(EXTRA_CONTRAINDICATIONS), "",
           "## Plan (what was, or is to be, delivered)", *_table(PLAN, with_required=False), "",
           "## Outcome (past episodes only)", *_table(OUTCOME), "",
           "Pain reduction, the main quantity a plan is chosen for, is",
           "`pain_score − followup_pain_score` (higher is better).", "",
           "## Rules no file may break", RULES, ""]
    return "\n".join(out)
