"""Vector tiles and their TileJSON."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request, Response

from app.core.deps import ReadConn
from app.core.errors import Unprocessable, field_error
from app.search.params import FILTER_OPENAPI
from app.search.resolve import ResolvedFilter
from app.tiles import service

router = APIRouter(tags=["tiles"])
MVT = "application/vnd.mapbox-vector-tile"
CACHE = "public, max-age=60, stale-while-revalidate=300"


@router.get(
    "/tiles/{z}/{x}/{y}.mvt",
    summary="Mapbox vector tile of incidents (layer `incidents`)",
    openapi_extra=FILTER_OPENAPI,
    response_class=Response,
    responses={
        200: {"content": {MVT: {"schema": {"type": "string", "format": "binary"}}}},
        304: {"description": "Not modified"},
    },
)
async def get_tile(
    request: Request,
    conn: ReadConn,
    f: ResolvedFilter,
    z: Annotated[int, Path(ge=0, le=22)],
    x: Annotated[int, Path(ge=0)],
    y: Annotated[int, Path(ge=0)],
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Below zoom 9 incidents are clustered (64x64 cells per tile; `count`, `fatalities`,
    `cluster`); from zoom 9 each incident is a feature (`id`, `event_date`, `event_type`,
    `fatalities`), newest first, at most 5,000 per tile. Same filters as /v1/incidents."""
    if x >= 2**z or y >= 2**z:
        raise Unprocessable(
            f"x and y must be below 2^z = {2**z}",
            errors=[field_error("x" if x >= 2**z else "y", "outside the zoom")],
        )
    version = await service.data_version(conn)
    tag = (
        '"'
        + hashlib.sha256(f"{version}|{z}/{x}/{y}|{request.url.query}".encode()).hexdigest()[:32]
        + '"'
    )
    headers = {"ETag": tag, "Cache-Control": CACHE}
    if if_none_match is not None and tag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    data = await service.tile(conn, f, z, x, y)
    return Response(data, media_type=MVT, headers=headers)


@router.get("/tiles.json", summary="TileJSON 3.0 for the incident tiles")
async def tilejson(request: Request) -> dict[str, Any]:
    """Point MapLibre/Mapbox at this; query parameters (filters) are carried into the tile
    URLs."""
    base = str(request.base_url).rstrip("/")
    query = f"?{request.url.query}" if request.url.query else ""
    return {
        "tilejson": "3.0.0",
        "name": "conflict incidents",
        "attribution": "Incidents: their sources; places: GeoNames (CC BY 4.0)",
        "tiles": [f"{base}/v1/tiles/{{z}}/{{x}}/{{y}}.mvt{query}"],
        "minzoom": 0,
        "maxzoom": 16,
        "bounds": [-180, -85.0511, 180, 85.0511],
        "center": [45.39, 34.35, 6],
        "vector_layers": [
            {
                "id": "incidents",
                "description": f"Incidents; clusters below zoom {service.CLUSTER_BELOW_ZOOM}",
                "minzoom": 0,
                "maxzoom": 16,
                "fields": {
                    "id": "String",
                    "event_date": "String (YYYY-MM-DD)",
                    "event_type": "String",
                    "fatalities": "Number",
                    "count": "Number (clusters)",
                    "cluster": "Boolean (clusters)",
                },
            }
        ],
    }
