"""Index audit of `incidents`: what each index costs a load and which queries use it.

    .venv/bin/python bench/index_audit.py [--database-url URL] [--csv FILE] [--rows 50000]

On the benchmark database (1M incidents, `bash bench/import_bench.sh`):

- **cost**: ROWS rows of FILE (new external ids) inserted in one INSERT…SELECT with every
  index live, and again with each secondary index dropped in turn; every attempt is a
  transaction that is rolled back (triggers off for the session: their cost is the same for
  every index). An index's cost is the time it adds, best of two runs each.
- **use**: the plan (EXPLAIN, no ANALYZE) of every query the benchmark scenarios send (built
  by the API's own code, `bench/http_bench.py`), plus the filters and lookups those do not
  cover: which indexes appear in which plans.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from http_bench import SCENARIOS, floor_sql  # noqa: E402
from import_floor import insert_sql  # noqa: E402

from app.acled.lookups import DELETED_SQL  # noqa: E402
from app.changes.service import FEED_SQL  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.core.db import server_settings  # noqa: E402

# Filters of the search API beyond the scenarios', through the same query builder.
EXTRA_FILTERS: dict[str, dict[str, Any]] = {
    "actor filter": {"actor": "Islamic State"},
    "full-text q": {"q": "attack"},
    "admin1 Diyala": {"admin1": "Diyala"},
    "admin2 Khanaqin": {"admin2": "Khanaqin"},
    "country Iraq": {"country": "Iraq"},
    "event type Battles": {"event_type": "Battles"},
    "min_fatalities 20": {"min_fatalities": 20},
    # Values with few or no matches (real data has a long tail of actors, districts, words;
    # the synthetic set has none, so these stand in for it).
    "rare actor": {"actor": "Kakai Kurds"},
    "rare word q": {"q": "Kakai"},
    "rare admin1": {"admin1": "Halabja"},
    "rare admin2": {"admin2": "Kalar"},
    "radius 10 km, all dates": {"near": "34.348,45.391", "radius_km": 10},
    "bbox Diyala, all dates": {"bbox": "44.5,33.5,46.0,35.0"},
}
OTHER_SQL: dict[str, tuple[str, list[Any]]] = {
    "duplicate probe (bulk + single create)": (
        "SELECT i.id FROM incidents i WHERE i.event_type = $1 "
        "AND incident_lat_cell(i.geom) = ANY($2::int[]) AND i.event_date BETWEEN $3 AND $4 "
        "AND i.deleted_at IS NULL LIMIT 10",
        ["Battles", [1716, 1717, 1718], dt.date(2024, 1, 1), dt.date(2024, 1, 3)],
    ),
    "upsert match on external_id": (
        "SELECT id FROM incidents WHERE external_id = ANY($1::text[])",
        [["IRQ1", "SYR2"]],
    ),
    "change feed": (FEED_SQL, ["0", 0, 100]),
    "ACLED deleted events": (
        DELETED_SQL.format(where="i.deleted_at >= to_timestamp($1)", last="$2", skip="0"),
        [0, 500],
    ),
}

INDEXES_SQL = """
SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS ddl,
       pg_relation_size(i.indexrelid) AS bytes, i.indisunique OR i.indisprimary AS required
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = 'incidents'::regclass ORDER BY c.relname
"""


def plan_indexes(plan: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Index Name" in plan:
            found.add(plan["Index Name"])
        for value in plan.values():
            found |= plan_indexes(value)
    elif isinstance(plan, list):
        for value in plan:
            found |= plan_indexes(value)
    return found


async def uses(conn: asyncpg.Connection) -> dict[str, list[str]]:
    sample_id = await conn.fetchval(
        "SELECT id FROM incidents WHERE deleted_at IS NULL ORDER BY id LIMIT 1 OFFSET 500000"
    )
    queries: dict[str, tuple[str, list[Any]]] = {}
    for name, spec in SCENARIOS.items():
        queries[name] = await floor_sql(conn, name, spec, int(sample_id or 1))
    for name, flt in EXTRA_FILTERS.items():
        queries[name] = await floor_sql(conn, name, {"filter": flt, "limit": 100}, 1)
    queries.update(OTHER_SQL)
    used: dict[str, list[str]] = {}
    for name, (sql, values) in queries.items():
        plan = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *values))
        for index in plan_indexes(plan):
            used.setdefault(index, []).append(name)
    return used


async def insert_seconds(conn: asyncpg.Connection, drop: list[str]) -> float:
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute("SET LOCAL session_replication_role = replica")
        for name in drop:
            await conn.execute(f'DROP INDEX "{name}"')
        started = time.perf_counter()
        await conn.execute(insert_sql("audit_stage"))
        return time.perf_counter() - started
    finally:
        await tx.rollback()


async def main(url: str, path: Path, rows: int) -> None:
    # The API's session settings (custom plans, no parallel workers), no statement timeout.
    session = {**server_settings(Settings(database_url=url)), "statement_timeout": "0"}
    conn = await asyncpg.connect(url, server_settings=session)
    try:
        total = await conn.fetchval("SELECT count(*) FROM incidents")
        indexes = await conn.fetch(INDEXES_SQL)
        used = await uses(conn)
        with path.open(encoding="utf-8-sig", newline="") as f:
            header = next(csv.reader(f))
        await conn.execute(
            "CREATE TEMP TABLE audit_raw (" + ", ".join(f'"{h}" text' for h in header) + ")"
        )
        with path.open("rb") as f:
            await conn.copy_to_table("audit_raw", source=f, format="csv", header=True)
        await conn.execute("CREATE TEMP TABLE audit_stage (LIKE audit_raw)")
        await conn.execute("INSERT INTO audit_stage SELECT * FROM audit_raw LIMIT $1", rows)
        # New external ids: the rows are inserted beside the store's, not over them.
        await conn.execute("UPDATE audit_stage SET event_id_cnty = 'audit-' || event_id_cnty")
        await insert_seconds(conn, [])  # warm the caches
        secondary = [r["name"] for r in indexes if not r["required"]]
        base = min([await insert_seconds(conn, []) for _ in range(2)])
        bare = min([await insert_seconds(conn, secondary) for _ in range(2)])
        print(
            f"# index audit: {rows:,} rows inserted into {total:,} incidents; all indexes "
            f"{base:.2f} s, only the required ones {bare:.2f} s (heap + unique + pkey)"
        )
        print(f"{'index':<30}{'MB':>7}{'s per 50k':>11}  used by")
        for r in indexes:
            if r["required"]:
                cost = float("nan")
            else:
                without = min([await insert_seconds(conn, [r["name"]]) for _ in range(2)])
                cost = (base - without) * 50_000 / rows
            users = ", ".join(used.get(r["name"], [])) or "-- nothing measured --"
            print(f"{r['name']:<30}{r['bytes'] / 2**20:>7.0f}{cost:>11.2f}  {users}")
    finally:
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/incidents_bench"
    )
    parser.add_argument("--csv", type=Path, default=ROOT / "bench/data/acled_new_100000.csv")
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    asyncio.run(main(args.database_url, args.csv, args.rows))
