"""Bulk upsert: validate records, COPY them into a staging table, then one set-based upsert
on external_id (with revisions, so bulk writes show in history and the change feed).

Used by `POST /v1/incidents/bulk` (one transaction per request) and `incidents import`
(one transaction per chunk, resumable).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from pydantic import ValidationError

from app.core.errors import validation_errors
from app.incidents.importers.readers import Record
from app.incidents.schemas import IncidentIn
from app.incidents.sql import INCIDENT_JSON, WRITABLE_COLUMNS

MAX_LISTED = 1000  # failed rows / duplicates listed in a report (all are counted)

STAGE_COLUMNS = ["row_no", *WRITABLE_COLUMNS, "lon", "lat"]
STAGE_TYPES = {
    "row_no": "int",
    "event_date": "date",
    "event_date_end": "date",
    "time_precision": "smallint",
    "civilian_targeting": "boolean",
    "fatalities": "int",
    "fatalities_low": "int",
    "fatalities_high": "int",
    "geo_precision": "smallint",
    "sources": "text",
    "tags": "text[]",
    "lon": "float8",
    "lat": "float8",
}

STAGE_COUNTRY_CODE = STAGE_COLUMNS.index("country_code")
STAGE_ADMIN1 = STAGE_COLUMNS.index("admin1")

STAGE_DDL = (
    "CREATE TEMP TABLE IF NOT EXISTS incident_stage ("
    + ", ".join(f"{c} {STAGE_TYPES.get(c, 'text')}" for c in STAGE_COLUMNS)
    + ", dups bigint[], changed text[]) ON COMMIT DELETE ROWS"
)

# Fills country / country_code / admin1 from the point where the file left them out.
LOCATE_SQL = """
UPDATE incident_stage s SET
    country = coalesce(s.country, loc.country),
    country_code = coalesce(s.country_code, loc.country_code),
    admin1 = coalesce(s.admin1, loc.admin1)
FROM (
    SELECT s2.row_no, c.name AS country, c.iso_a3 AS country_code, a1.name AS admin1
    FROM incident_stage s2
    CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(s2.lon, s2.lat), 4326) AS pt) g
    LEFT JOIN LATERAL (
        SELECT a.name, a.iso_a3 FROM area_parts p JOIN areas a ON a.id = p.area_id
        WHERE p.geom && g.pt AND ST_Intersects(p.geom, g.pt) AND a.kind = 'country' LIMIT 1
    ) c ON true
    LEFT JOIN LATERAL (
        SELECT a.name FROM area_parts p JOIN areas a ON a.id = p.area_id
        WHERE p.geom && g.pt AND ST_Intersects(p.geom, g.pt) AND a.kind = 'admin1' LIMIT 1
    ) a1 ON true
    WHERE s2.country_code IS NULL OR s2.admin1 IS NULL
) loc
WHERE loc.row_no = s.row_no
"""

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
_EXPR = {"sources": "s.sources::jsonb"}
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
    "changed_fields, data) SELECT i.id, i.version, CASE WHEN i.inserted THEN 'create' "
    "ELSE 'update' END, $1, CASE WHEN i.inserted THEN '{}'::text[] ELSE coalesce(("
    "SELECT s.changed FROM src s WHERE s.external_id = i.external_id), '{}') END, ("
    + INCIDENT_JSON
    + ")::jsonb FROM up i) "
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

    def add_error(self, problem: RowProblem) -> None:
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
            "errors": [e.as_dict() for e in self.errors],
            "possible_duplicates": self.duplicates,
            "duplicates_flagged": self.duplicates_flagged,
        }


def _norm(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).strip()


class Countries:
    """Country lookups done in Python during ingest (250 rows, loaded once)."""

    def __init__(self, rows: Iterable[asyncpg.Record]) -> None:
        self.by_a2: dict[str, str] = {}
        self.a3: set[str] = set()
        self.by_name: dict[str, str] = {}
        self.name_of: dict[str, str] = {}
        for r in rows:
            self.by_a2[r["iso_a2"]] = r["iso_a3"]
            self.a3.add(r["iso_a3"])
            self.name_of[r["iso_a3"]] = r["name"]
            for name in [r["name"], *(r["alt_names"] or [])]:
                self.by_name.setdefault(_norm(name), r["iso_a3"])

    @classmethod
    async def load(cls, conn: asyncpg.Connection) -> Countries:
        return cls(await conn.fetch("SELECT iso_a2, iso_a3, name, alt_names FROM countries"))

    def code(self, incident: IncidentIn) -> tuple[str | None, str | None]:
        """(alpha-3, error message) for an incident's country_code / country."""
        if incident.country_code:
            code = incident.country_code.upper()
            if len(code) == 2:
                found = self.by_a2.get(code)
                return (found, None) if found else (None, f"unknown country code '{code}'")
            if self.a3 and code not in self.a3:
                return None, f"unknown country code '{code}'"
            return code, None
        if incident.country:
            return self.by_name.get(_norm(incident.country)), None
        return None, None


