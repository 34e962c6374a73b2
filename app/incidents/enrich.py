"""What is filled in when a client leaves it out: one rule for single writes and bulk loads.

- A place name alone puts the incident at that gazetteer entry (`place_at`).
- Country, country code and admin-1 follow `incident_place_fill` (SQL, migration 0008): a given
  code must be a known alpha-2/alpha-3 and becomes alpha-3; a given name finds its code; what
  is still missing comes from the loaded boundaries at the point, admin-1 only from a boundary
  of the incident's own country. Bulk loads apply the same function to their staging table.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from app.core.errors import Unprocessable, field_error
from app.incidents.schemas import IncidentIn
from app.places.service import best_place

PLACE_FILL_SQL = "SELECT * FROM incident_place_fill($1, $2, $3, $4, $5)"


def place_at(incident: IncidentIn, place: dict[str, Any]) -> None:
    """Puts an incident that has only a place name at that gazetteer entry (in place)."""
    incident.latitude, incident.longitude = place["latitude"], place["longitude"]
    if incident.geo_precision is None:
        incident.geo_precision = 1 if place.get("exact") else 2
    incident.admin1 = incident.admin1 or place.get("admin1")
    incident.admin2 = incident.admin2 or place.get("admin2")
    if incident.country_code is None and place.get("country_code3"):
        incident.country_code = place["country_code3"]


def unknown_place(name: str) -> dict[str, Any]:
    return field_error("location", "unknown place", name)


def unknown_code(code: str) -> dict[str, Any]:
    return field_error("country_code", f"unknown country code '{code}'", code)


async def enrich(conn: asyncpg.Connection, incident: IncidentIn) -> IncidentIn:
    data = incident.model_copy()
    if data.latitude is None:
        name = data.location or ""
        place = await best_place(conn, name=name, country=data.country_code or data.country)
        if place is None:
            raise Unprocessable(
                f"location: '{name}' is not in the gazetteer; give latitude/longitude or add "
                "the place with POST /v1/places",
                errors=[unknown_place(name)],
            )
        place_at(data, place)
    row = await conn.fetchrow(
        PLACE_FILL_SQL, data.country, data.country_code, data.admin1, data.longitude, data.latitude
    )
    if row["unknown_code"]:
        raise Unprocessable(
            f"country_code: unknown code '{data.country_code}'",
            errors=[unknown_code(data.country_code)],
        )
    data.country, data.country_code = row["country"], row["country_code"]
    data.admin1 = row["admin1"]
    return data
