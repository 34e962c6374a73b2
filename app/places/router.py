"""Gazetteer endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.auth.deps import Writer
from app.core.deps import ReadConn, WriteConn
from app.core.errors import problem_doc
from app.core.http import created, creates
from app.core.ids import IdPath, parse_id
from app.core.pagination import fragments, json_body
from app.places import service
from app.places.schemas import PlaceIn, PlaceOut, PlacePage

router = APIRouter(prefix="/places", tags=["places"])
JSON = "application/json"


@router.get("", response_model=PlacePage, summary="Search the gazetteer")
async def search_places(
    conn: ReadConn,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=200,
            description="A place name in any spelling or script; typos tolerated",
            examples=["Khanaqin", "خانقين", "Khānaqīn"],
        ),
    ],
    country: Annotated[
        str | None, Query(max_length=100, description="Name, alpha-2 or alpha-3")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> Response:
    """Fuzzy (trigram), accent-insensitive search over names and alternate names, ranked by
    exact match, similarity, then population."""
    docs = await service.search_places(conn, q=q, country=country, limit=limit)
    return Response(json_body({"items": fragments(docs), "next_cursor": None}), media_type=JSON)


@router.get("/{place_id}", response_model=PlaceOut, summary="One place")
async def get_place(conn: ReadConn, place_id: IdPath) -> Response:
    doc = await service.get_place(conn, parse_id(place_id, what="place"))
    return Response(doc, media_type=JSON)


@router.post(
    "",
    **creates(PlaceOut, "Add a place to the gazetteer", responses={409: problem_doc("Conflict")}),
)
async def create_place(place: PlaceIn, conn: WriteConn, principal: Writer) -> Response:
    place_id = await service.create_place(conn, data=place.model_dump(), created_by=principal.name)
    doc = await service.get_place(conn, place_id)
    return created(doc, f"/v1/places/{place_id}")
