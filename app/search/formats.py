"""Output formats of incident lists: JSON, GeoJSON, CSV (ACLED columns first), NDJSON."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

from app.incidents.fields import CSV_FIELDS
from app.incidents.sql import feature_json, incident_json
from app.search.filters import OutputFormat

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
        return incident_json()
    return incident_json({"distance_km": f"round(({distance_sql} / 1000.0)::numeric, 4)"})


def feature_doc_sql(distance_sql: str | None) -> str:
    """A GeoJSON Feature (RFC 7946: `[lon, lat]`) with the whole incident as properties."""
    return feature_json(incident_doc_sql(distance_sql))


# ACLED's column names first (same meaning), then ours: from the field registry.
CSV_COLUMNS: list[tuple[str, str]] = [(f.csv_name, f.csv_sql) for f in CSV_FIELDS]


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
