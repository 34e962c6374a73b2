"""The import floor: the same ACLED CSV loaded into a copy of our schema the fastest way
PostgreSQL allows, for comparison with `incidents import` in the same run.

    .venv/bin/python bench/import_floor.py bench/data/acled_1000000.csv

A fresh database migrated to head (our tables, types and functions), then: every index of
`incidents` but its primary key dropped and its triggers disabled; the file COPYed into a
staging table of text columns (PostgreSQL parses the CSV); one INSERT…SELECT casting into
`incidents`; every index built again (maintenance_work_mem 1 GB, two at a time on two
connections, as `incidents import` builds them); ANALYZE. No validation, history, change
feed, duplicate flags or rollups: those are what `incidents import` adds. Prints each step
and rows/s.

    .venv/bin/python bench/import_floor.py NEW.csv --into postgresql://.../incidents_bench

The floor of a load into a store that already holds data, indexes kept live: the file COPYed
into a staging table and one INSERT…SELECT into the existing `incidents` (its triggers
disabled for this session only), timed, then rolled back, so the store is as before.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import sys
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.cli import run_migrations  # noqa: E402
from app.core.config import to_plain_url  # noqa: E402
from app.incidents.importers.indexes import build as build_indexes  # noqa: E402

CAST = {
    "event_id_cnty": "nullif(event_id_cnty, '')",
    "event_date": "event_date::date",
    "time_precision": "nullif(time_precision, '')::smallint",
    "disorder_type": "nullif(disorder_type, '')",
    "event_type": "event_type",
    "sub_event_type": "nullif(sub_event_type, '')",
    "actor1": "nullif(actor1, '')",
    "assoc_actor_1": "nullif(assoc_actor_1, '')",
    "actor2": "nullif(actor2, '')",
    "assoc_actor_2": "nullif(assoc_actor_2, '')",
    "civilian_targeting": "coalesce(civilian_targeting, '') <> ''",
    "country": "nullif(country, '')",
    "admin1": "nullif(admin1, '')",
    "admin2": "nullif(admin2, '')",
    "admin3": "nullif(admin3, '')",
    "location": "nullif(location, '')",
    "geo_precision": "nullif(geo_precision, '')::smallint",
    "source": "nullif(source, '')",
    "source_scale": "nullif(source_scale, '')",
    "notes": "nullif(notes, '')",
    "fatalities": "fatalities::int",
    "tags": "coalesce(string_to_array(nullif(tags, ''), '; '), '{}')",
}
TARGET = {"event_id_cnty": "external_id"}


# The casts into `incidents` (PostgreSQL's own casts, no validation) from a staging table.
def insert_sql(stage: str) -> str:
    """The casts into `incidents` (PostgreSQL's own, no validation) from staging table `stage`:
    column names and casts from the constants above."""
    targets = ", ".join(TARGET.get(c, c) for c in CAST)
    return (
        f"INSERT INTO incidents ({targets}, geom) SELECT {', '.join(CAST.values())}, "  # noqa: S608
        f"ST_SetSRID(ST_MakePoint(longitude::float8, latitude::float8), 4326) FROM {stage}"
    )


async def copy_stage(conn: asyncpg.Connection, path: Path, create: str) -> float:
    """The CSV COPYed into a table `stage` of text columns (its header's); the COPY's seconds."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        header = next(csv.reader(f))
    columns = ", ".join(f'"{h}" text' for h in header)
    await conn.execute(f"{create} stage ({columns})")
    started = time.perf_counter()
    with path.open("rb") as f:
        await conn.copy_to_table("stage", source=f, format="csv", header=True)
    return time.perf_counter() - started


async def floor(url: str, path: Path) -> dict[str, float]:
    conn = await asyncpg.connect(url, server_settings={"statement_timeout": "0"})
    times: dict[str, float] = {}
    try:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'incidents' "
            "AND indexname <> 'incidents_pkey' AND indexname NOT IN (SELECT conname "
            "FROM pg_constraint WHERE conrelid = 'incidents'::regclass)"
        )
        constraints = await conn.fetch(
            "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint "
            "WHERE conrelid = 'incidents'::regclass AND contype = 'u'"
        )
        for c in constraints:
            await conn.execute(f'ALTER TABLE incidents DROP CONSTRAINT "{c["conname"]}"')
        for index in indexes:
            await conn.execute(f'DROP INDEX IF EXISTS "{index["indexname"]}"')
        await conn.execute("ALTER TABLE incidents DISABLE TRIGGER USER")
        times["copy"] = await copy_stage(conn, path, "CREATE UNLOGGED TABLE")
        started = time.perf_counter()
        await conn.execute(insert_sql("stage"))
        times["insert"] = time.perf_counter() - started
        started = time.perf_counter()
        for c in constraints:
            one = time.perf_counter()
            await conn.execute(f'ALTER TABLE incidents ADD CONSTRAINT "{c["conname"]}" {c["def"]}')
            times[f"constraint {c['conname']}"] = time.perf_counter() - one
        # Two builds at a time, one per core (faster on this machine than one after the
        # other with parallel workers: 13-14 s against 20 s for a million rows).
        built = await build_indexes(
            lambda: asyncpg.connect(url, server_settings={"statement_timeout": "0"}),
            [{"name": i["indexname"], "ddl": i["indexdef"]} for i in indexes],
        )
        times.update({f"index {name}": seconds for name, seconds in built.items()})
        times["indexes"] = time.perf_counter() - started
        started = time.perf_counter()
        await conn.execute("ANALYZE incidents")
        times["analyze"] = time.perf_counter() - started
        times["rows"] = float(await conn.fetchval("SELECT count(*) FROM incidents"))
    finally:
        await conn.close()
    return times


async def floor_into(url: str, path: Path) -> dict[str, float]:
    """COPY + INSERT…SELECT into a populated store with its indexes live, rolled back."""
    conn = await asyncpg.connect(url, server_settings={"statement_timeout": "0"})
    times: dict[str, float] = {}
    try:
        tx = conn.transaction()
        await tx.start()
        # Triggers off for this session only (history, rollups): what we add, not the floor.
        await conn.execute("SET LOCAL session_replication_role = replica")
        times["copy"] = await copy_stage(conn, path, "CREATE TEMP TABLE")
        started = time.perf_counter()
        result = await conn.execute(insert_sql("stage"))
        times["insert (indexes live)"] = time.perf_counter() - started
        times["rows"] = float(result.split()[-1])
        await tx.rollback()
    finally:
        await conn.close()
    return times


async def fresh(base: str, name: str) -> str:
    admin = await asyncpg.connect(f"{base}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return f"{base}/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("csv", type=Path)
    parser.add_argument(
        "--database-url",
        default=to_plain_url(os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1/x")),
        help="any database URL of the server; the floor uses a database of its own",
    )
    parser.add_argument("--name", default="incidents_floor")
    parser.add_argument(
        "--into",
        metavar="URL",
        help="a populated store: time the load into it with indexes live, then roll back",
    )
    args = parser.parse_args()
    if args.into:
        times = asyncio.run(floor_into(args.into, args.csv))
        rows = times.pop("rows")
        for step, seconds in times.items():
            print(f"floor {step:<40} {seconds:7.2f} s")
        total = sum(times.values())
        print(f"floor total {total:.1f} s for {rows:,.0f} rows = {rows / total:,.0f} rows/s")
        return
    base = args.database_url.rsplit("/", 1)[0]
    url = asyncio.run(fresh(base, args.name))
    run_migrations("head", database_url=url)
    times = asyncio.run(floor(url, args.csv))
    rows = times.pop("rows")
    total = times["copy"] + times["insert"] + times["indexes"] + times["analyze"]
    for step, seconds in times.items():
        print(f"floor {step:<40} {seconds:7.2f} s")
    print(f"floor total {total:.1f} s for {rows:,.0f} rows = {rows / total:,.0f} rows/s")


if __name__ == "__main__":
    main()
