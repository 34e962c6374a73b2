"""`incidents import FILE`: the bulk pipeline in committed chunks, with progress, resumable.

Each chunk (COPY into staging + set-based upsert + job progress) is one transaction, so an
interrupted import loses at most the chunk in flight; running the same command again finds the
unfinished job by the file's fingerprint and skips the rows already committed. Parsing the next
chunk (a worker thread) overlaps with the database upserting the current one.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import asyncpg

from app.incidents.bulk import resolve_locations
from app.incidents.importers.pipeline import BulkReport, ensure_stage, take, upsert_stage
from app.incidents.importers.readers import Record, read_records, sniff
from app.stats.rollups import compact


class CountingReader:
    """A binary file that counts the bytes read, for progress and ETA."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.count += len(data)
        return data

    def read1(self, size: int = -1) -> bytes:
        data = self.raw.read1(size) if hasattr(self.raw, "read1") else self.raw.read(size)
        self.count += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        self.count += n or 0
        return n or 0

    def __iter__(self) -> Iterator[bytes]:
        for line in self.raw:
            self.count += len(line)
            yield line

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return False

    @property
    def closed(self) -> bool:
        return self.raw.closed

    def flush(self) -> None:
        pass


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


def progress_printer(total_bytes: int, stream: IO[str] = sys.stderr) -> Callable[..., None]:
    started = time.perf_counter()

    def show(rows: int, read_bytes: int, final: bool = False) -> None:
        elapsed = max(time.perf_counter() - started, 1e-6)
        rate = rows / elapsed
        fraction = read_bytes / total_bytes if total_bytes else 1.0
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else 0.0
        bar = "#" * int(fraction * 30)
        stream.write(
            f"\r[{bar:<30}] {fraction:6.1%}  {rows:,} rows  {rate:,.0f} rows/s  "
            f"ETA {eta:4.0f}s " + ("\n" if final else "")
        )
        stream.flush()

    return show


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
    print_progress = progress_printer(size) if progress else None
    print_ = print_progress or (lambda *a, **k: None)
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
    with path.open("rb", buffering=1 << 20) as raw_file:
        counted = CountingReader(raw_file)
        _, records = read_records(counted, detected)  # type: ignore[arg-type]
        records = _skip(records, done_rows)
        finished = False
        loop_task = asyncio.create_task(asyncio.to_thread(take, records, report, batch))
        try:
            while not finished:
                rows, pending, finished = await loop_task
                last_row = report.last_row
                if not finished:
                    loop_task = asyncio.create_task(
                        asyncio.to_thread(take, records, report, batch)
                    )
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
                print_(report.received, counted.count)
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
    print_(report.received, size, True)
    return ImportResult(
        job_id=job_id,
        resumed_from=done_rows,
        report=report,
        seconds=seconds,
        rows_per_second=report.received / seconds if seconds else 0.0,
    )
