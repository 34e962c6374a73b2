"""Bulk upsert: validate records, COPY them into a staging table, then one set-based upsert
on external_id (with revisions, so bulk writes show in history and the change feed).

Used by `POST /v1/incidents/bulk` (one transaction per request) and `incidents import`
(one transaction per chunk, resumable).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from pydantic import ValidationError

from app.core.errors import validation_errors
from app.incidents.enrich import unknown_code
from app.incidents.fields import BY_NAME, WRITABLE_COLUMNS
from app.incidents.importers.readers import Record
from app.incidents.schemas import IncidentIn

MAX_LISTED = 1000  # failed rows / duplicates listed in a report (all are counted)

# The staging table: a row number and line for reports, the writable columns with the types of
# `incidents` (JSON travels as text through binary COPY), the point, and what the set-based
# steps work out (possible duplicates, changed fields, an unknown country code).
STAGE_COLUMNS = ["row_no", "line_no", *WRITABLE_COLUMNS, "lon", "lat"]
_JSON_COLUMNS = {c for c in WRITABLE_COLUMNS if BY_NAME[c].sql_type == "jsonb"}
STAGE_TYPES = {
    "row_no": "int",
    "line_no": "int",
    **{c: "text" if c in _JSON_COLUMNS else BY_NAME[c].sql_type for c in WRITABLE_COLUMNS},
    "lon": "float8",
    "lat": "float8",
}

STAGE_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS incident_stage ("
    + ", ".join(f"{c} {STAGE_TYPES[c]}" for c in STAGE_COLUMNS)
    + ", dups bigint[], changed text[], unknown_code boolean NOT NULL DEFAULT false) "
    "ON COMMIT DELETE ROWS"
)

# The enrichment rule of single writes (incident_place_fill, migration 0008), set-based. Rows
# that already carry a known alpha-3 code, a country and an admin-1 need nothing.
PLACE_FILL_SQL = """
UPDATE incident_stage s
SET (country, country_code, admin1, unknown_code) = (
    SELECT f.country, f.country_code, f.admin1, f.unknown_code
    FROM incident_place_fill(s.country, s.country_code, s.admin1, s.lon, s.lat) f)
WHERE s.country IS NULL OR s.admin1 IS NULL OR s.country_code IS NULL
   OR NOT EXISTS (SELECT 1 FROM countries c WHERE c.iso_a3 = s.country_code)
