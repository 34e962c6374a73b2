"""Incident storage: create, read, update, soft delete, history. All SQL for single incidents.

Every write is one transaction that changes the row and appends its revision (who, when,
which fields, the full new state); the revision table is the history, the audit trail and the
source of the change feed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import orjson
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.core.db import Database
from app.core.errors import Conflict, NotFound, PreconditionFailed, Unprocessable, validation_errors
from app.incidents.schemas import IncidentIn, IncidentPatch
from app.incidents.sql import (
    COMPARED_FIELDS,
    DUPLICATE_CANDIDATES_SQL,
    INCIDENT_JSON,
    WRITABLE_COLUMNS,
)

MAX_ID = 2**63 - 1

_VALUE_EXPR = {"sources": "CAST(:sources AS jsonb)"}
_POINT = "ST_SetSRID(ST_MakePoint(:longitude, :latitude), 4326)"

_REVISION_CTE = (
    "rev AS (INSERT INTO incident_revisions "
    "(incident_id, version, op, changed_by, changed_fields, data) "
    "SELECT i.id, i.version, :op, :changed_by, :changed_fields, (" + INCIDENT_JSON + ")::jsonb "
    "FROM w i) "
)

INSERT_SQL = (
    "WITH w AS (INSERT INTO incidents ("  # noqa: S608 (constant SQL pieces, values are bound)
    + ", ".join(WRITABLE_COLUMNS)
    + ", geom, possible_duplicates) VALUES ("
    + ", ".join(_VALUE_EXPR.get(c, ":" + c) for c in WRITABLE_COLUMNS)
    + ", "
    + _POINT
    + ", :possible_duplicates) RETURNING *), "
    + _REVISION_CTE
    + "SELECT i.id, i.version, ("
    + INCIDENT_JSON
    + ")::text AS doc FROM w i"
)

UPDATE_SQL = (
    "WITH w AS (UPDATE incidents SET "  # noqa: S608 (constant SQL pieces, values are bound)
    + ", ".join(f"{c} = {_VALUE_EXPR.get(c, ':' + c)}" for c in WRITABLE_COLUMNS)
    + ", geom = "
    + _POINT
    + ", version = version + 1, updated_at = now() "
    "WHERE id = :id RETURNING *), "
    + _REVISION_CTE
    + "SELECT i.id, i.version, ("
    + INCIDENT_JSON
    + ")::text AS doc FROM w i"
)

DELETE_SQL = (
    "WITH w AS (UPDATE incidents SET deleted_at = now(), version = version + 1, "  # noqa: S608 (constant SQL pieces, values are bound)
    "updated_at = now() WHERE id = :id RETURNING *), "
    + _REVISION_CTE
    + "SELECT i.id, i.version FROM w i"
)

LOCK_SQL = (
    "SELECT i.version, (" + INCIDENT_JSON + ")::text AS doc FROM incidents i "  # noqa: S608 (constant SQL pieces, values are bound)
    "WHERE i.id = :id AND i.deleted_at IS NULL FOR UPDATE"
)

GET_SQL = (
    "SELECT i.version, (" + INCIDENT_JSON + ")::text AS doc FROM incidents i "  # noqa: S608 (constant SQL pieces, values are bound)
    "WHERE i.id = $1 AND i.deleted_at IS NULL"
)

REVISIONS_SQL = """
SELECT r.version, json_build_object(
    'version', r.version, 'op', r.op, 'changed_by', r.changed_by, 'changed_at', r.changed_at,
    'changed_fields', r.changed_fields, 'incident', r.data)::text AS doc
