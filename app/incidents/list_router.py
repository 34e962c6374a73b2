"""Incident search over HTTP: GET /incidents (query string) and POST /incidents/search (body)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from app.auth.deps import Writer
from app.core.config import Settings
from app.core.db import Database
from app.core.deps import DbDep, SettingsDep
from app.core.errors import Unprocessable, dumps, field_error
from app.core.http import require_json
from app.core.pagination import decode_cursor, encode_cursor
from app.incidents import bulk, search
from app.incidents.filters import OutputFormat, RawFilter, SearchBody, Sort, filter_query
from app.incidents.formats import MEDIA_TYPES, csv_chunk, csv_header, negotiate
from app.incidents.schemas import IncidentOut

router = APIRouter(prefix="/incidents", tags=["incidents"])


class SearchMeta(BaseModel):
    resolved_place: dict[str, Any] | None = Field(
        description="The gazetteer entry used for `near`, when it was a name"
    )
    filters: dict[str, Any]
    sort: str
    limit: int
    returned: int
    searched_radius_km: float | None = None


class IncidentPage(BaseModel):
    items: list[IncidentOut]
    next_cursor: str | None
    meta: SearchMeta


SortParam = Annotated[
    Sort,
    Query(description="-event_date (default), event_date, -fatalities, distance (with near)"),
]
FormatParam = Annotated[
    OutputFormat | None,
    Query(description="json (default), geojson, csv, ndjson; or choose with Accept"),
]
LimitParam = Annotated[
    int | None,
    Query(
        ge=1,
        le=10000,
        description="Page size, 1..10000 (default 100). csv and ndjson "
        "without a limit stream every match",
    ),
]
CursorParam = Annotated[str | None, Query(max_length=1000, description="From next_cursor")]

LIST_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A page of incidents",
        "content": {
            "application/geo+json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


async def _respond(
    request: Request,
    db: Database,
    settings: Settings,
    raw: RawFilter,
    *,
    sort: Sort,
    fmt: OutputFormat | None,
    accept: str | None,
    limit: int | None,
    cursor: str | None,
) -> Response:
    output = negotiate(fmt, accept)
    async with db.read() as conn:
        f = await search.resolve_filter(conn, raw, sort=sort)
    if sort is Sort.distance and f.near is not None and f.radius_m is None and cursor:
        raise Unprocessable(
            "cursor: nearest-first without radius_km returns one page",
            errors=[field_error("cursor", "not available for nearest queries")],
        )
    media_type = MEDIA_TYPES[output]
    if output in (OutputFormat.csv, OutputFormat.ndjson) and limit is None and not cursor:
        if f.near is not None and f.radius_m is None:
            limit = settings.default_page_size
        else:
            header = csv_header(f.near is not None) if output is OutputFormat.csv else None
            return StreamingResponse(
                search.stream(db, f, sort=sort, fmt=output, header=header), media_type=media_type
            )
    page_size = min(limit or settings.default_page_size, settings.max_page_size)
    after = None
    if cursor:
        after = search.check_cursor(
            decode_cursor(cursor, settings.cursor_secret, kind="inc"), raw, sort
        )
    page = await search.fetch_page(db, f, sort=sort, fmt=output, after=after, limit=page_size)
    payload = search.cursor_payload(page, raw, sort)
    next_cursor = encode_cursor(payload, settings.cursor_secret) if payload else None
    next_url = str(request.url.include_query_params(cursor=next_cursor)) if next_cursor else None
    headers = {"Link": f'<{next_url}>; rel="next"'} if next_url else {}

    if output is OutputFormat.csv:
        header = csv_header(f.near is not None)
        return Response(
            csv_chunk(page.rows, len(header), header), media_type=media_type, headers=headers
        )
    if output is OutputFormat.ndjson:
        body = "".join(str(r["doc"]) + "\n" for r in page.rows)
        return Response(body, media_type=media_type, headers=headers)

    meta: dict[str, Any] = {
        "resolved_place": f.near.place if f.near is not None else None,
        "filters": f.meta(),
        "sort": page.order.sort.value,
        "limit": page_size,
        "returned": len(page.rows),
    }
    if page.searched_radius_m is not None:
        meta["searched_radius_km"] = page.searched_radius_m / 1000
    docs = ",".join(str(r["doc"]) for r in page.rows)
    if output is OutputFormat.geojson:
        links = [{"href": str(request.url), "rel": "self", "type": "application/geo+json"}]
        if next_url:
            links.append({"href": next_url, "rel": "next", "type": "application/geo+json"})
        tail = orjson.dumps(
            {
                "numberReturned": len(page.rows),
                "links": links,
                "next_cursor": next_cursor,
                "meta": meta,
            }
        ).decode()
        body = '{"type":"FeatureCollection","features":[' + docs + "]," + tail[1:]
        return Response(body, media_type=media_type, headers=headers)
    tail = orjson.dumps({"next_cursor": next_cursor, "meta": meta}).decode()
    return Response('{"items":[' + docs + "]," + tail[1:], media_type=media_type, headers=headers)


@router.get(
    "",
    response_model=IncidentPage,
    summary="Search incidents",
    responses=LIST_RESPONSES,
)
async def list_incidents(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    raw: Annotated[RawFilter, Depends(filter_query)],
    sort: SortParam = Sort.newest,
    limit: LimitParam = None,
    cursor: CursorParam = None,
    format: FormatParam = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Radius (`near`, `radius_km`), bbox, area, dates, types, actor, country, admin and
    full-text filters; keyset pages; JSON, GeoJSON, CSV or NDJSON."""
    return await _respond(
        request, db, settings, raw, sort=sort, fmt=format, accept=accept, limit=limit, cursor=cursor
    )


@router.post(
    "/search",
    response_model=IncidentPage,
    dependencies=[Depends(require_json)],
    summary="Search incidents inside a GeoJSON polygon (and every other filter)",
    responses=LIST_RESPONSES,
)
async def search_incidents(
    body: SearchBody,
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    sort: SortParam = Sort.newest,
    limit: LimitParam = None,
    cursor: CursorParam = None,
    format: FormatParam = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """The same search as GET /v1/incidents, with a Polygon/MultiPolygon `geometry` in the body.
    Paging: send the same body with `cursor` from `next_cursor` in the query string."""
    return await _respond(
        request,
        db,
        settings,
        body.to_raw(),
        sort=sort,
        fmt=format,
        accept=accept,
        limit=limit,
        cursor=cursor,
    )


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
