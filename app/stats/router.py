"""Dashboards: GET /v1/stats and GET /v1/stats/grid, with every search filter."""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from app.core.deps import ReadConn
from app.core.http import GeoJSONResponse
from app.core.pagination import Page, json_body
from app.search.params import FILTER_OPENAPI
from app.search.resolve import ResolvedFilter
from app.stats import grid, service

router = APIRouter(prefix="/stats", tags=["stats"])


class StatsPage(Page[dict[str, Any]]):
    """One row per group: the dimensions, `incidents` and `fatalities` (one page: no cursor)."""

    meta: dict[str, Any]


class GridCollection(BaseModel):
    type: str
    features: list[dict[str, Any]]
    numberReturned: int
    meta: dict[str, Any]


@router.get(
    "",
    response_model=StatsPage,
    summary="Counts and fatalities grouped by one or two dimensions",
    openapi_extra=FILTER_OPENAPI,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def get_stats(
    conn: ReadConn,
    f: ResolvedFilter,
    group_by: Annotated[
        str,
        Query(
            max_length=100,
            description="One or two of: " + ", ".join(service.DIMENSIONS),
            examples=["month", "event_type,year"],
        ),
    ],
    format: Annotated[str | None, Query(pattern="^(json|csv)$")] = None,
) -> Response:
    """Time buckets ascend and are zero-filled between `start` and `end` (or the data's first
    and last dates); other groups are sorted by incidents, most first. `actor` counts an
    incident once for each distinct actor."""
    dims = service.parse_group_by(group_by)
    items = await service.stats(conn, f, dims)
    if format == "csv":
        rows = orjson.loads(items)
        buffer = io.StringIO()
        writer = csv.DictWriter(
            buffer, fieldnames=[*dims, "incidents", "fatalities"], lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)
        return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8")
    meta = {
        "group_by": dims,
        "filters": f.meta(),
        "resolved_place": f.near.place if f.near is not None else None,
        "as_of": f.as_of_meta(),
    }
    body = json_body({"items": orjson.Fragment(items), "next_cursor": None, "meta": meta})
    return Response(body, media_type="application/json")


@router.get(
    "/grid",
    response_model=GridCollection,
    response_class=GeoJSONResponse,
    summary="Equal-area hexagon grid with counts, as GeoJSON",
    openapi_extra=FILTER_OPENAPI,
)
async def get_grid(
    conn: ReadConn,
    f: ResolvedFilter,
    cell_km: Annotated[
        float,
        Query(
            ge=1,
            le=1000,
            description="Hexagon edge length in km, on an equal-area "
            "projection (EPSG:6933); cells only where there are incidents",
        ),
    ] = 25,
) -> Response:
    features, count = await grid.grid(conn, f, cell_km)
    meta = {
        "cell_km": cell_km,
        "cell_area_km2": round(grid.hexagon_area_m2(cell_km * 1000) / 1e6, 3),
        "projection": "EPSG:6933",
        "filters": f.meta(),
        "as_of": f.as_of_meta(),
    }
    body = json_body(
        {
            "type": "FeatureCollection",
            "features": orjson.Fragment(features),
            "numberReturned": count,
            "meta": meta,
        }
    )
    return Response(body, media_type="application/geo+json")
