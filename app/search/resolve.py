"""Resolving a RawFilter against the database: place names, areas, polygons, countries, actor
aliases. One dependency, `ResolvedFilter`, hands the result to every endpoint that searches."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends

from app.actors.service import actor_pattern
from app.areas.service import check_polygon, resolve_area
from app.core.deps import ReadConn
from app.core.errors import Unprocessable, field_error
from app.core.geo import bbox_envelopes
from app.places.service import find_country, resolve_place
from app.search.filters import DEFAULT_RADIUS_KM, Match, NearPoint, RawFilter, SearchFilter
from app.search.params import filter_query, parse_latlon


async def resolve_filter(
    conn: asyncpg.Connection, raw: RawFilter, *, nearest: bool = False
) -> SearchFilter:
    """`nearest`: with `near` and no `radius_km`, leave the radius open (the k nearest, for
    `sort=distance`); otherwise the radius defaults to DEFAULT_RADIUS_KM."""
    f = SearchFilter(raw=raw)
    if raw.near is not None:
        latlon = parse_latlon(raw.near)
        if latlon is not None:
            f.near = NearPoint(latitude=latlon[0], longitude=latlon[1])
        else:
            place = await resolve_place(
                conn,
                name=raw.near,
                field="near",
                country=raw.countries[0] if len(raw.countries) == 1 else None,
            )
            f.near = NearPoint(place["latitude"], place["longitude"], place=place)
        if raw.radius_km is not None:
            f.radius_m = raw.radius_km * 1000
        elif not nearest:
            f.radius_m = DEFAULT_RADIUS_KM * 1000
        if f.radius_m is None and raw.match is not Match.point:
            raise Unprocessable(
                "match: needs a circle; give radius_km with sort=distance",
                errors=[field_error("match", "needs radius_km", raw.match.value)],
            )
    f.envelopes = bbox_envelopes(*raw.bbox) if raw.bbox else []
    if raw.within is not None:
        f.area = await resolve_area(conn, raw.within)
    if raw.geometry is not None:
        f.geometry_json, _ = await check_polygon(conn, raw.geometry, "geometry")
    for value in raw.countries:
        country = await find_country(conn, value)
        if country is not None:
            f.country_codes.append(country["iso_a3"])
        else:
            f.country_names.append(value)
    if raw.actors:
        f.actor_pattern, f.actor_groups = await actor_pattern(conn, list(raw.actors))
    return f


RawFilterDep = Annotated[RawFilter, Depends(filter_query)]


async def resolved_filter(conn: ReadConn, raw: RawFilterDep) -> SearchFilter:
    return await resolve_filter(conn, raw)


# Stats, grid, tiles and export: the query string's filter, resolved (radius 25 km by default).
ResolvedFilter = Annotated[SearchFilter, Depends(resolved_filter)]
