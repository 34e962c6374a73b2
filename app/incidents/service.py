"""Incident storage: create, read, update, soft delete, history. All SQL for single incidents.

Every write is one statement that changes the row and appends its revision (who, when, which
fields, the full new state), inside the request's transaction; the revision table is the
history, the audit trail and the source of the change feed.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any

import asyncpg
import orjson
from pydantic import ValidationError

from app.core.errors import (
    Conflict,
    Gone,
    NotFound,
    PreconditionFailed,
    Unprocessable,
    validation_errors,
)
from app.incidents.enrich import enrich
from app.incidents.fields import ACTOR_FIELDS, BY_NAME, WRITABLE, WRITABLE_COLUMNS, Kind
from app.incidents.schemas import IncidentIn, IncidentPatch
from app.incidents.sql import (
    COMPARED_FIELDS,
    DUPLICATE_CANDIDATES_SQL,
    INCIDENT_JSON,
    VERSION_JSON,
)

# Values of the writable columns are $1..$N in WRITABLE_COLUMNS order; then the point.
_N = len(WRITABLE_COLUMNS)
_VALUES = [
    f"${n}::jsonb" if BY_NAME[c].kind is Kind.sources else f"${n}"
    for n, c in enumerate(WRITABLE_COLUMNS, start=1)
]
_POINT = f"ST_SetSRID(ST_MakePoint(${_N + 1}, ${_N + 2}), 4326)"
# ... then $N+3 op, $N+4 changed_by, $N+5 changed_fields, $N+6 the extra value of each write.
_OP, _BY, _FIELDS, _EXTRA = (f"${_N + k}" for k in (3, 4, 5, 6))

_REVISION_CTE = (
    "rev AS (INSERT INTO incident_revisions "  # noqa: S608 (constant SQL pieces, values are bound)
    "(incident_id, version, op, changed_by, changed_fields) "
    f"SELECT i.id, i.version, {_OP}, {_BY}, {_FIELDS}::text[] FROM w i) "
)
_RESULT = f"SELECT i.id, i.version, ({INCIDENT_JSON})::text AS doc FROM w i"  # noqa: S608

INSERT_SQL = (
    f"WITH w AS (INSERT INTO incidents ({', '.join(WRITABLE_COLUMNS)}, geom, "  # noqa: S608
    f"possible_duplicates) VALUES ({', '.join(_VALUES)}, {_POINT}, {_EXTRA}::bigint[]) "
    "RETURNING *), " + _REVISION_CTE + _RESULT
)

UPDATE_SQL = (
    "WITH w AS (UPDATE incidents SET "  # noqa: S608 (constant SQL pieces, values are bound)
    + ", ".join(f"{c} = {v}" for c, v in zip(WRITABLE_COLUMNS, _VALUES, strict=True))
    + f", geom = {_POINT}, version = version + 1, updated_at = greatest(now(), updated_at) "
    f"WHERE id = {_EXTRA}::bigint RETURNING *), " + _REVISION_CTE + _RESULT
)

DELETE_SQL = (
    "WITH w AS (UPDATE incidents SET deleted_at = now(), version = version + 1, "
    "updated_at = greatest(now(), updated_at) WHERE id = $1 RETURNING *), "
    "rev AS (INSERT INTO incident_revisions "
    "(incident_id, version, op, changed_by, changed_fields) "
    "SELECT i.id, i.version, 'delete', $2, '{}' FROM w i) "
    "SELECT i.id, i.version FROM w i"
)

# Writable fields whose JSON is derived from their column (uncertainty_km shows its
# precision's default): a patch merges into the stored values, so a default stays a default.
DERIVED_WRITABLE = tuple(f.name for f in WRITABLE if f.column and f.select is not None)
_STORED = "json_build_object(" + ", ".join(f"'{n}', i.{n}" for n in DERIVED_WRITABLE) + ")"
LOCK_SQL = (
    f"SELECT i.version, ({INCIDENT_JSON})::text AS doc, {_STORED}::text AS stored "  # noqa: S608
    "FROM incidents i WHERE i.id = $1 AND i.deleted_at IS NULL FOR UPDATE"
)


REVISIONS_SQL = f"""
SELECT r.version, json_build_object(
    'version', r.version, 'op', r.op, 'changed_by', r.changed_by, 'changed_at', r.changed_at,
    'changed_fields', r.changed_fields, 'incident', {VERSION_JSON})::text AS doc
