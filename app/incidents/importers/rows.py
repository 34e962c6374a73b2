"""The Python path of a bulk load: records validated by `IncidentIn`, staged as typed tuples,
and the load's report. JSON arrays, GeoJSON and UCDP files take it for every row; CSV and
NDJSON only for the rows SQL does not vouch for (`transform`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from app.core.errors import validation_errors
from app.incidents.fields import BY_NAME, WRITABLE_COLUMNS
from app.incidents.importers.readers import Record
from app.incidents.schemas import IncidentIn

MAX_LISTED = 1000  # failed rows / duplicates listed in a report (all are counted)

# A staged row: a row number and line for reports, the writable columns with the types of
# `incidents` (JSON travels as text), the point.
STAGE_COLUMNS = ["row_no", "line_no", *WRITABLE_COLUMNS, "lon", "lat"]
JSON_COLUMNS = {c for c in WRITABLE_COLUMNS if BY_NAME[c].sql_type == "jsonb"}
STAGE_TYPES = {
    "row_no": "bigint",
    "line_no": "int",
    **{c: "text" if c in JSON_COLUMNS else BY_NAME[c].sql_type for c in WRITABLE_COLUMNS},
    "lon": "float8",
    "lat": "float8",
}


@dataclass
class RowProblem:
    row: int
    line: int | None
    errors: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"row": self.row, "errors": self.errors}
        if self.line is not None:
            out["line"] = self.line
        return out


@dataclass
class BulkReport:
    received: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    errors: list[RowProblem] = field(default_factory=list)
    duplicates: list[dict[str, Any]] = field(default_factory=list)
    duplicates_flagged: int = 0
    last_row: int = 0  # the last record read (resumable imports store it)
    # Seconds spent in each step of the pipeline (the import benchmark prints them).
    timings: dict[str, float] = field(default_factory=dict)
    # The reader thread (parsing the next chunk) and the database steps both report errors.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.timings[step] = self.timings.get(step, 0.0) + time.perf_counter() - started

    def add_error(self, problem: RowProblem) -> None:
        with self._lock:
            self.failed += 1
            if len(self.errors) < MAX_LISTED:
                self.errors.append(problem)

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "errors": [e.as_dict() for e in sorted(self.errors, key=lambda e: e.row)],
            "possible_duplicates": self.duplicates,
            "duplicates_flagged": self.duplicates_flagged,
        }


def validate(record: Record) -> tuple[IncidentIn | None, RowProblem | None]:
    if record.data is None:
        return None, RowProblem(
            record.row, record.line, [{"field": "row", "message": record.error or "unreadable"}]
        )
    try:
        return IncidentIn.model_validate(record.data), None
    except ValidationError as exc:
        return None, RowProblem(record.row, record.line, validation_errors(exc.errors()))


def stage_tuple(row_no: int, line: int | None, incident: IncidentIn) -> tuple[Any, ...]:
    """One staging row, in STAGE_COLUMNS order."""
    values: list[Any] = [row_no, line]
    for column in WRITABLE_COLUMNS:
        value = getattr(incident, column)
        if column in JSON_COLUMNS:
            value = orjson.dumps(incident.model_dump(mode="json", include={column})[column])
            value = value.decode()
        values.append(value)
    return (*values, incident.longitude, incident.latitude)


@dataclass
class Pending:
    """A valid row with a place name and no point: placed through the gazetteer first."""

    row: int
    line: int | None
    incident: IncidentIn


def take(
    records: Iterator[Record], report: BulkReport, size: int
) -> tuple[list[tuple[Any, ...]], list[Pending], bool]:
    """Reads and validates up to `size` records: (staging rows, rows needing a place lookup,
    whether the input is exhausted). Runs in a worker thread."""
    rows: list[tuple[Any, ...]] = []
    unresolved: list[Pending] = []
    for record in records:
        report.received += 1
        report.last_row = record.row
        incident, problem = validate(record)
        if problem is not None:
            report.add_error(problem)
        elif incident is not None:
            if incident.latitude is None:
                unresolved.append(Pending(record.row, record.line, incident))
            else:
                rows.append(stage_tuple(record.row, record.line, incident))
        if len(rows) + len(unresolved) >= size:
            return rows, unresolved, False
    return rows, unresolved, True
