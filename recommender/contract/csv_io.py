"""Reading and writing contract CSV files.

Reading refuses a whole file (``ContractFileError``) when it cannot be read as
a contract file at all, and otherwise returns typed rows plus a report naming
every bad cell.  Writing is atomic and escapes text that spreadsheets would
run as a formula.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from recommender.contract.atomic import atomic_write_bytes
from recommender.contract.columns import Kind, column_map, columns_for
from recommender.contract.validation import (
    RowError,
    ValidationReport,
    duplicate_errors,
    intensity_consistency_errors,
    parse_column,
)
from recommender.settings import env_name, get_settings

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


class ContractFileError(ValueError):
    """The file as a whole cannot be read as a contract file."""


@dataclass
class EpisodeFile:
    """A parsed contract file: typed rows (all of them) and its report."""

    frame: pd.DataFrame
    report: ValidationReport
    columns: tuple[str, ...] = ()  # the header as the file has it (read or not)

    def valid_rows(self) -> pd.DataFrame:
        """Rows with no error, keeping their file row numbers in ``_row``."""
        bad = set(self.report.bad_rows)
        keep = ~self.frame["_row"].isin(bad)
        return self.frame[keep].reset_index(drop=True)


BYTES_PER_MB = 1_000_000  # MB as the SI unit, as every message says


def max_bytes_from_settings() -> int:
    return int(get_settings().max_file_mb * BYTES_PER_MB)


def read_episodes(
    source: str | os.PathLike | bytes | BinaryIO,
    kind: Kind | str = Kind.TRAINING,
    *,
    max_bytes: int | None = None,
) -> EpisodeFile:
    """Parse and validate a contract file of the given kind.

    Raises ``ContractFileError`` for a file that is too large, not UTF-8, not
    CSV, empty or missing required columns; every other problem is a row
    error in the returned report.
    """
    kind = Kind(kind)
    limit = max_bytes_from_settings() if max_bytes is None else max_bytes
    data = _read_bytes(source, limit)
    text = _decode(data)
    header, rows, numbers = _split_csv(text)
    report = ValidationReport(kind=kind.value, n_rows=len(rows))
    names = _check_header(header, kind, report)

    width = len(header)
    ragged = [i for i, r in enumerate(rows) if len(r) != width]
    for i in ragged:
        report.errors.append(
            RowError(numbers[i], "*", f"{len(rows[i])} fields",
                     f"{width} fields, as in the header")
        )
        rows[i] = (rows[i] + [""] * width)[:width]

    raw = pd.DataFrame(rows, columns=names, dtype=object, index=pd.Index(numbers, name="row"))
    raw = raw.apply(lambda s: s.map(_clean_cell)) if len(raw) else raw
    frame = _typed_frame(raw, kind, report)
    return EpisodeFile(frame=frame, report=report, columns=tuple(names))


def _read_bytes(source, limit: int) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    elif hasattr(source, "read"):
        data = source.read(limit + 1)
    else:
        path = Path(source)
        if not path.is_file():
            raise ContractFileError(f"{path}: no such file")
        size = path.stat().st_size
        if size > limit:
            raise ContractFileError(_too_large(size, limit))
        data = path.read_bytes()
    if len(data) > limit:
        raise ContractFileError(_too_large(len(data), limit))
    return data


def _too_large(size: int, limit: int) -> str:
    return (
        f"file is {size / BYTES_PER_MB:.1f} MB, over the {limit / BYTES_PER_MB:g} MB limit "
        f"(set {env_name('max_file_mb')} or --max-mb to change it)"
    )


def _decode(data: bytes) -> str:
    if b"\x00" in data:
        raise ContractFileError("file is not a CSV text file: it contains binary (NUL) bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ContractFileError(
            f"file is not UTF-8: byte 0x{data[exc.start]:02x} at line {line} "
            f"(save it as 'CSV UTF-8')"
        ) from None
    if not text.strip():
        raise ContractFileError("file is empty")
    return text


def _split_csv(text: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, non-blank rows, and each row's number as a spreadsheet shows it (blank lines
    count, so a bad cell on line 7 is reported as row 7)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows, numbers = [], []
    try:
        start = 1
        for r in reader:
            if r and any(c.strip() for c in r):
                rows.append(r)
                numbers.append(start)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise ContractFileError(f"file is not valid CSV near line {reader.line_num}: {exc}") from None
    if not rows:
        raise ContractFileError("file is empty")
    if len(rows) == 1:
        raise ContractFileError("file has a header but no episode rows")
    return rows[0], rows[1:], numbers[1:]


def _check_header(header: list[str], kind: Kind, report: ValidationReport) -> list[str]:
    names = [h.strip() for h in header]
    seen: set[str] = set()
    dups = sorted({n for n in names if n in seen or seen.add(n)})
    if dups:
        raise ContractFileError("header repeats column(s): " + ", ".join(dups))
    known = column_map(kind)
    required = [c.name for c in columns_for(kind) if c.required]
    missing = [c for c in required if c not in names]
    if missing:
        if len(names) == 1:
            raise ContractFileError(
                f"file does not look like comma-separated values: its header has one "
                f"column {names[0][:60]!r}; missing required column(s): " + ", ".join(missing)
            )
        hints = {n.lower(): n for n in names}
        detail = ", ".join(
            f"{m} (found {hints[m]!r}: names are lower-case)" if m in hints else m for m in missing
        )
        raise ContractFileError(f"missing required column(s) for a {kind.value} file: {detail}")
    every_kind = column_map(Kind.TRAINING)  # contract columns of another kind are not "unknown"
    unknown = [n for n in names if n not in known and n not in every_kind]
    if unknown:
        report.warnings.append("ignored unknown column(s): " + ", ".join(unknown))
    unread = [n for n in names if n not in known and n in every_kind]
    if unread:
        report.warnings.append(f"not read ({kind.value} files do not have them): " + ", ".join(unread))
    return names


def _clean_cell(value: str) -> str:
    value = value.strip()
    if len(value) > 1 and value[0] == "'" and value[1] in FORMULA_TRIGGERS:
        return value[1:]  # undo our own formula escaping on a round trip
    return value


def _typed_frame(raw: pd.DataFrame, kind: Kind, report: ValidationReport) -> pd.DataFrame:
    """Typed columns, indexed 0..n-1, with each row's file row number in ``_row``."""
    out: dict[str, pd.Series] = {"_row": pd.Series(raw.index.to_numpy(dtype=int), index=raw.index)}
    for column in columns_for(kind):
        if column.name not in raw.columns:
            continue
        typed, errors = parse_column(raw[column.name], column)
        out[column.name] = typed
        report.errors.extend(errors)
    if "episode_id" in raw.columns:
        report.errors.extend(duplicate_errors(raw["episode_id"], "episode_id"))
    if kind is Kind.TRAINING:
        report.errors.extend(
            intensity_consistency_errors(out["massage_sessions_per_week"], out["massage_intensity"])
        )
    report.errors.sort()
    return pd.DataFrame(out).reset_index(drop=True)


# --------------------------------------------------------------------------- writing


def escape_formula(value: object) -> object:
    """Prefix a quote to text that a spreadsheet would execute as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def format_cell(value: object) -> object:
    """Contract spelling of one typed value (booleans, region sets, dates), exactly as given
    otherwise: this is also how values are stored, so it never escapes anything."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (set, frozenset)):
        return ";".join(sorted(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return value


def csv_cell(value: object) -> object:
    """A value as written into a CSV cell: contract spelling, then formula escaping."""
    return escape_formula(format_cell(value))


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """Contract CSV of ``frame`` (columns starting with ``_`` are internal and left out)."""
    cleaned = frame.drop(columns=[c for c in frame.columns if str(c).startswith("_")])
    cleaned = cleaned.astype(object).map(csv_cell)
    return cleaned.to_csv(index=False, lineterminator="\n").encode("utf-8")


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``frame`` as contract CSV, atomically (all or nothing)."""
    atomic_write_bytes(path, to_csv_bytes(frame))
