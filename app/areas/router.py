"""Areas: named polygons usable as `within=` in every search."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from app.areas import service
from app.areas.schemas import AreaFeature, AreaIn, AreaPage
from app.auth.deps import Writer
from app.core.deps import ReadConn, WriteConn
from app.core.errors import problem_doc
from app.core.http import GeoJSONResponse, require_json
from app.core.ids import ID_PATTERN, parse_id
from app.core.pagination import cursor_param, page_response

router = APIRouter(prefix="/areas", tags=["areas"])
GEOJSON = "application/geo+json"
CURSOR_KIND = "area"


@router.get("", response_model=AreaPage, summary="List areas (without geometry)")
async def list_areas(
    request: Request,
    conn: ReadConn,
    after: Annotated[dict[str, Any] | None, Depends(cursor_param(CURSOR_KIND))],
    kind: Annotated[Literal["country", "admin1", "custom"] | None, Query()] = None,
    name: Annotated[str | None, Query(max_length=200, description="Substring of the name")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    docs, following = await service.list_areas(
        conn, after_id=int((after or {}).get("id", 0)), kind=kind, name=name, limit=limit
    )
    return page_response(request, docs, kind=CURSOR_KIND, next_payload=following)


@router.get(
    "/outlines.geojson",
    response_class=GeoJSONResponse,
    summary="Simplified outlines of every area of a kind (e.g. a basemap of countries)",
    responses={200: {"content": {GEOJSON: {"schema": {"type": "object"}}}}},
)
async def outlines(
    conn: ReadConn,
    kind: Annotated[Literal["country", "admin1", "custom"], Query()] = "country",
    tolerance: Annotated[
        float, Query(ge=0.001, le=1, description="Simplification, degrees")
    ] = 0.02,
) -> Response:
    doc = await service.outlines(conn, kind=kind, tolerance=tolerance)
    return Response(doc, media_type=GEOJSON, headers={"Cache-Control": "public, max-age=3600"})


@router.get(
    "/{area_id}",
    response_model=AreaFeature,
    response_class=GeoJSONResponse,
    summary="One area as a GeoJSON Feature",
)
async def get_area(
    conn: ReadConn,
    area_id: Annotated[str, Path(max_length=30, json_schema_extra={"pattern": ID_PATTERN})],
) -> Response:
    doc = await service.get_area(conn, parse_id(area_id, what="area"))
    return Response(doc, media_type=GEOJSON)


@router.post(
    "",
    status_code=201,
    response_model=AreaFeature,
    response_class=GeoJSONResponse,
    dependencies=[Depends(require_json)],
    summary="Add a named polygon",
    responses={409: problem_doc("An area with this name exists")},
)
async def create_area(area: AreaIn, conn: WriteConn, principal: Writer) -> Response:
    area_id = await service.create_area(
        conn,
        name=area.name,
        geometry=area.geometry.model_dump(),
        properties=area.properties,
        created_by=principal.name,
    )
    doc = await service.get_area(conn, area_id)
    return Response(
        doc, status_code=201, media_type=GEOJSON, headers={"Location": f"/v1/areas/{area_id}"}
    )
