"""Bulk ingest over HTTP: the upload is spooled to disk, parsed as a stream in a worker
thread, and upserted batch by batch in one transaction."""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import asyncpg
from fastapi import Request

from app.core.db import Database
from app.core.errors import BadRequest, Unprocessable, field_error
from app.incidents.enrich import place_at, unknown_place
from app.incidents.importers.pipeline import (
    BulkReport,
    Pending,
    RowProblem,
    ensure_stage,
    stage_tuple,
    take,
    upsert_stage,
)
from app.incidents.importers.readers import ReadError, read_records, sniff
from app.places.service import best_place
from app.stats.rollups import compact_quietly

BATCH = 5000
# A batch of 5,000 rows may take longer than an ordinary query's statement timeout.
BATCH_TIMEOUT_S = 300.0
SPOOL_IN_MEMORY = 8 * 1024 * 1024


async def spool(request: Request) -> tempfile.SpooledTemporaryFile[bytes]:
    """The body on disk (memory up to 8 MB), read chunk by chunk; the size limit is enforced
    by the body-limit middleware as the chunks arrive."""
    file: tempfile.SpooledTemporaryFile[bytes] = tempfile.SpooledTemporaryFile(
        max_size=SPOOL_IN_MEMORY
    )
    async for chunk in request.stream():
        file.write(chunk)
    file.seek(0)
    return file


async def resolve_locations(
    conn: asyncpg.Connection, pending: list[Pending], report: BulkReport
) -> list[tuple[Any, ...]]:
    """Rows with a place name and no coordinates, placed through the gazetteer (each distinct
    name looked up once)."""
    rows = []
    cache: dict[tuple[str, str | None], dict[str, Any] | None] = {}
    for item in pending:
        incident = item.incident
        key = (incident.location or "", incident.country_code)
        if key not in cache:
            cache[key] = await best_place(conn, name=key[0], country=key[1])
        place = cache[key]
        if place is None:
            report.add_error(RowProblem(item.row, item.line, [unknown_place(key[0])]))
            continue
        place_at(incident, place)
        rows.append(stage_tuple(item.row, item.line, incident))
    return rows


async def ingest(
    db: Database,
    body: tempfile.SpooledTemporaryFile[bytes],
    *,
    content_type: str | None,
    fmt: str | None,
    atomic: bool,
    changed_by: str,
) -> dict[str, Any]:
    head = body.read(65536)
    body.seek(0)
    detected = fmt or sniff(head, content_type)
    try:
        layout, records = read_records(body, detected)
    except ReadError as exc:
        raise BadRequest(
            f"Cannot read the body as {detected}: {exc}", errors=[field_error("body", str(exc))]
        ) from exc
    report = BulkReport()
    async with db.read() as conn:
        async with conn.transaction():
            await ensure_stage(conn)
            done = False
            while not done:
                try:
                    rows, pending, done = await asyncio.to_thread(take, records, report, BATCH)
                except ReadError as exc:
                    where = f" (line {exc.line})" if exc.line else ""
                    raise BadRequest(
                        f"Cannot read the body as {detected}{where}: {exc}",
                        errors=[field_error("body", str(exc))],
                    ) from exc
                rows += await resolve_locations(conn, pending, report)
                if atomic and report.failed:
                    continue  # keep reading to list every bad row; nothing will be written
                await upsert_stage(
                    conn,
                    rows,
                    changed_by=changed_by,
                    report=report,
                    statement_timeout_s=BATCH_TIMEOUT_S,
                )
            if atomic and report.failed:
                raise Unprocessable(
                    f"{report.failed} invalid row(s); with atomic=true nothing was stored.",
                    errors=[
                        {
                            "field": f"row {e.row}" + (f" (line {e.line})" if e.line else ""),
                            "message": "; ".join(f"{x['field']}: {x['message']}" for x in e.errors),
                        }
                        for e in report.errors
                    ],
                    extra={"report": report.as_dict()},
                )
        await compact_quietly(conn)
    return {"format": detected, "layout": layout, "atomic": atomic, **report.as_dict()}
