"""`incidents import FILE`: the bulk pipeline with progress, resumable.

The file is COPYed into a raw table (CSV in ACLED's layouts, NDJSON; other formats are parsed
in Python); rows an earlier import wrote and nothing changed since are set aside by their
digest (`pipeline.skip_unchanged`); the rest is loaded one of two ways:

- **chunks** (a batch small next to the store): every `--batch` rows are staged, prepared and
  written in one transaction with the job's progress, indexes kept live. An interrupted import
  loses at most the chunk in flight; the same command again skips the committed rows.
- **rebuild** (an empty store, a batch of at least `REBUILD_FRACTION` of it, or
  `--rebuild-indexes always`): the whole file is staged and prepared (duplicates found with
  the store's indexes); if what it would write is still that large (or `always`), the
  secondary indexes are recorded in the job and dropped, the batch is written in one
  transaction, and the indexes are built again two at a time (`indexes`). Killed
  before the write commits, the store is as before (minus indexes the next run rebuilds first);
  killed after, the next run only rebuilds what is missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO, cast

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from app.incidents.importers import indexes
from app.incidents.importers.pipeline import (
    prepare,
    resolve_locations,
    skip_unchanged,
    stage_raw,
    upsert_rows,
    write,
)
from app.incidents.importers.raw import RawTable, Tables, copy_in, work_tables
from app.incidents.importers.readers import Record, read_records, sniff
from app.incidents.importers.rows import BulkReport, take
from app.stats.rollups import compact

# A batch of at least this fraction of the store is loaded with its indexes rebuilt.
REBUILD_FRACTION = 0.25
# After a load of at least this fraction of the store (as the planner last counted it), the
# import analyses `incidents` itself.
ANALYZE_FRACTION = 0.1


def fingerprint(path: Path) -> str:
    """Size plus a hash of the first and last MiB: identifies the same file across runs."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        digest.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(size - (1 << 20))
            digest.update(f.read(1 << 20))
    return digest.hexdigest()[:32]


@dataclass
class ImportResult:
    job_id: int
    resumed_from: int
    report: BulkReport
    seconds: float
    rows_per_second: float
    indexes_built: dict[str, float] = field(default_factory=dict)  # seconds per index


# After a large load: statistics for the new rows, and the rollups cleared of the delta rows
# compaction just folded (small tables; otherwise index scans wade through dead rows until
# autovacuum comes by).
ANALYZE_SQL = "ANALYZE incidents"
VACUUM_SQL = "VACUUM (ANALYZE) incident_rollup_month, incident_tile_cells, incident_grid_cells"
ROLLUPS_ANALYZE_SQL = "ANALYZE incident_rollup_month, incident_tile_cells, incident_grid_cells"


def _skip(records: Iterator[Record], done: int) -> Iterator[Record]:
    for record in records:
        if record.row > done:
            yield record


@contextmanager
def progress_bar(
    raw: IO[bytes], total_bytes: int, enabled: bool
) -> Iterator[tuple[IO[bytes], Callable[[int], None]]]:
    """The file read through a progress bar on stderr (bytes read of the file, rows, rows/s,
    time left), and the function that reports rows; nothing drawn when not `enabled`."""
    if not enabled:
        yield raw, lambda rows: None
        return
    columns = (
        BarColumn(bar_width=30),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("{task.fields[rows]:,} rows  {task.fields[rate]:,.0f} rows/s  ETA"),
        TimeRemainingColumn(),
    )
    started = time.perf_counter()
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("import", total=total_bytes, rows=0, rate=0.0)

        def rows_done(rows: int) -> None:
            rate = rows / max(time.perf_counter() - started, 1e-6)
            progress.update(task, rows=rows, rate=rate)

        with progress.wrap_file(cast(BinaryIO, raw), task_id=task) as reader:
            yield reader, rows_done
        progress.update(task, completed=total_bytes)


async def _job(conn: asyncpg.Connection, key: str, path: Path, fmt: str) -> asyncpg.Record:
    job = await conn.fetchrow(
        "SELECT id, rows_done, phase, indexes, inserted, updated, unchanged FROM import_jobs "
        "WHERE fingerprint = $1 AND status = 'running' ORDER BY id DESC LIMIT 1",
        key,
    )
    if job is None:
        job = await conn.fetchrow(
            "INSERT INTO import_jobs (fingerprint, path, format) VALUES ($1, $2, $3) "
            "RETURNING id, rows_done, phase, indexes, inserted, updated, unchanged",
            key,
            str(path),
            fmt,
        )
    return job


