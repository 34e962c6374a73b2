"""Areas: named polygons usable as `within=` in every search."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from app.areas import service
from app.areas.schemas import AreaFeature, AreaIn, AreaPage
from app.auth.deps import Writer
from app.core.deps import DbDep, SettingsDep
from app.core.errors import problem_doc
from app.core.http import GeoJSONResponse, require_json
from app.core.pagination import decode_cursor, encode_cursor, page_response
from app.incidents.service import parse_id

router = APIRouter(prefix="/areas", tags=["areas"])
JSON = "application/json"


@router.get("", response_model=AreaPage, summary="List areas (without geometry)")
async def list_areas(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    kind: Annotated[Literal["country", "admin1", "custom"] | None, Query()] = None,
    name: Annotated[str | None, Query(max_length=200, description="Substring of the name")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    after = 0
    if cursor:
        after = int(decode_cursor(cursor, settings.cursor_secret, kind="area").get("id", 0))
    async with db.read() as conn:
        docs, next_id = await service.list_areas(
            conn, after_id=after, kind=kind, name=name, limit=limit
        )
    next_cursor = (
        encode_cursor({"k": "area", "id": next_id}, settings.cursor_secret) if next_id else None
    )
    return page_response(request, docs, next_cursor)


@router.get(
    "/outlines.geojson",
    response_class=GeoJSONResponse,
    summary="Simplified outlines of every area of a kind (e.g. a basemap of countries)",
    responses={200: {"content": {"application/geo+json": {"schema": {"type": "object"}}}}},
)
async def outlines(
    db: DbDep,
    kind: Annotated[Literal["country", "admin1", "custom"], Query()] = "country",
    tolerance: Annotated[
        float, Query(ge=0.001, le=1, description="Simplification, degrees")
    ] = 0.02,
) -> Response:
    async with db.read() as conn:
        doc = await service.outlines(conn, kind=kind, tolerance=tolerance)
    return Response(
        doc, media_type="application/geo+json", headers={"Cache-Control": "public, max-age=3600"}
    )


@router.get(
    "/{area_id}",
    response_model=AreaFeature,
    response_class=GeoJSONResponse,
    summary="One area as a GeoJSON Feature",
)
async def get_area(db: DbDep, area_id: Annotated[str, Path(max_length=30)]) -> Response:
    async with db.read() as conn:
        doc = await service.get_area(conn, parse_id(area_id, what="area"))
    return Response(doc, media_type="application/geo+json")


@router.post(
    "",
    status_code=201,
    response_model=AreaFeature,
    response_class=GeoJSONResponse,
    dependencies=[Depends(require_json)],
    summary="Add a named polygon",
    responses={409: problem_doc("An area with this name exists")},
)
async def create_area(area: AreaIn, db: DbDep, principal: Writer) -> Response:
    async with db.acquire() as conn:
        area_id = await service.create_area(
            conn,
            name=area.name,
            geometry=area.geometry.model_dump(),
            properties=area.properties,
            created_by=principal.name,
        )
        doc = await service.get_area(conn, area_id)
    return Response(
        doc,
        status_code=201,
        media_type="application/geo+json",
        headers={"Location": f"/v1/areas/{area_id}"},
    )
