"""Output formats of incident lists: JSON, GeoJSON, CSV (ACLED columns first), NDJSON."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from app.incidents.filters import OutputFormat
from app.incidents.sql import INCIDENT_JSON

MEDIA_TYPES = {
    OutputFormat.json: "application/json",
    OutputFormat.geojson: "application/geo+json",
    OutputFormat.csv: "text/csv; charset=utf-8",
    OutputFormat.ndjson: "application/x-ndjson",
}

_ACCEPT = (
    ("application/geo+json", OutputFormat.geojson),
    ("text/csv", OutputFormat.csv),
    ("application/x-ndjson", OutputFormat.ndjson),
    ("application/ndjson", OutputFormat.ndjson),
    ("application/json", OutputFormat.json),
)


def negotiate(format_param: OutputFormat | None, accept: str | None) -> OutputFormat:
    """`format=` wins; otherwise the first Accept media type we serve; JSON by default."""
    if format_param is not None:
        return format_param
    if accept:
        for part in accept.split(","):
            media = part.split(";")[0].strip().lower()
            for known, fmt in _ACCEPT:
                if media == known:
                    return fmt
    return OutputFormat.json


def incident_doc_sql(distance_sql: str | None) -> str:
    """The incident JSON expression, with `distance_km` when the search has a point."""
    if distance_sql is None:
        return INCIDENT_JSON
    return (
        INCIDENT_JSON.rstrip()[:-1]
        + f", 'distance_km', round(({distance_sql} / 1000.0)::numeric, 4))"
    )


def feature_doc_sql(distance_sql: str | None) -> str:
    """A GeoJSON Feature (RFC 7946: `[lon, lat]`) with the incident as properties."""
    return (
        "json_build_object('type', 'Feature', 'id', i.id::text, 'geometry', "
        "json_build_object('type', 'Point', 'coordinates', "
        "json_build_array(ST_X(i.geom), ST_Y(i.geom))), 'properties', "
        + incident_doc_sql(distance_sql)
        + ")"
    )


# ACLED's column names first (same meaning), then ours.
CSV_COLUMNS: list[tuple[str, str]] = [
    ("event_id_cnty", "i.external_id"),
    ("event_date", "i.event_date"),
    ("year", "extract(year FROM i.event_date)::int"),
    ("time_precision", "i.time_precision"),
    ("disorder_type", "i.disorder_type"),
    ("event_type", "i.event_type"),
    ("sub_event_type", "i.sub_event_type"),
    ("actor1", "i.actor1"),
    ("assoc_actor_1", "i.assoc_actor_1"),
    ("actor2", "i.actor2"),
    ("assoc_actor_2", "i.assoc_actor_2"),
    ("civilian_targeting", "CASE WHEN i.civilian_targeting THEN 'Civilian targeting' ELSE '' END"),
    ("iso3", "i.country_code"),
    ("country", "i.country"),
    ("admin1", "i.admin1"),
    ("admin2", "i.admin2"),
    ("admin3", "i.admin3"),
    ("location", "i.location"),
    ("latitude", "ST_Y(i.geom)"),
    ("longitude", "ST_X(i.geom)"),
    ("geo_precision", "i.geo_precision"),
    ("source", "i.source"),
    ("source_scale", "i.source_scale"),
    ("notes", "i.notes"),
    ("fatalities", "i.fatalities"),
    ("tags", "array_to_string(i.tags, '; ')"),
    ("timestamp", "extract(epoch FROM i.updated_at)::bigint"),
    ("id", "i.id::text"),
    ("event_date_end", "i.event_date_end"),
    ("fatalities_low", "i.fatalities_low"),
    ("fatalities_high", "i.fatalities_high"),
    ("created_at", "i.created_at"),
    ("updated_at", "i.updated_at"),
    ("version", "i.version"),
]


def csv_select_sql(distance_sql: str | None) -> str:
    columns = [f"{expr} AS c{n}" for n, (_, expr) in enumerate(CSV_COLUMNS)]
    if distance_sql is not None:
        columns.append(f"round(({distance_sql} / 1000.0)::numeric, 4) AS c{len(CSV_COLUMNS)}")
    return ", ".join(columns)


def csv_header(with_distance: bool) -> list[str]:
    names = [name for name, _ in CSV_COLUMNS]
    return [*names, "distance_km"] if with_distance else names


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def csv_chunk(rows: Iterable[Any], width: int, header: list[str] | None = None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(row[n]) for n in range(width)])
    return buffer.getvalue()
