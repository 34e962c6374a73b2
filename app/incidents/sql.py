"""SQL every path that returns incidents shares, derived from the field registry."""

from __future__ import annotations

from app.incidents.fields import JSON_FIELDS, WRITABLE_COLUMNS


def incident_json(extra: dict[str, str] | None = None, exclude: tuple[str, ...] = ()) -> str:
    """One incident as a JSON object built by PostgreSQL (alias `i`), without the `exclude`d
    fields, plus `extra` keys."""
    pairs = [(f.name, f.sql) for f in JSON_FIELDS if f.name not in exclude]
    pairs += list((extra or {}).items())
    return "json_build_object(" + ", ".join(f"'{name}', {sql}" for name, sql in pairs) + ")"


# A GeoJSON Feature (RFC 7946: `[lon, lat]`): the id and the point outside, the rest inside.
FEATURE_PROPERTIES = incident_json(exclude=("id", "latitude", "longitude"))


def feature_json(properties: str = FEATURE_PROPERTIES) -> str:
    return (
        "json_build_object('type', 'Feature', 'id', i.id::text, 'geometry', "
        "json_build_object('type', 'Point', 'coordinates', "
        f"json_build_array(ST_X(i.geom), ST_Y(i.geom))), 'properties', {properties})"
    )


INCIDENT_JSON = incident_json()


def version_sql(expression: str, revision: str = "r") -> str:
    """`expression` (over alias `i`) evaluated on the version a revision names: the current
    row in `incidents`, or the superseded one in `incident_history` (migration 0011)."""
    where = f"i.id = {revision}.incident_id AND i.version = {revision}.version"
    return (
        f"coalesce((SELECT {expression} FROM incidents i WHERE {where}), "  # noqa: S608
        f"(SELECT {expression} FROM incident_history i WHERE {where}))"
    )


# The incident as a revision left it (a change feed item, a revisions entry).
VERSION_JSON = version_sql(f"({INCIDENT_JSON})::jsonb")

# Fields of the input model that are compared to tell what a change touched.
COMPARED_FIELDS: tuple[str, ...] = (*WRITABLE_COLUMNS, "latitude", "longitude")

# Possible duplicates of a new incident: one definition, the SQL function
# incident_possible_duplicates (migration 0005), also used set-based by bulk ingest.
DUPLICATE_CANDIDATES_SQL = """
SELECT incident_possible_duplicates($1, $2, $3, $4::date, $5, ARRAY[$6, $7, $8, $9]::text[])
"""
