"""Whole-result exports (CLI and API share the server-side cursor stream)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.core.db import Database
from app.core.errors import Unprocessable, field_error
from app.incidents import search
from app.incidents.filters import OutputFormat, RawFilter, Sort
from app.incidents.formats import csv_header


async def export_stream(db: Database, raw: RawFilter, fmt: str) -> AsyncIterator[str]:
    try:
        output = OutputFormat(fmt)
    except ValueError as exc:
        raise Unprocessable(
            "format: one of csv, ndjson, geojson",
            errors=[field_error("format", "unknown format", fmt)],
        ) from exc
    async with db.read() as conn:
        f = await search.resolve_filter(conn, raw, sort=Sort.newest)
    if output is OutputFormat.geojson:
        yield '{"type":"FeatureCollection","features":[\n'
        first = True
        async for chunk in search.stream(db, f, sort=Sort.newest, fmt=output, header=None):
            lines = chunk.rstrip("\n").split("\n")
            body = ",\n".join(lines)
            yield body if first else ",\n" + body
            first = False
        yield "\n]}\n"
        return
    if output is OutputFormat.json:
        output = OutputFormat.ndjson
    header = csv_header(f.near is not None) if output is OutputFormat.csv else None
    async for chunk in search.stream(db, f, sort=Sort.newest, fmt=output, header=header):
        yield chunk