FROM incident_revisions r
WHERE r.incident_id = $1 AND r.version > $2
ORDER BY r.version
LIMIT $3
"""  # noqa: S608 (constant SQL)


def _values(model: IncidentIn) -> list[Any]:
    """The writable columns' values in WRITABLE_COLUMNS order, then longitude, latitude."""
    data = model.model_dump()
    values: list[Any] = []
    for column in WRITABLE_COLUMNS:
        value = data[column]
        if BY_NAME[column].kind is Kind.sources:
            value = orjson.dumps(model.model_dump(mode="json")[column]).decode()
        values.append(value)
    return [*values, model.longitude, model.latitude]


def _duplicate(external_id: str | None) -> Conflict:
    return Conflict(
        f"An incident with external_id '{external_id}' already exists.",
        errors=[{"field": "external_id", "message": "already exists", "value": external_id}],
    )


async def create_incident(
    conn: asyncpg.Connection, *, incident: IncidentIn, changed_by: str | None
) -> tuple[int, int, str]:
    """Insert one incident (as given: see `enrich` for what is filled in) and its first
    revision. Returns (id, version, json)."""
    duplicates = await conn.fetchval(
        DUPLICATE_CANDIDATES_SQL,
        incident.longitude,
        incident.latitude,
        incident.event_type,
        incident.event_date,
        incident.external_id,
        *(getattr(incident, name) for name in ACTOR_FIELDS),
    )
    try:
        async with conn.transaction():  # a savepoint: the request's transaction survives
            row = await conn.fetchrow(
                INSERT_SQL, *_values(incident), "create", changed_by, [], duplicates
            )
    except asyncpg.UniqueViolationError as exc:
        raise _duplicate(incident.external_id) from exc
    return int(row["id"]), int(row["version"]), str(row["doc"])


async def get_incident(
    conn: asyncpg.Connection,
    *,
    incident_id: int,
    as_of: dt.datetime | None = None,
    doc: str = INCIDENT_JSON,
    what: str = "incident",
) -> tuple[int, str]:
    """(version, json) of a live incident, or 404; with `as_of`, the version current at that
    instant: 404 when it did not exist yet, 410 when it had been deleted by then. `doc`: the
    JSON expression over alias `i` (an OGC API feature, say)."""
    if as_of is None:
        row = await conn.fetchrow(get_sql(doc), incident_id)
        if row is None:
            raise NotFound(f"No {what} with id '{incident_id}'.")
        return int(row["version"]), str(row["doc"])
    row = await conn.fetchrow(as_of_sql(doc), incident_id, as_of)
    when = as_of.isoformat()
    if row is None:
        raise NotFound(f"No {what} with id '{incident_id}' existed at {when}.")
    if row["deleted_at"] is not None:
        raise Gone(
            f"The {what} '{incident_id}' had been deleted at {when} (version {row['version']}).",
            extra={"deleted_at": row["deleted_at"].isoformat(), "version": int(row["version"])},
        )
    return int(row["version"]), str(row["doc"])


@lru_cache(maxsize=8)
def get_sql(doc: str) -> str:
    """One live incident as `doc` (a JSON expression over alias `i`)."""
    return (
        f"SELECT i.version, ({doc})::text AS doc FROM incidents i "  # noqa: S608
        "WHERE i.id = $1 AND i.deleted_at IS NULL"
    )


@lru_cache(maxsize=8)
def as_of_sql(doc: str) -> str:
    """One incident as `doc` at instant $2, deleted or not (the caller tells them apart). The
    highest version valid then (ranges do not overlap; the order only makes it certain)."""
    return (
        f"SELECT i.version, i.deleted_at, ({doc})::text AS doc "  # noqa: S608
        "FROM incidents_as_of($2::timestamptz) i WHERE i.id = $1 ORDER BY i.version DESC LIMIT 1"
    )


GET_SQL = get_sql(INCIDENT_JSON)
AS_OF_SQL = as_of_sql(INCIDENT_JSON)