def validate(record: Record, countries: Countries) -> tuple[IncidentIn | None, RowProblem | None]:
    if record.data is None:
        return None, RowProblem(
            record.row, record.line, [{"field": "row", "message": record.error or "unreadable"}]
        )
    try:
        incident = IncidentIn.model_validate(record.data)
    except ValidationError as exc:
        return None, RowProblem(record.row, record.line, validation_errors(exc.errors()))
    code, error = countries.code(incident)
    if error:
        return None, RowProblem(
            record.row, record.line, [{"field": "country_code", "message": error}]
        )
    incident.country_code = code
    if code and not incident.country:
        incident.country = countries.name_of.get(code)
    return incident, None


def stage_tuple(row_no: int, incident: IncidentIn) -> tuple[Any, ...]:
    """One staging row, in STAGE_COLUMNS order."""
    sources = (
        orjson.dumps([s.model_dump(mode="json") for s in incident.sources]).decode()
        if incident.sources
        else "[]"
    )
    return (
        row_no,
        incident.external_id,
        incident.event_date,
        incident.event_date_end,
        incident.time_precision,
        incident.disorder_type,
        incident.event_type,
        incident.sub_event_type,
        incident.actor1,
        incident.assoc_actor_1,
        incident.actor2,
        incident.assoc_actor_2,
        incident.civilian_targeting,
        incident.fatalities,
        incident.fatalities_low,
        incident.fatalities_high,
        incident.country,
        incident.country_code,
        incident.admin1,
        incident.admin2,
        incident.admin3,
        incident.location,
        incident.geo_precision,
        incident.source,
        incident.source_scale,
        sources,
        incident.notes,
        incident.tags,
        incident.longitude,
        incident.latitude,
    )


def take(
    records: Iterator[Record],
    countries: Countries,
    report: BulkReport,
    size: int,
    resolver: dict[tuple[str, str | None], tuple[float, float] | None] | None = None,
) -> tuple[list[tuple[Any, ...]], list[tuple[int, IncidentIn]], bool]:
    """Reads and validates up to `size` records: (staging rows, rows needing a place lookup,
    whether the input is exhausted). Runs in a worker thread."""
    rows: list[tuple[Any, ...]] = []
    unresolved: list[tuple[int, IncidentIn]] = []
    for record in records:
        report.received += 1
        report.last_row = record.row
        incident, problem = validate(record, countries)
        if problem is not None:
            report.add_error(problem)
        elif incident is not None:
            if incident.latitude is None:
                unresolved.append((record.row, incident))
            else:
                rows.append(stage_tuple(record.row, incident))
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
    locate: bool = True,
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
    if locate and any(r[STAGE_COUNTRY_CODE] is None or r[STAGE_ADMIN1] is None for r in rows):
        await conn.execute(LOCATE_SQL, timeout=timeout)
    await conn.execute(CHANGED_SQL, timeout=timeout)
    await conn.execute(DUPLICATES_SQL, timeout=timeout)
    flagged = await conn.fetch(
        "SELECT row_no, external_id, dups FROM incident_stage WHERE dups IS NOT NULL "
        "ORDER BY row_no",
        timeout=timeout,
    )
    result = await conn.fetchrow(UPSERT_SQL, changed_by, timeout=timeout)
    report.inserted += int(result["inserted"])
    report.updated += int(result["updated"])
    report.unchanged += len(rows) - int(result["inserted"]) - int(result["updated"])
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
