"""Bulk ingest over HTTP: the upload is spooled to disk, then loaded in one transaction by the
import pipeline: CSV and NDJSON COPYed raw and mapped in SQL, other formats parsed as a stream
in a worker thread and upserted batch by batch."""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import asyncpg
from fastapi import Request

from app.core.db import Database
from app.core.errors import BadRequest, Unprocessable, field_error
from app.incidents.importers.pipeline import (
    prepare,
    resolve_locations,
    skip_unchanged,
    stage_raw,
    upsert_rows,
    write,
)
from app.incidents.importers.raw import Tables, copy_in, work_tables
from app.incidents.importers.readers import ReadError, read_records, sniff
from app.incidents.importers.rows import BulkReport, take
from app.stats.rollups import compact_quietly

BATCH = 5000  # rows parsed in Python per step (formats SQL does not read)
# A whole request is one transaction, which may take longer than an ordinary statement.
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


def _refused(report: BulkReport) -> Unprocessable:
    return Unprocessable(
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


async def _python_path(
    conn: asyncpg.Connection,
    tables: Tables,
    body: tempfile.SpooledTemporaryFile[bytes],
    detected: str,
    atomic: bool,
    changed_by: str,
    report: BulkReport,
) -> str:
    try:
        layout, records = read_records(body, detected)
    except ReadError as exc:
        raise BadRequest(
            f"Cannot read the body as {detected}: {exc}", errors=[field_error("body", str(exc))]
        ) from exc
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
        await upsert_rows(conn, tables, rows, changed_by=changed_by, report=report)
    return layout


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
    report = BulkReport()
    async with db.long_connection(BATCH_TIMEOUT_S) as conn:
        # Work tables outside the write's transaction (so a second connection can read them
        # and take half of each big statement), dropped whatever happens; the write itself is
        # one transaction, so the store gets all of the batch or none of it.
        tables = await work_tables(conn)
        try:
            raw = await copy_in(conn, tables, body, detected)
            if raw is None:
                async with conn.transaction():
                    layout = await _python_path(
                        conn, tables, body, detected, atomic, changed_by, report
                    )
                    if atomic and report.failed:
                        raise _refused(report)
            else:
                layout = raw.layout
                await skip_unchanged(conn, raw, report)
                async with db.long_connection(BATCH_TIMEOUT_S) as helper:
                    await stage_raw(conn, raw, 1, raw.rows, report, helper)
                    if atomic and report.failed:
                        raise _refused(report)
                    prepared = await prepare(conn, tables, report, helper)
                async with conn.transaction():
                    await write(conn, tables, prepared, changed_by=changed_by, report=report)
        finally:
            await tables.drop(conn)
    async with db.read() as conn:
        await compact_quietly(conn)
    return {"format": detected, "layout": layout, "atomic": atomic, **report.as_dict()}
