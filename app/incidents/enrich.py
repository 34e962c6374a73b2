"""Fills what a client left out of an incident: coordinates from a place name (gazetteer),
country code from a name or alpha-2, country/admin-1 from the point (loaded boundaries)."""

from __future__ import annotations

from typing import Any

import asyncpg

from app.areas.service import locate
from app.core.errors import Unprocessable, field_error
from app.incidents.schemas import IncidentIn
from app.places.service import best_place, find_country


def place_at(incident: IncidentIn, place: dict[str, Any]) -> None:
    """Puts an incident that has only a place name at that gazetteer entry (in place)."""
    incident.latitude, incident.longitude = place["latitude"], place["longitude"]
    if incident.geo_precision is None:
        incident.geo_precision = 1 if place.get("exact") else 2
    incident.admin1 = incident.admin1 or place.get("admin1")
    incident.admin2 = incident.admin2 or place.get("admin2")
    if incident.country_code is None and place.get("country_code3"):
        incident.country_code = place["country_code3"]


async def enrich(conn: asyncpg.Connection, incident: IncidentIn) -> IncidentIn:
    data = incident.model_copy()
    if data.latitude is None:
        name = data.location or ""
        place = await best_place(conn, name=name, country=data.country_code or data.country)
        if place is None:
            raise Unprocessable(
                f"location: '{name}' is not in the gazetteer; give latitude/longitude or add "
                "the place with POST /v1/places",
                errors=[field_error("location", "unknown place", name)],
            )
        place_at(data, place)
    if data.country_code is not None:
        country = await find_country(conn, data.country_code)
        if country is None:
            raise Unprocessable(
                f"country_code: unknown code '{data.country_code}'",
                errors=[field_error("country_code", "unknown ISO 3166-1 code", data.country_code)],
            )
        data.country_code = country["iso_a3"]
        data.country = data.country or country["name"]
    elif data.country is not None:
        country = await find_country(conn, data.country)
        if country is not None:
            data.country_code = country["iso_a3"]
    if data.country is None or data.country_code is None or data.admin1 is None:
        assert data.latitude is not None and data.longitude is not None
        found = await locate(conn, latitude=data.latitude, longitude=data.longitude)
        if data.country is None and data.country_code is None:
            data.country = found.get("country")
            data.country_code = found.get("country_code")
        elif data.country_code is None and found.get("country") == data.country:
            data.country_code = found.get("country_code")
        same_country = found.get("admin1_country_code") in (None, data.country_code)
        if data.admin1 is None and same_country:
            data.admin1 = found.get("admin1")
    return data