"""

UNKNOWN_CODES_SQL = (
    "DELETE FROM incident_stage WHERE unknown_code RETURNING row_no, line_no, country_code"
)

# Possible duplicates of new incidents (incident_possible_duplicates, migration 0005: the same
# definition single creates use). Flagged, never merged.
DUPLICATES_SQL = """
UPDATE incident_stage s SET dups = d.ids
FROM (
    SELECT s2.row_no, incident_possible_duplicates(
        s2.lon, s2.lat, s2.event_type, s2.event_date, s2.external_id,
        ARRAY[s2.actor1, s2.assoc_actor_1, s2.actor2, s2.assoc_actor_2]) AS ids
    FROM incident_stage s2
    WHERE (s2.external_id IS NULL
           OR NOT EXISTS (SELECT 1 FROM incidents e WHERE e.external_id = s2.external_id))
      AND coalesce(s2.actor1, s2.assoc_actor_1, s2.actor2, s2.assoc_actor_2) IS NOT NULL
) d
WHERE d.row_no = s.row_no AND cardinality(d.ids) > 0
"""

# Staging keeps JSON as text (binary COPY); it becomes jsonb on the way in.
_EXPR = {c: f"s.{c}::jsonb" for c in _JSON_COLUMNS}
_SELECT = ", ".join(_EXPR.get(c, c).removeprefix("s.") for c in WRITABLE_COLUMNS)

# Which fields an update changes, for the revision (compared before the upsert).
CHANGED_SQL = (
    "UPDATE incident_stage s SET changed = array_remove(ARRAY["  # noqa: S608 (constant SQL)
    + ", ".join(
        f"CASE WHEN i.{c} IS DISTINCT FROM {_EXPR.get(c, 's.' + c)} THEN '{c}' END"
        for c in WRITABLE_COLUMNS
    )
    + ", CASE WHEN ST_Y(i.geom) IS DISTINCT FROM s.lat THEN 'latitude' END"
    + ", CASE WHEN ST_X(i.geom) IS DISTINCT FROM s.lon THEN 'longitude' END"
    + ", CASE WHEN i.deleted_at IS NOT NULL THEN 'deleted_at' END"
    + "], NULL) FROM incidents i WHERE i.external_id = s.external_id"
)

_SET = ", ".join(f"{c} = EXCLUDED.{c}" for c in WRITABLE_COLUMNS)
_OLD = ", ".join(f"i.{c}" for c in WRITABLE_COLUMNS)
_NEW = ", ".join(f"EXCLUDED.{c}" for c in WRITABLE_COLUMNS)

# One statement: insert new external_ids, update changed ones (a re-posted deleted incident
# comes back), leave identical ones alone; every row written gets its revision.
UPSERT_SQL = (
    "WITH src AS (SELECT DISTINCT ON (coalesce(external_id, 'row:' || row_no)) * "  # noqa: S608
    "FROM incident_stage ORDER BY coalesce(external_id, 'row:' || row_no), row_no DESC), "
    "up AS (INSERT INTO incidents AS i (" + ", ".join(WRITABLE_COLUMNS) + ", geom, "
    "possible_duplicates) SELECT " + _SELECT + ", "
    "ST_SetSRID(ST_MakePoint(lon, lat), 4326), coalesce(dups, '{}') FROM src ORDER BY row_no "
    "ON CONFLICT (external_id) DO UPDATE SET " + _SET + ", geom = EXCLUDED.geom, "
    "version = i.version + 1, updated_at = now(), deleted_at = NULL "
    "WHERE (" + _OLD + ", ST_X(i.geom), ST_Y(i.geom), i.deleted_at IS NOT NULL) "
    "IS DISTINCT FROM (" + _NEW + ", ST_X(EXCLUDED.geom), ST_Y(EXCLUDED.geom), false) "
    "RETURNING i.*, (i.xmax = 0) AS inserted), "
    "rev AS (INSERT INTO incident_revisions (incident_id, version, op, changed_by, "
    "changed_fields) SELECT i.id, i.version, CASE WHEN i.inserted THEN 'create' "
    "ELSE 'update' END, $1, CASE WHEN i.inserted THEN '{}'::text[] ELSE coalesce(("
    "SELECT s.changed FROM src s WHERE s.external_id = i.external_id), '{}') END "
    "FROM up i) "
    "SELECT count(*) FILTER (WHERE inserted) AS inserted, "
    "count(*) FILTER (WHERE NOT inserted) AS updated FROM up"
)


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
    # The reader thread (parsing the next chunk) and the database steps both report errors.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

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
        if column in _JSON_COLUMNS:
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


async def ensure_stage(conn: asyncpg.Connection) -> None:
    await conn.execute(STAGE_DDL)


async def upsert_stage(
    conn: asyncpg.Connection,
    rows: list[tuple[Any, ...]],
    *,
    changed_by: str,
    report: BulkReport,
    statement_timeout_s: float | None = None,
) -> None:
    """COPY `rows` into the staging table and upsert them. Call inside a transaction.
    `statement_timeout_s` replaces the connection's statement timeout for these statements."""
    if not rows:
        return
    timeout = statement_timeout_s
    if timeout is not None:
        await conn.execute(f"SET LOCAL statement_timeout = {int(timeout * 1000)}")
    await conn.execute("TRUNCATE incident_stage", timeout=timeout)
    await conn.copy_records_to_table(
        "incident_stage", records=rows, columns=STAGE_COLUMNS, timeout=timeout
    )
    await conn.execute("ANALYZE incident_stage", timeout=timeout)
    await conn.execute(PLACE_FILL_SQL, timeout=timeout)
    for bad in await conn.fetch(UNKNOWN_CODES_SQL, timeout=timeout):
        report.add_error(
            RowProblem(bad["row_no"], bad["line_no"], [unknown_code(bad["country_code"])])
        )
    await conn.execute(CHANGED_SQL, timeout=timeout)
    await conn.execute(DUPLICATES_SQL, timeout=timeout)
    flagged = await conn.fetch(
        "SELECT row_no, external_id, dups FROM incident_stage WHERE dups IS NOT NULL "
        "ORDER BY row_no",
        timeout=timeout,
    )
    result = await conn.fetchrow(UPSERT_SQL, changed_by, timeout=timeout)
    staged = await conn.fetchval("SELECT count(*) FROM incident_stage", timeout=timeout)
    report.inserted += int(result["inserted"])
    report.updated += int(result["updated"])
    report.unchanged += int(staged) - int(result["inserted"]) - int(result["updated"])
    report.duplicates_flagged += len(flagged)
    for row in flagged:
        if len(report.duplicates) < MAX_LISTED:
            report.duplicates.append(
                {
                    "row": row["row_no"],
                    "external_id": row["external_id"],
                    "possible_duplicates": [str(i) for i in row["dups"]],
                }
            )
