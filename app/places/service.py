"""Gazetteer queries: fuzzy, accent- and script-insensitive place search; countries."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from app.core.errors import NotFound, field_error

PLACE_JSON = """json_build_object(
    'id', p.id::text,
    'geonameid', p.geonameid,
    'name', p.name,
    'alternate_names', p.alternate_names,
    'feature_code', p.feature_code,
    'country_code', p.country_code,
    'country_code3', p.country_code3,
    'admin1', p.admin1,
    'admin2', p.admin2,
    'latitude', ST_Y(p.geom),
    'longitude', ST_X(p.geom),
    'population', p.population,
    'source', p.source,
    'score', round(best.sim::numeric, 3),
    'exact', best.exact
)"""

# Candidates come from the trigram index (`%`, similarity >= 0.3), then rank: an exact
# (normalised) name first, then similarity, then population.
_SEARCH_HEAD = """
WITH q AS (SELECT app_norm($1::text) AS n),
best AS (
    SELECT pn.place_id, max(similarity(pn.name_norm, q.n)) AS sim,
           bool_or(pn.name_norm = q.n) AS exact
    FROM place_names pn, q
    WHERE pn.name_norm % q.n
    GROUP BY pn.place_id
)
SELECT ("""
_SEARCH_TAIL = """)::text AS doc
FROM best JOIN places p ON p.id = best.place_id
WHERE ($2::text IS NULL OR p.country_code = $2 OR p.country_code3 = $2)
ORDER BY best.exact DESC, best.sim DESC, p.population DESC, p.id
LIMIT $3
"""
SEARCH_SQL = _SEARCH_HEAD + PLACE_JSON + _SEARCH_TAIL
# The same ranking restricted to exact (normalised) names: a btree lookup instead of a trigram
# scan. Exact names rank first anyway, so when one exists it is the best match.
EXACT_SQL = SEARCH_SQL.replace("WHERE pn.name_norm % q.n", "WHERE pn.name_norm = q.n")

# One definition of "which country": alpha-2, alpha-3, name or alternate name (migration 0008).
COUNTRY_SQL = "SELECT iso_a2, iso_a3, name FROM country_lookup($1)"


async def find_country(conn: asyncpg.Connection, value: str) -> dict[str, str] | None:
    """A country by alpha-2, alpha-3 or name (accent/case-insensitive)."""
    row = await conn.fetchrow(COUNTRY_SQL, value.strip())
    return dict(row) if row is not None else None


async def search_places(
    conn: asyncpg.Connection, *, q: str, country: str | None, limit: int, exact: bool = False
) -> list[str]:
    """Matching places as JSON texts, best first."""
    code = None
    if country:
        found = await find_country(conn, country)
        if found is None:
            raise NotFound(
                f"Unknown country '{country}'.",
                errors=[field_error("country", "unknown country", country)],
            )
        code = found["iso_a2"]
    rows = await conn.fetch(EXACT_SQL if exact else SEARCH_SQL, q, code, limit)
    return [str(r["doc"]) for r in rows]


# Resolving a name to one place (near=, location-only incidents) needs a closer match than a
# search listing: "Khanaqeen" or "Khanaquin" (0.5-0.6) resolve, "Qwxzyvillage" (0.35) does not.
RESOLVE_MIN_SIMILARITY = 0.45


async def best_place(
    conn: asyncpg.Connection, *, name: str, country: str | None = None
) -> dict[str, Any] | None:
    """The place a name most likely means (exact name, then similarity, then population)."""
    docs = await search_places(conn, q=name, country=country, limit=1, exact=True)
    if not docs:
        docs = await search_places(conn, q=name, country=country, limit=1)
    if not docs:
        return None
    place: dict[str, Any] = orjson.loads(docs[0])
    return place if place["score"] >= RESOLVE_MIN_SIMILARITY else None


async def resolve_place(
    conn: asyncpg.Connection, *, name: str, field: str, country: str | None = None
) -> dict[str, Any]:
    """Like best_place, but a 404 problem naming the field when nothing matches."""
    place = await best_place(conn, name=name, country=country)
    if place is None:
        raise NotFound(
            f"Unknown place '{name}': not in the gazetteer. Add it with POST /v1/places.",
            errors=[field_error(field, "unknown place", name)],
        )
    return place


INSERT_PLACE_SQL = """
WITH c AS (
    SELECT iso_a2, iso_a3 FROM countries WHERE iso_a2 = upper($5) OR iso_a3 = upper($5)
), ins AS (
    INSERT INTO places (name, ascii_name, alternate_names, feature_class, feature_code,
                        country_code, country_code3, admin1, admin2, population, geom,
                        source, created_by)
    SELECT $1, NULL, $2::text[], 'P', $3, coalesce((SELECT iso_a2 FROM c), upper($5)),
           (SELECT iso_a3 FROM c), $6, $7, $8, ST_SetSRID(ST_MakePoint($9, $4), 4326),
           'user', $10
    RETURNING *
), names AS (
    INSERT INTO place_names (place_id, name_norm)
    SELECT DISTINCT ins.id, app_norm(n)
    FROM ins, unnest(array_prepend(ins.name, ins.alternate_names)) n
    WHERE app_norm(n) <> ''
)
SELECT ins.id FROM ins
"""

GET_PLACE_SQL = (
    "SELECT (" + PLACE_JSON + ")::text AS doc FROM places p, "  # noqa: S608 (constant SQL)
    "(SELECT 1.0::float8 AS sim, true AS exact) best WHERE p.id = $1"
)


async def create_place(conn: asyncpg.Connection, *, data: dict[str, Any], created_by: str) -> int:
    place_id = await conn.fetchval(
        INSERT_PLACE_SQL,
        data["name"],
        data.get("alternate_names") or [],
        data.get("feature_code"),
        data["latitude"],
        data.get("country_code"),
        data.get("admin1"),
        data.get("admin2"),
        data.get("population") or 0,
        data["longitude"],
        created_by,
    )
    return int(place_id)


async def get_place(conn: asyncpg.Connection, place_id: int) -> str:
    doc = await conn.fetchval(GET_PLACE_SQL, place_id)
    if doc is None:
        raise NotFound(f"No place with id '{place_id}'.")
    return str(doc)
