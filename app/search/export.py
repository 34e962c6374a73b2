"""Whole-result exports: `incidents export` streams the same search as the API."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.core.db import Database
from app.core.errors import Unprocessable, field_error
from app.search import service
from app.search.filters import OutputFormat, RawFilter, Sort
from app.search.formats import csv_header
from app.search.resolve import resolve_filter


async def export_stream(db: Database, raw: RawFilter, fmt: str) -> AsyncIterator[str]:
    try:
        output = OutputFormat(fmt)
    except ValueError as exc:
        raise Unprocessable(
            "format: one of csv, ndjson, geojson",
            errors=[field_error("format", "unknown format", fmt)],
        ) from exc
    async with db.read() as conn:
        f = await resolve_filter(conn, raw)
    if output is OutputFormat.geojson:
        yield '{"type":"FeatureCollection","features":[\n'
        first = True
        async for chunk in service.stream(db, f, sort=Sort.newest, fmt=output, header=None):
            body = ",\n".join(chunk.rstrip("\n").split("\n"))
            yield body if first else ",\n" + body
            first = False
        yield "\n]}\n"
        return
    if output is OutputFormat.json:
        output = OutputFormat.ndjson
    header = csv_header(f.near is not None) if output is OutputFormat.csv else None
    async for chunk in service.stream(db, f, sort=Sort.newest, fmt=output, header=header):
        yield chunk
