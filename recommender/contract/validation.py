"""Cell- and row-level validation of contract columns, vectorised over a file.

Each check turns a column of raw strings into typed values and a list of
:class:`RowError` naming the file row, column, value and what was expected.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recommender.contract.columns import (
    FALSE_SPELLINGS,
    IDENTIFIER_PATTERN,
    REGIONS,
    TRUE_SPELLINGS,
    Column,
    Type,
)

FIRST_DATA_ROW = 2  # file rows are counted as a spreadsheet shows them: header = 1
# Every check reports a cell's row as its Series index label: the reader indexes rows by
# their line in the file, so blank lines keep the numbering a spreadsheet shows.


@dataclass(frozen=True, order=True)
class RowError:
    """One bad cell: where it is, what it holds and what was expected."""

    row: int
    column: str
    value: str
    expected: str

    def __str__(self) -> str:
        return f"row {self.row}, column '{self.column}': {self.value!r} — expected {self.expected}"


@dataclass
class ValidationReport:
    """Everything found wrong with a file, and the warnings that are not errors."""

    kind: str
    n_rows: int = 0
    errors: list[RowError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def bad_rows(self) -> list[int]:
        return sorted({e.row for e in self.errors})

    def format(self, limit: int | None = None) -> str:
        """A plain-text report: a summary line then one line per error."""
        errors = sorted(self.errors)
        lines = [
            f"{len(errors)} error(s) in {len(self.bad_rows)} of {self.n_rows} row(s) "
            f"({self.kind} file)"
        ]
        shown = errors if limit is None else errors[:limit]
        lines += [f"  {e}" for e in shown]
        if len(shown) < len(errors):
            lines.append(f"  … and {len(errors) - len(shown)} more")
        return "\n".join(lines)


def _errors(raw: pd.Series, bad: np.ndarray, column: Column) -> list[RowError]:
    idx = np.flatnonzero(bad)
    values = raw.to_numpy()[idx]
    rows = raw.index.to_numpy()[idx]
    expected = column.expected()
    return [
        RowError(int(r), column.name, str(v),
                 expected if v != "" else f"a value (required): {expected}")
        for r, v in zip(rows, values)
    ]


def parse_column(raw: pd.Series, column: Column) -> tuple[pd.Series, list[RowError]]:
    """Typed values of one column (NaN/None where empty or bad) and its errors.

    ``raw`` holds stripped strings, positionally aligned with the file's data rows.
    """
    empty = (raw == "").to_numpy()
    may_be_empty = column.allow_empty or not column.required
    missing_bad = empty & (not may_be_empty)

    if column.type in (Type.INTEGER, Type.NUMBER):
        values = pd.to_numeric(raw.where(~empty, None), errors="coerce").astype(float)
        arr = values.to_numpy()
        bad = ~empty & ~np.isfinite(arr)
        with np.errstate(invalid="ignore"):
            if column.type is Type.INTEGER:
                bad |= ~empty & np.isfinite(arr) & (arr != np.round(arr))
            if column.low is not None:
                bad |= ~empty & (arr < column.low)
            if column.high is not None:
                bad |= ~empty & (arr > column.high)
        typed = pd.Series(np.where(bad | empty, np.nan, arr), index=raw.index)
    elif column.type is Type.CATEGORY:
        bad = ~empty & ~raw.isin(column.choices).to_numpy()
        typed = raw.where(~(bad | empty), None).astype(object)
    elif column.type is Type.BOOLEAN:
        low = raw.str.lower()
        is_true = low.isin(TRUE_SPELLINGS).to_numpy()
        is_false = low.isin(FALSE_SPELLINGS).to_numpy()
        bad = ~empty & ~is_true & ~is_false
        typed = pd.Series(
            np.where(is_true, True, np.where(is_false, False, None)), index=raw.index, dtype=object
        )
    elif column.type is Type.REGION_LIST:
        parsed = [_parse_regions(v) for v in raw.to_numpy()]
        bad = np.array([p is None for p in parsed], dtype=bool) & ~empty
        typed = pd.Series(
            [p if p is not None else frozenset() for p in parsed], index=raw.index, dtype=object
        )
    elif column.type is Type.DATE:
        parsed = [_parse_date(v) for v in raw.to_numpy()]
        bad = np.array([p is None for p in parsed], dtype=bool) & ~empty
        typed = pd.Series(parsed, index=raw.index, dtype=object)
    elif column.type is Type.IDENTIFIER:
        bad = ~empty & ~raw.str.fullmatch(IDENTIFIER_PATTERN).fillna(False).to_numpy(dtype=bool)
        typed = raw.where(~(bad | empty), None).astype(object)
    else:  # STRING
        bad = np.zeros(len(raw), dtype=bool)
        typed = raw.where(~empty, None).astype(object)

    errors = _errors(raw, bad | missing_bad, column)
    return typed, errors


def _parse_regions(text: str) -> frozenset[str] | None:
    if text == "":
        return frozenset()
    parts = [p.strip() for p in text.split(";") if p.strip()]
    if not all(p in REGIONS for p in parts):
        return None
    return frozenset(parts)


def _parse_date(text: str) -> dt.date | None:
    if text == "":
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def duplicate_errors(raw: pd.Series, column: str) -> list[RowError]:
    """Every repeat of a value that must be unique in the file, naming the first."""
    nonempty = raw[raw != ""]
    dup = nonempty.duplicated(keep="first")
    if not dup.any():
        return []
    first_row = {}
    for pos, value in zip(nonempty.index, nonempty.to_numpy()):
        first_row.setdefault(value, int(pos))
    return [
        RowError(
            int(pos),
            column,
            str(value),
            f"a value unique in the file (first used in row {first_row[value]})",
        )
        for pos, value in zip(nonempty.index[dup.to_numpy()], nonempty[dup].to_numpy())
    ]


def intensity_consistency_errors(sessions: pd.Series, intensity: pd.Series) -> list[RowError]:
    """``massage_intensity`` must be ``none`` exactly when sessions are 0."""
    s = sessions.to_numpy(dtype=float)
    i = intensity.to_numpy(dtype=object)
    known = np.isfinite(s) & pd.notna(intensity).to_numpy()
    is_none = np.array([v == "none" for v in i], dtype=bool)
    bad = known & ((s == 0) != is_none)
    out = []
    for pos in np.flatnonzero(bad):
        want = "none (massage_sessions_per_week is 0)" if s[pos] == 0 else (
            f"gentle, moderate or firm (massage_sessions_per_week is {int(s[pos])})"
        )
        out.append(RowError(int(sessions.index[pos]), "massage_intensity", str(i[pos]), want))
    return out
