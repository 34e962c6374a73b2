"""`incidents import FILE`: the bulk pipeline in committed chunks, with progress, resumable.

Each chunk (COPY into staging + set-based upsert + job progress) is one transaction, so an
interrupted import loses at most the chunk in flight; running the same command again finds the
unfinished job by the file's fingerprint and skips the rows already committed. Parsing the next
chunk (a worker thread) overlaps with the database upserting the current one.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, cast

import asyncpg
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from app.incidents.bulk import resolve_locations
from app.incidents.importers.pipeline import BulkReport, ensure_stage, take, upsert_stage
from app.incidents.importers.readers import Record, read_records, sniff
from app.stats.rollups import compact


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


# After a large load: statistics for the new rows, and the rollups cleared of the delta rows
# compaction just folded (small tables; otherwise index scans wade through dead rows until
# autovacuum comes by).
ANALYZE_SQL = "ANALYZE incidents"
VACUUM_SQL = "VACUUM (ANALYZE) incident_rollup_month, incident_tile_cells, incident_grid_cells"


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


async def run_import(
    conn: asyncpg.Connection,
    path: Path,
    *,
    fmt: str | None = None,
    batch: int = 50_000,
    changed_by: str = "import",
    progress: bool = True,
) -> ImportResult:
    started = time.perf_counter()
    size = path.stat().st_size  # noqa: ASYNC240 (the CLI's only task)
    key = fingerprint(path)
    job = await conn.fetchrow(
        "SELECT id, rows_done FROM import_jobs WHERE fingerprint = $1 AND status = 'running' "
        "ORDER BY id DESC LIMIT 1",
        key,
    )
    with path.open("rb") as raw:
        head = raw.read(65536)
    detected = fmt or sniff(head, "text/csv" if path.suffix.lower() == ".csv" else None)
    if job is None:
        job_id = await conn.fetchval(
            "INSERT INTO import_jobs (fingerprint, path, format) VALUES ($1, $2, $3) RETURNING id",
            key,
            str(path),
            detected,
        )
        done_rows = 0
    else:
        job_id, done_rows = job["id"], job["rows_done"]
    report = BulkReport()
    await ensure_stage(conn)
    with (
        path.open("rb", buffering=1 << 20) as raw_file,
        progress_bar(raw_file, size, progress) as (reader, report_rows),
    ):
        _, records = read_records(reader, detected)
        records = _skip(records, done_rows)
        finished = False
        loop_task = asyncio.create_task(asyncio.to_thread(take, records, report, batch))
        try:
            while not finished:
                rows, pending, finished = await loop_task
                last_row = report.last_row
                if not finished:
                    loop_task = asyncio.create_task(asyncio.to_thread(take, records, report, batch))
                rows += await resolve_locations(conn, pending, report)
                async with conn.transaction():
                    before = (report.inserted, report.updated, report.unchanged)
                    await upsert_stage(conn, rows, changed_by=changed_by, report=report)
                    await conn.execute(
                        "UPDATE import_jobs SET rows_done = greatest(rows_done, $2), "
                        "inserted = inserted + $3, updated = updated + $4, "
                        "unchanged = unchanged + $5, updated_at = now() WHERE id = $1",
                        job_id,
                        last_row,
                        report.inserted - before[0],
                        report.updated - before[1],
                        report.unchanged - before[2],
                    )
                report_rows(report.received)
        finally:
            if not loop_task.done():
                loop_task.cancel()
    await compact(conn)
    if report.inserted + report.updated:
        # Fresh statistics before the first query: a plan made for an empty table after a
        # million-row load (autovacuum may not have run yet) can be 100x slower.
        await conn.execute(ANALYZE_SQL)
        await conn.execute(VACUUM_SQL)
    await conn.execute(
        "UPDATE import_jobs SET status = 'done', failed = failed + $2, updated_at = now() "
        "WHERE id = $1",
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
    )
