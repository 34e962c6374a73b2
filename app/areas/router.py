"""Areas: named polygons usable as `within=` in every search."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response

from app.areas import service
from app.areas.schemas import AreaFeature, AreaIn, AreaPage
from app.auth.deps import Writer
from app.core.deps import ReadConn, WriteConn
from app.core.errors import problem_doc
from app.core.http import GeoJSONResponse, created, creates
from app.core.ids import IdPath, parse_id
from app.core.pagination import Paging, paging

router = APIRouter(prefix="/areas", tags=["areas"])
GEOJSON = "application/geo+json"


@router.get("", response_model=AreaPage, summary="List areas (without geometry)")
async def list_areas(
    conn: ReadConn,
    page: Annotated[Paging, Depends(paging("area"))],
    kind: Annotated[Literal["country", "admin1", "custom"] | None, Query()] = None,
    name: Annotated[str | None, Query(max_length=200, description="Substring of the name")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Response:
    docs, following = await service.list_areas(
        conn, after_id=int((page.after or {}).get("id", 0)), kind=kind, name=name, limit=limit
    )
    return page.respond(docs, following)


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
async def get_area(conn: ReadConn, area_id: IdPath) -> Response:
    doc = await service.get_area(conn, parse_id(area_id, what="area"))
    return Response(doc, media_type=GEOJSON)


@router.post(
    "",
    response_class=GeoJSONResponse,
    **creates(
        AreaFeature,
        "Add a named polygon",
        responses={409: problem_doc("An area with this name exists")},
    ),
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
    return created(doc, f"/v1/areas/{area_id}", GEOJSON)