PROGRESS_SQL = (
    "UPDATE import_jobs SET rows_done = greatest(rows_done, $2), inserted = inserted + $3, "
    "updated = updated + $4, unchanged = unchanged + $5, phase = $6, updated_at = now() "
    "WHERE id = $1"
)


async def _progress(
    conn: asyncpg.Connection,
    job_id: int,
    report: BulkReport,
    before: tuple[int, int, int],
    phase: str = "rows",
) -> None:
    await conn.execute(
        PROGRESS_SQL,
        job_id,
        report.last_row,
        report.inserted - before[0],
        report.updated - before[1],
        report.unchanged - before[2],
        phase,
    )


def _counts(report: BulkReport) -> tuple[int, int, int]:
    return (report.inserted, report.updated, report.unchanged)


async def _store_rows(conn: asyncpg.Connection) -> int:
    """Rows in the store: the planner's estimate, or a count when it has none yet."""
    estimate = await conn.fetchval(
        "SELECT reltuples FROM pg_class WHERE oid = 'incidents'::regclass"
    )
    if estimate is None or estimate < 0:
        return int(await conn.fetchval("SELECT count(*) FROM incidents"))
    return int(estimate)


async def _load_chunks(
    conn: asyncpg.Connection,
    helper: asyncpg.Connection,
    raw: RawTable,
    job_id: int,
    done_rows: int,
    batch: int,
    changed_by: str,
    report: BulkReport,
    report_rows: Callable[[int], None],
) -> None:
    for first in range(done_rows + 1, raw.rows + 1, batch):
        last = min(first + batch - 1, raw.rows)
        before = _counts(report)
        await stage_raw(conn, raw, first, last, report, helper)
        prepared = await prepare(conn, raw.tables, report, helper)
        async with conn.transaction():
            await write(conn, raw.tables, prepared, changed_by=changed_by, report=report)
            await _progress(conn, job_id, report, before)
        report_rows(report.received)


async def _load_rebuilding(
    conn: asyncpg.Connection,
    helper: asyncpg.Connection,
    connect: indexes.Connect,
    raw: RawTable,
    job_id: int,
    batch: int,
    changed_by: str,
    report: BulkReport,
    report_rows: Callable[[int], None],
    *,
    force: bool,
    store: int,
) -> dict[str, float]:
    await stage_raw(conn, raw, 1, raw.rows, report, helper)
    report_rows(report.received)
    prepared = await prepare(conn, raw.tables, report, helper)
    await conn.execute(f"DROP TABLE IF EXISTS {raw.tables.raw}, {raw.tables.stage}")
    if not force and (prepared.to_write == 0 or prepared.to_write < REBUILD_FRACTION * store):
        # Mostly rows the store already holds unchanged: written with the indexes live.
        async with conn.transaction():
            before = _counts(report)
            await write(conn, raw.tables, prepared, changed_by=changed_by, report=report)
            await _progress(conn, job_id, report, before)
        return {}
    defs = await indexes.definitions(conn)
    await conn.execute(
        "UPDATE import_jobs SET phase = 'loading', indexes = $2::jsonb, updated_at = now() "
        "WHERE id = $1",
        job_id,
        json.dumps(defs),
    )
    with report.timed("drop indexes"):
        await indexes.drop(conn, defs)
    async with conn.transaction():
        before = _counts(report)
        await write(
            conn, raw.tables, prepared, changed_by=changed_by, report=report, rollups_on=helper
        )
        await _progress(conn, job_id, report, before, phase="indexing")
    with report.timed("build indexes"):
        return await indexes.build(connect, defs)


async def _load_python(
    conn: asyncpg.Connection,
    tables: Tables,
    records: Iterator[Record],
    job_id: int,
    batch: int,
    changed_by: str,
    report: BulkReport,
    report_rows: Callable[[int], None],
) -> None:
    """Formats SQL does not read: parsed and validated in a worker thread, chunk by chunk
    (parsing the next chunk overlaps with the database writing this one)."""
    finished = False
    loop_task = asyncio.create_task(asyncio.to_thread(take, records, report, batch))
    try:
        while not finished:
            rows, pending, finished = await loop_task
            if not finished:
                loop_task = asyncio.create_task(asyncio.to_thread(take, records, report, batch))
            rows += await resolve_locations(conn, pending, report)
            async with conn.transaction():
                before = _counts(report)
                await upsert_rows(conn, tables, rows, changed_by=changed_by, report=report)
                await _progress(conn, job_id, report, before)
            report_rows(report.received)
    finally:
        if not loop_task.done():
            loop_task.cancel()


