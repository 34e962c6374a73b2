"""SQL fragments shared by every query that returns incidents. Fixed text, bound parameters."""

from __future__ import annotations

# One incident as JSON, built by PostgreSQL (alias `i`). Every endpoint that returns incidents
# uses this, so the JSON shape is defined once.
INCIDENT_JSON = """json_build_object(
    'id', i.id::text,
    'external_id', i.external_id,
    'event_date', i.event_date,
    'event_date_end', i.event_date_end,
    'time_precision', i.time_precision,
    'disorder_type', i.disorder_type,
    'event_type', i.event_type,
    'sub_event_type', i.sub_event_type,
    'actor1', i.actor1,
    'assoc_actor_1', i.assoc_actor_1,
    'actor2', i.actor2,
    'assoc_actor_2', i.assoc_actor_2,
    'civilian_targeting', i.civilian_targeting,
    'fatalities', i.fatalities,
    'fatalities_low', i.fatalities_low,
    'fatalities_high', i.fatalities_high,
    'country', i.country,
    'country_code', i.country_code,
    'admin1', i.admin1,
    'admin2', i.admin2,
    'admin3', i.admin3,
    'location', i.location,
    'latitude', ST_Y(i.geom),
    'longitude', ST_X(i.geom),
    'geo_precision', i.geo_precision,
    'source', i.source,
    'source_scale', i.source_scale,
    'sources', i.sources,
    'notes', i.notes,
    'tags', i.tags,
    'created_at', i.created_at,
    'updated_at', i.updated_at,
    'version', i.version,
    'possible_duplicates', i.possible_duplicates::text[]
)"""

# Columns a client writes, in one fixed order (insert and update share it).
WRITABLE_COLUMNS: tuple[str, ...] = (
    "external_id",
    "event_date",
    "event_date_end",
    "time_precision",
    "disorder_type",
    "event_type",
    "sub_event_type",
    "actor1",
    "assoc_actor_1",
    "actor2",
    "assoc_actor_2",
    "civilian_targeting",
    "fatalities",
    "fatalities_low",
    "fatalities_high",
    "country",
    "country_code",
    "admin1",
    "admin2",
    "admin3",
    "location",
    "geo_precision",
    "source",
    "source_scale",
    "sources",
    "notes",
    "tags",
)

# Fields of the input model that are compared to tell what a change touched.
COMPARED_FIELDS: tuple[str, ...] = (*WRITABLE_COLUMNS, "latitude", "longitude")

# Possible duplicates of a new incident: one definition, the SQL function
# incident_possible_duplicates (migration 0005), also used set-based by bulk ingest.
DUPLICATE_CANDIDATES_SQL = """
SELECT incident_possible_duplicates(:longitude, :latitude, :event_type,
    CAST(:event_date AS date), :external_id,
    ARRAY[:actor1, :assoc_actor_1, :actor2, :assoc_actor_2]::text[])
"""
