"""HTTP surface of single incidents. Parses and shapes HTTP only; SQL lives in the service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from app.auth.deps import Writer
from app.core.deps import DbDep, SettingsDep
from app.core.errors import problem_doc
from app.core.http import etag, if_none_match_hits, parse_if_match, require_json
from app.core.pagination import decode_cursor, encode_cursor, page_response
from app.incidents import service
from app.incidents.enrich import enrich
from app.incidents.schemas import IncidentIn, IncidentOut, IncidentPatch, RevisionPage

router = APIRouter(prefix="/incidents", tags=["incidents"])

JSON = "application/json"
IncidentId = Annotated[str, Path(description="The incident's id, as returned on create")]


@router.post(
    "",
    status_code=201,
    response_model=IncidentOut,
    dependencies=[Depends(require_json)],
    summary="Create an incident",
    responses={
        201: {"description": "Created; `Location` names the new incident"},
        409: problem_doc("external_id already used"),
    },
)
async def create_incident(incident: IncidentIn, db: DbDep, principal: Writer) -> Response:
    async with db.read() as lookup:
        incident = await enrich(lookup, incident)
    async with db.write() as conn:
        new_id, version, doc = await service.create_incident(
            conn, incident=incident, changed_by=principal.name
        )
    return Response(
        content=doc,
        status_code=201,
        media_type=JSON,
        headers={"Location": f"/v1/incidents/{new_id}", "ETag": etag(version)},
    )


@router.get(
    "/{incident_id}",
    response_model=IncidentOut,
    summary="Get one incident",
    responses={304: {"description": "Not modified (If-None-Match)"}},
)
async def get_incident(
    incident_id: IncidentId,
    db: DbDep,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    version, doc = await service.get_incident(db, incident_id=service.parse_id(incident_id))
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
    incident_id: IncidentId,
    patch: IncidentPatch,
    db: DbDep,
    principal: Writer,
    if_match: Annotated[
        str | None, Header(description="ETag from a GET; 412 if the incident changed since")
    ] = None,
) -> Response:
    versions = parse_if_match(if_match)

    async def fill(merged: IncidentIn) -> IncidentIn:
        async with db.read() as lookup:
            return await enrich(lookup, merged)

    async with db.write() as conn:
        version, doc = await service.update_incident(
            conn,
            incident_id=service.parse_id(incident_id),
            patch=patch,
            enrich=fill,
            if_match=versions,
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
    incident_id: IncidentId,
    db: DbDep,
    principal: Writer,
    if_match: Annotated[str | None, Header()] = None,
) -> Response:
    versions = parse_if_match(if_match)
    async with db.write() as conn:
        await service.delete_incident(
            conn,
            incident_id=service.parse_id(incident_id),
            if_match=versions,
            changed_by=principal.name,
        )
    return Response(status_code=204)


@router.get(
    "/{incident_id}/revisions",
    response_model=RevisionPage,
    summary="Every version of an incident, with who changed what and when",
)
async def list_revisions(
    incident_id: IncidentId,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    after = 0
    if cursor:
        after = int(decode_cursor(cursor, settings.cursor_secret, kind="rev").get("v", 0))
    docs, next_version = await service.list_revisions(
        db, incident_id=service.parse_id(incident_id), after_version=after, limit=limit
    )
    next_cursor = (
        encode_cursor({"k": "rev", "v": next_version}, settings.cursor_secret)
        if next_version is not None
        else None
    )
    return page_response(request, docs, next_cursor)