FROM incident_revisions r
WHERE r.incident_id = $1 AND r.version > $2
ORDER BY r.version
LIMIT $3
"""


def parse_id(raw: str, *, what: str = "incident") -> int:
    """The internal key of an id; an id that cannot exist is simply not found."""
    if not raw.isdigit() or len(raw) > 19 or not 0 < int(raw) <= MAX_ID:
        raise NotFound(f"No {what} with id '{raw[:64]}'.")
    return int(raw)


def _params(model: IncidentIn) -> dict[str, Any]:
    data = model.model_dump(mode="json")
    params = {c: data[c] for c in WRITABLE_COLUMNS}
    params["sources"] = orjson.dumps(data["sources"]).decode()
    # Dates travel as date objects (asyncpg is typed).
    params["event_date"] = model.event_date
    params["event_date_end"] = model.event_date_end
    params["latitude"] = model.latitude
    params["longitude"] = model.longitude
    return params


def _duplicate(exc: IntegrityError, external_id: str | None) -> Conflict | None:
    orig = getattr(exc.orig, "__cause__", None) or exc.orig
    if isinstance(orig, asyncpg.UniqueViolationError) or "unique" in str(exc.orig).lower():
        return Conflict(
            f"An incident with external_id '{external_id}' already exists.",
            errors=[{"field": "external_id", "message": "already exists", "value": external_id}],
        )
    return None


async def create_incident(
    conn: AsyncConnection, *, incident: IncidentIn, changed_by: str | None
) -> tuple[int, int, str]:
    """Insert one incident and its first revision. Returns (id, version, json)."""
    params = _params(incident)
    duplicates = (await conn.execute(text(DUPLICATE_CANDIDATES_SQL), params)).scalar_one()
    params.update(
        op="create", changed_by=changed_by, changed_fields=[], possible_duplicates=duplicates
    )
    try:
        async with conn.begin_nested():
            row = (await conn.execute(text(INSERT_SQL), params)).one()
    except IntegrityError as exc:
        conflict = _duplicate(exc, incident.external_id)
        if conflict is not None:
            raise conflict from exc
        raise
    return int(row.id), int(row.version), str(row.doc)


async def get_incident(db: Database, *, incident_id: int) -> tuple[int, str]:
    """(version, json) of a live incident, or 404."""
    async with db.read() as conn:
        row = await conn.fetchrow(GET_SQL, incident_id)
    if row is None:
        raise NotFound(f"No incident with id '{incident_id}'.")
    return int(row["version"]), str(row["doc"])


def _check_precondition(incident_id: int, version: int, if_match: set[int] | None) -> None:
    if if_match is not None and version not in if_match:
        raise PreconditionFailed(
            f"Incident {incident_id} is at version {version}; your If-Match does not match. "
            "GET it again and retry.",
            extra={"current_version": version},
        )


async def _lock(conn: AsyncConnection, incident_id: int) -> tuple[int, dict[str, Any]]:
    row = (await conn.execute(text(LOCK_SQL), {"id": incident_id})).one_or_none()
    if row is None:
        raise NotFound(f"No incident with id '{incident_id}'.")
    return int(row.version), orjson.loads(row.doc)


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
    conn: AsyncConnection,
    *,
    incident_id: int,
    patch: IncidentPatch,
    if_match: set[int] | None,
    changed_by: str | None,
    enrich: Callable[[IncidentIn], Awaitable[IncidentIn]] | None = None,
) -> tuple[int, str]:
    """Returns (version, json). A patch that changes nothing keeps the version."""
    version, current = await _lock(conn, incident_id)
    _check_precondition(incident_id, version, if_match)
    after = merge_patch(current, patch)
    before: IncidentIn | dict[str, Any]
    try:
        before = IncidentIn.model_validate(_as_input(current))
    except ValidationError:
        # Stored under older or looser rules (a direct load): compare the stored values.
        before = _as_input(current)
    if enrich is not None:
        after = await enrich(after)
    fields = changed_fields(before, after)
    if not fields:
        return version, orjson.dumps(current).decode()
    params = _params(after)
    params.update(id=incident_id, op="update", changed_by=changed_by, changed_fields=fields)
    try:
        async with conn.begin_nested():
            row = (await conn.execute(text(UPDATE_SQL), params)).one()
    except IntegrityError as exc:
        conflict = _duplicate(exc, after.external_id)
        if conflict is not None:
            raise conflict from exc
        raise
    return int(row.version), str(row.doc)


async def delete_incident(
    conn: AsyncConnection, *, incident_id: int, if_match: set[int] | None, changed_by: str | None
) -> int:
    """Soft delete: hidden from queries, kept in history. Returns the tombstone's version."""
    version, _ = await _lock(conn, incident_id)
    _check_precondition(incident_id, version, if_match)
    row = (
        await conn.execute(
            text(DELETE_SQL),
            {"id": incident_id, "op": "delete", "changed_by": changed_by, "changed_fields": []},
        )
    ).one()
    return int(row.version)


async def list_revisions(
    db: Database, *, incident_id: int, after_version: int, limit: int
) -> tuple[list[str], int | None]:
    """Revision JSON documents after `after_version`, oldest first; and the next cursor's
    version, if there are more."""
    async with db.read() as conn:
        exists = await conn.fetchval("SELECT 1 FROM incidents WHERE id = $1", incident_id)
        if exists is None:
            raise NotFound(f"No incident with id '{incident_id}'.")
        rows = await conn.fetch(REVISIONS_SQL, incident_id, after_version, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_version = int(rows[-1]["version"]) if more and rows else None
    return [str(r["doc"]) for r in rows], next_version
