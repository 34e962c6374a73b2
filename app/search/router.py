"""Incident search over HTTP: GET /incidents (query string) and POST /incidents/search (body).

Both shape the same search: a keyset page as JSON or GeoJSON, or CSV/NDJSON (a page, or every
match streamed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from app.core.config import Settings
from app.core.db import Database
from app.core.deps import DbDep, ReadConn, SettingsDep
from app.core.errors import Unprocessable, field_error
from app.core.http import require_json
from app.core.pagination import (
    Page,
    decode_cursor,
    encode_cursor,
    fragments,
    json_body,
    link_header,
    next_url,
)
from app.incidents.schemas import IncidentOut
from app.search import service
from app.search.filters import OutputFormat, RawFilter, Sort
from app.search.formats import MEDIA_TYPES, csv_chunk, csv_header, negotiate
from app.search.params import FILTER_OPENAPI, SearchBody
from app.search.resolve import RawFilterDep, resolve_filter

router = APIRouter(prefix="/incidents", tags=["incidents"])
CURSOR_KIND = "inc"


class SearchMeta(BaseModel):
    resolved_place: dict[str, Any] | None = Field(
        description="The gazetteer entry used for `near`, when it was a name"
    )
    filters: dict[str, Any]
    sort: str
    limit: int
    returned: int
    searched_radius_km: float | None = None
    as_of: str | None = Field(
        default=None, description="The instant answered for (`as_of`); null: the store now"
    )


class IncidentPage(Page[IncidentOut]):
    meta: SearchMeta


SortParam = Annotated[
    Sort,
    Query(
        description="-event_date (default), event_date, -fatalities, distance (with near), "
        "id (storage order: incidents added later come last, so pages never shift)"
    ),
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


@dataclass
class Listing:
    """How a list is asked for (everything but the filter), parsed once per request."""

    request: Request
    db: Database
    settings: Settings
    sort: Sort
    fmt: OutputFormat | None
    accept: str | None
    limit: int | None
    cursor: str | None


async def listing(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    sort: SortParam = Sort.newest,
    limit: LimitParam = None,
    cursor: CursorParam = None,
    format: FormatParam = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Listing:
    return Listing(request, db, settings, sort, format, accept, limit, cursor)


ListingDep = Annotated[Listing, Depends(listing)]


async def _respond(conn: asyncpg.Connection, raw: RawFilter, listing: Listing) -> Response:
    request, db, settings, sort = listing.request, listing.db, listing.settings, listing.sort
    fmt, accept, limit, cursor = listing.fmt, listing.accept, listing.limit, listing.cursor
    output = negotiate(fmt, accept)
    if sort is Sort.distance and raw.near is None:
        raise Unprocessable(
            "sort=distance needs near",
            errors=[field_error("sort", "distance needs near", "distance")],
        )
    f = await resolve_filter(conn, raw, nearest=sort is Sort.distance)
    if f.nearest_first() and cursor:
        raise Unprocessable(
            "cursor: nearest-first without radius_km returns one page",
            errors=[field_error("cursor", "not available for nearest queries")],
        )
    media_type = MEDIA_TYPES[output]
    if output in (OutputFormat.csv, OutputFormat.ndjson) and limit is None and not cursor:
        if f.nearest_first():
            limit = settings.default_page_size
        else:
            header = csv_header(f.near is not None) if output is OutputFormat.csv else None
            return StreamingResponse(
                service.stream(db, f, sort=sort, fmt=output, header=header), media_type=media_type
            )
    page_size = min(limit or settings.default_page_size, settings.max_page_size)
    fingerprint = service.filter_fingerprint(raw, sort)
    after = None
    if cursor:
        after = decode_cursor(
            cursor, settings.cursor_secret, kind=CURSOR_KIND, bound_to=fingerprint
        )
    page = await service.fetch_page(conn, f, sort=sort, fmt=output, after=after, limit=page_size)
    payload = service.cursor_payload(page, raw, sort)
    next_cursor = encode_cursor(CURSOR_KIND, payload, settings.cursor_secret) if payload else None
    following = next_url(request, next_cursor) if next_cursor else None
    headers = link_header([(following, "next")] if following else [])

    if output is OutputFormat.csv:
        header = csv_header(f.near is not None)
        return Response(
            csv_chunk(page.rows, len(header), header), media_type=media_type, headers=headers
        )
    docs = [str(r["doc"]) for r in page.rows]
    if output is OutputFormat.ndjson:
        return Response("".join(d + "\n" for d in docs), media_type=media_type, headers=headers)

    meta: dict[str, Any] = {
        "resolved_place": f.near.place if f.near is not None else None,
        "filters": f.meta(),
        "sort": page.order.sort.value,
        "limit": page_size,
        "returned": len(page.rows),
        "as_of": f.as_of_meta(),
    }
    if page.searched_radius_m is not None:
        meta["searched_radius_km"] = page.searched_radius_m / 1000
    if output is OutputFormat.geojson:
        links = [{"href": str(request.url), "rel": "self", "type": "application/geo+json"}]
        if following:
            links.append({"href": following, "rel": "next", "type": "application/geo+json"})
        body = json_body(
            {
                "type": "FeatureCollection",
                "features": fragments(docs),
                "numberReturned": len(docs),
                "links": links,
                "next_cursor": next_cursor,
                "meta": meta,
            }
        )
        return Response(body, media_type=media_type, headers=headers)
    body = json_body({"items": fragments(docs), "next_cursor": next_cursor, "meta": meta})
    return Response(body, media_type=media_type, headers=headers)


@router.get(
    "",
    response_model=IncidentPage,
    summary="Search incidents",
    openapi_extra=FILTER_OPENAPI,
    responses=LIST_RESPONSES,
)
async def list_incidents(conn: ReadConn, raw: RawFilterDep, listing: ListingDep) -> Response:
    """Radius (`near`, `radius_km`), bbox, area, dates, types, actor, country, admin and
    full-text filters; keyset pages; JSON, GeoJSON, CSV or NDJSON."""
    return await _respond(conn, raw, listing)


@router.post(
    "/search",
    response_model=IncidentPage,
    dependencies=[Depends(require_json)],
    summary="Search incidents inside a GeoJSON polygon (and every other filter)",
    responses=LIST_RESPONSES,
)
async def search_incidents(body: SearchBody, conn: ReadConn, listing: ListingDep) -> Response:
    """The same search as GET /v1/incidents, with a Polygon/MultiPolygon `geometry` in the body.
    Paging: send the same body with `cursor` from `next_cursor` in the query string."""
    return await _respond(conn, body.to_raw(), listing)