async def run_import(
    conn: asyncpg.Connection,
    path: Path,
    *,
    fmt: str | None = None,
    batch: int = 50_000,
    changed_by: str = "import",
    progress: bool = True,
    rebuild_indexes: str = "auto",
    connect: indexes.Connect,
) -> ImportResult:
    """Imports `path`. `rebuild_indexes`: auto (by the batch's size next to the store), always,
    never. `connect` opens the extra connections an index rebuild uses."""
    started = time.perf_counter()
    size = path.stat().st_size  # noqa: ASYNC240 (the CLI's only task)
    key = fingerprint(path)
    with path.open("rb") as raw_head:
        head = raw_head.read(65536)
    detected = fmt or sniff(head, "text/csv" if path.suffix.lower() == ".csv" else None)
    job = await _job(conn, key, path, detected)
    job_id, done_rows = job["id"], job["rows_done"]
    rebuilt: dict[str, float] = {}
    if job["indexes"] is not None:
        # An earlier run of this file was killed with indexes dropped: build them first.
        rebuilt = await indexes.restore(conn, connect, job["indexes"])
    report = BulkReport()
    if job["phase"] == "indexing":
        # ...after its rows were written: nothing else to do.
        report.inserted, report.updated = job["inserted"], job["updated"]
        report.unchanged = job["unchanged"]
    else:
        if job["phase"] == "loading":
            done_rows = 0  # the write had not committed: the store is as before the load
        tables = await work_tables(conn)
        with (
            path.open("rb", buffering=1 << 20) as raw_file,
            progress_bar(raw_file, size, progress) as (reader, report_rows),
        ):
            with report.timed("copy raw"):
                raw = await copy_in(conn, tables, reader, detected)
            if raw is not None:
                await skip_unchanged(conn, raw, report)
            if raw is None:
                _, records = read_records(reader, detected)
                await _load_python(
                    conn,
                    tables,
                    _skip(records, done_rows),
                    job_id,
                    batch,
                    changed_by,
                    report,
                    report_rows,
                )
            else:
                # A second connection: the big statements over the work tables run in halves,
                # one per connection.
                helper = await connect()
                try:
                    store = await _store_rows(conn)
                    if rebuild_indexes == "always" or (
                        rebuild_indexes == "auto"
                        and done_rows == 0
                        and raw.rows >= REBUILD_FRACTION * store
                    ):
                        rebuilt = await _load_rebuilding(
                            conn,
                            helper,
                            connect,
                            raw,
                            job_id,
                            batch,
                            changed_by,
                            report,
                            report_rows,
                            force=rebuild_indexes == "always",
                            store=store,
                        )
                    else:
                        report.received = done_rows
                        await _load_chunks(
                            conn,
                            helper,
                            raw,
                            job_id,
                            done_rows,
                            batch,
                            changed_by,
                            report,
                            report_rows,
                        )
                finally:
                    await helper.close()
        await tables.drop(conn)
    with report.timed("compact rollups"):
        if report.inserted + report.updated:
            # Statistics that count the deltas just added: planned for the few rows the
            # rollups held before (emptied, say), folding a million rows' deltas takes 20x
            # longer (nested loops where a hash join belongs).
            await conn.execute(ROLLUPS_ANALYZE_SQL)
        await compact(conn)
    written = report.inserted + report.updated
    if written or rebuilt:
        with report.timed("analyze"):
            # Fresh statistics before the first query: a plan made for an empty table after
            # a million-row load (autovacuum may not have run yet) can be 100x slower. A load
            # small next to the store leaves them to autovacuum.
            if rebuilt or written >= ANALYZE_FRACTION * await _store_rows(conn):
                await conn.execute(ANALYZE_SQL)
            await conn.execute(VACUUM_SQL)
    await conn.execute(
        "UPDATE import_jobs SET status = 'done', phase = 'done', indexes = NULL, "
        "failed = failed + $2, updated_at = now() WHERE id = $1",
        job_id,
        report.failed,
    )
    seconds = time.perf_counter() - started
    return ImportResult(
        job_id=job_id,
        resumed_from=done_rows,
        report=report,
        seconds=seconds,
        rows_per_second=report.received / seconds if seconds else 0.0,
        indexes_built=rebuilt,
    )
