"""HTTP surface of single incidents, their history and bulk upserts. Parses and shapes HTTP
only; SQL lives in the services."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, Field

from app.auth.deps import Writer
from app.core.deps import DbDep, ReadConn, WriteConn
from app.core.errors import dumps, problem_doc
from app.core.http import (
    IfMatch,
    created,
    creates,
    etag,
    if_none_match_hits,
    parse_if_match,
    require_json,
)
from app.core.ids import IdPath, parse_id
from app.core.pagination import Page, Paging, paging
from app.incidents import bulk, service
from app.incidents.enrich import enrich
from app.incidents.schemas import IncidentIn, IncidentOut, IncidentPatch, RevisionOut
from app.search.params import AsOfQuery, check_as_of

router = APIRouter(prefix="/incidents", tags=["incidents"])

JSON = "application/json"


class RevisionPage(Page[RevisionOut]):
    pass


@router.post(
    "",
    **creates(
        IncidentOut,
        "Create an incident",
        responses={
            201: {"description": "Created; `Location` names the new incident"},
            409: problem_doc("external_id already used"),
        },
    ),
)
async def create_incident(incident: IncidentIn, conn: WriteConn, principal: Writer) -> Response:
    new_id, version, doc = await service.create_incident(
        conn, incident=await enrich(conn, incident), changed_by=principal.name
    )
    return created(doc, f"/v1/incidents/{new_id}", ETag=etag(version))


@router.get(
    "/{incident_id}",
    response_model=IncidentOut,
    summary="Get one incident",
    responses={
        304: {"description": "Not modified (If-None-Match)"},
        410: problem_doc("Deleted by the `as_of` instant"),
    },
)
async def get_incident(
    incident_id: IdPath,
    conn: ReadConn,
    if_none_match: Annotated[str | None, Header()] = None,
    as_of: AsOfQuery = None,
) -> Response:
    """With `as_of`: the version current at that instant (404 if the incident did not exist
    yet, 410 if it had been deleted by then)."""
    instant = None if as_of is None else check_as_of(as_of)
    version, doc = await service.get_incident(
        conn, incident_id=parse_id(incident_id), as_of=instant
    )
    if if_none_match_hits(if_none_match, version):
        return Response(status_code=304, headers={"ETag": etag(version)})
    return Response(content=doc, media_type=JSON, headers={"ETag": etag(version)})


@router.patch(
    "/{incident_id}",
    response_model=IncidentOut,
    dependencies=[Depends(require_json)],
    summary="Update an incident (partial)",
    responses={
        409: problem_doc("external_id already used"),
        412: problem_doc("Stale If-Match: the incident changed since you read it"),
    },
)
async def patch_incident(
    incident_id: IdPath,
    patch: IncidentPatch,
    conn: WriteConn,
    principal: Writer,
    if_match: IfMatch = None,
) -> Response:
    version, doc = await service.update_incident(
        conn,
        incident_id=parse_id(incident_id),
        patch=patch,
        if_match=parse_if_match(if_match),
        changed_by=principal.name,
    )
    return Response(content=doc, media_type=JSON, headers={"ETag": etag(version)})


@router.delete(
    "/{incident_id}",
    status_code=204,
    summary="Delete an incident (soft: kept in history)",
    responses={412: problem_doc("Stale If-Match")},
)
async def delete_incident(
    incident_id: IdPath,
    conn: WriteConn,
    principal: Writer,
    if_match: IfMatch = None,
) -> Response:
    await service.delete_incident(
        conn,
        incident_id=parse_id(incident_id),
        if_match=parse_if_match(if_match),
        changed_by=principal.name,
    )
    return Response(status_code=204)


@router.get(
    "/{incident_id}/revisions",
    response_model=RevisionPage,
    summary="Every version of an incident, with who changed what and when",
)
async def list_revisions(
    incident_id: IdPath,
    conn: ReadConn,
    page: Annotated[Paging, Depends(paging("rev"))],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    docs, following = await service.list_revisions(
        conn,
        incident_id=parse_id(incident_id),
        after_version=int((page.after or {}).get("v", 0)),
        limit=limit,
    )
    return page.respond(docs, following)


class BulkRowError(BaseModel):
    row: int
    line: int | None = None
    errors: list[dict[str, Any]]


class BulkReportOut(BaseModel):
    format: str
    layout: str
    atomic: bool
    received: int
    inserted: int
    updated: int
    unchanged: int
    failed: int
    errors: list[BulkRowError] = Field(description="Invalid rows (first 1000), by row and line")
    possible_duplicates: list[dict[str, Any]]
    duplicates_flagged: int


@router.post(
    "/bulk",
    response_model=BulkReportOut,
    summary="Bulk create/upsert (JSON array, NDJSON, GeoJSON, ACLED CSV, UCDP GED CSV)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                "application/x-ndjson": {"schema": {"type": "string"}},
                "application/geo+json": {"schema": {"type": "object"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def bulk_upsert(
    request: Request,
    db: DbDep,
    principal: Writer,
    atomic: Annotated[
        bool, Query(description="Reject the whole batch if any row is invalid")
    ] = False,
    format: Annotated[
        Literal["json", "ndjson", "geojson", "csv"] | None,
        Query(description="Override the format detected from Content-Type and content"),
    ] = None,
) -> Response:
    """Upserts on `external_id` (ACLED `event_id_cnty`, UCDP `id`): posting the same file twice
    changes nothing and says so. Invalid rows are listed by row/line and field; with
    `atomic=true` one bad row rejects the batch and nothing is stored. The body is streamed to
    disk and parsed incrementally; its size limit is MAX_BULK_BODY_BYTES (413 beyond)."""
    body = await bulk.spool(request)
    try:
        report = await bulk.ingest(
            db,
            body,
            content_type=request.headers.get("content-type"),
            fmt=format,
            atomic=atomic,
            changed_by=principal.name,
        )
    finally:
        body.close()
    return Response(dumps(report), media_type="application/json")