def _check_precondition(incident_id: int, version: int, if_match: set[int] | None) -> None:
    if if_match is not None and version not in if_match:
        raise PreconditionFailed(
            f"Incident {incident_id} is at version {version}; your If-Match does not match. "
            "GET it again and retry.",
            extra={"current_version": version},
        )


async def _lock(
    conn: asyncpg.Connection, incident_id: int
) -> tuple[int, dict[str, Any], dict[str, Any]]:
    """(version, the incident's JSON, its stored values as input) of a live incident, locked."""
    row = await conn.fetchrow(LOCK_SQL, incident_id)
    if row is None:
        raise NotFound(f"No incident with id '{incident_id}'.")
    doc = orjson.loads(row["doc"])
    return int(row["version"]), doc, {**doc, **orjson.loads(row["stored"])}


def _as_input(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored incident's JSON turned back into input fields."""
    fields = set(IncidentIn.model_fields) - {"geometry"}
    return {k: v for k, v in doc.items() if k in fields}


def merge_patch(current: dict[str, Any], patch: IncidentPatch) -> IncidentIn:
    """Apply a partial update and validate the result as a whole (422 naming each field)."""
    merged = _as_input(current)
    changes = patch.model_dump(mode="json", exclude_unset=True)
    geometry = changes.pop("geometry", None)
    merged.update(changes)
    if geometry is not None:
        merged["longitude"], merged["latitude"] = geometry["coordinates"][:2]
    try:
        return IncidentIn.model_validate(merged)
    except ValidationError as exc:
        errors = validation_errors(exc.errors())
        raise Unprocessable(
            "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]), errors=errors
        ) from exc


def changed_fields(before: IncidentIn | dict[str, Any], after: IncidentIn) -> list[str]:
    old = before.model_dump(mode="json") if isinstance(before, IncidentIn) else before
    new = after.model_dump(mode="json")
    return [f for f in COMPARED_FIELDS if old.get(f) != new.get(f)]


async def update_incident(
    conn: asyncpg.Connection,
    *,
    incident_id: int,
    patch: IncidentPatch,
    if_match: set[int] | None,
    changed_by: str | None,
) -> tuple[int, str]:
    """Returns (version, json). A patch that changes nothing keeps the version. The merged
    incident is enriched as a new one is, on the same connection that holds the row lock."""
    version, current, stored = await _lock(conn, incident_id)
    _check_precondition(incident_id, version, if_match)
    after = await enrich(conn, merge_patch(stored, patch))
    before: IncidentIn | dict[str, Any]
    try:
        before = IncidentIn.model_validate(_as_input(stored))
    except ValidationError:
        # Stored under older or looser rules (a direct load): compare the stored values.
        before = _as_input(stored)
    fields = changed_fields(before, after)
    if not fields:
        return version, orjson.dumps(current).decode()
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                UPDATE_SQL, *_values(after), "update", changed_by, fields, incident_id
            )
    except asyncpg.UniqueViolationError as exc:
        raise _duplicate(after.external_id) from exc
    return int(row["version"]), str(row["doc"])


async def delete_incident(
    conn: asyncpg.Connection, *, incident_id: int, if_match: set[int] | None, changed_by: str | None
) -> int:
    """Soft delete: hidden from queries, kept in history. Returns the tombstone's version."""
    version, _, _ = await _lock(conn, incident_id)
    _check_precondition(incident_id, version, if_match)
    row = await conn.fetchrow(DELETE_SQL, incident_id, changed_by)
    return int(row["version"])


async def list_revisions(
    conn: asyncpg.Connection, *, incident_id: int, after_version: int, limit: int
) -> tuple[list[str], dict[str, Any] | None]:
    """Revision JSON documents after `after_version`, oldest first; and the next cursor's
    payload, if there are more."""
    exists = await conn.fetchval("SELECT 1 FROM incidents WHERE id = $1", incident_id)
    if exists is None:
        raise NotFound(f"No incident with id '{incident_id}'.")
    rows = await conn.fetch(REVISIONS_SQL, incident_id, after_version, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    following = {"v": int(rows[-1]["version"])} if more and rows else None
    return [str(r["doc"]) for r in rows], following
