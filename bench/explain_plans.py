"""EXPLAIN (ANALYZE, BUFFERS) of the radius, bbox and nearest searches the API sends, on the
benchmark database (1M incidents, `bash bench/import_bench.sh`), dense and sparse areas both,
and (`--dashboards`) of the stats, grid and tile scenarios of `http_bench.py`.

    .venv/bin/python bench/explain_plans.py [--database-url URL] [--dashboards]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.config import Settings  # noqa: E402
from app.core.db import server_settings  # noqa: E402
from app.search.filters import OutputFormat, Sort  # noqa: E402
from app.search.params import build_raw_filter  # noqa: E402
from app.search.resolve import resolve_filter  # noqa: E402
from app.search.service import KNN_RADII_M, build_query  # noqa: E402

CASES: list[tuple[str, dict[str, Any], Sort]] = [
    (
        "radius 25 km Khanaqin, 2024 (dense)",
        {"near": "34.348,45.391", "radius_km": 25, "start": "2024-01-01", "end": "2024-12-31"},
        Sort.newest,
    ),
    (
        "radius 25 km Khanaqin by name, all dates",
        {"near": "Khanaqin", "radius_km": 25},
        Sort.newest,
    ),
    ("radius 10 km in the desert (sparse)", {"near": "32.0,41.0", "radius_km": 10}, Sort.newest),
    ("bbox Diyala", {"bbox": "44.5,33.5,46.0,35.0"}, Sort.newest),
    (
        "bbox Iraq+Syria, June 2024",
        {"bbox": "35,29,50,38", "start": "2024-06-01", "end": "2024-06-30"},
        Sort.newest,
    ),
    ("nearest 10 to Khanaqin (first ring)", {"near": "34.348,45.391"}, Sort.distance),
    ("nearest 10 to a desert point (first ring)", {"near": "32.0,41.0"}, Sort.distance),
]


async def explain(conn: asyncpg.Connection, title: str, sql: str, values: list[Any]) -> None:
    timings = []
    for _ in range(10):
        started = time.perf_counter()
        await conn.fetch(sql, *values)
        timings.append((time.perf_counter() - started) * 1000)
    plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + sql, *values)
    timings.sort()
    print(f"## {title}: median {timings[5]:.1f} ms, max {timings[-1]:.1f} ms over 10 runs")
    for row in plan:
        line = row[0]
        if "Filter:" in line or "Cond:" in line:
            line = line[:140] + ("…" if len(line) > 140 else "")
        print("    " + line)
    print()


async def dashboards(conn: asyncpg.Connection) -> None:
    """The dashboard scenarios' SQL, built by the benchmark's floor (the API's own code)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import http_bench

    for name in ("stats", "grid", "tile"):
        sql, values = await http_bench.floor_sql(conn, name, http_bench.SCENARIOS[name], 0)
        await explain(conn, f"{name}: {http_bench.SCENARIOS[name]['path']}", sql, values)


async def main(url: str, only_dashboards: bool = False) -> None:
    settings = Settings(database_url=url)
    conn = await asyncpg.connect(url, server_settings=server_settings(settings))
    try:
        total = await conn.fetchval("SELECT count(*) FROM incidents")
        print(f"# {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {total} incidents\n")
        if only_dashboards:
            await dashboards(conn)
            return
        for title, params, sort in CASES:
            for key in ("start", "end"):
                if key in params:
                    params[key] = dt.date.fromisoformat(params[key])
            raw = build_raw_filter(params)
            f = await resolve_filter(conn, raw, nearest=sort is Sort.distance)
            limit = 101
            if f.near is not None and f.radius_m is None:
                f.radius_m = KNN_RADII_M[0]
                limit = 10
            sql, values, _ = build_query(
                f, sort=sort, fmt=OutputFormat.json, after=None, limit=limit
            )
            await explain(conn, title, sql, values)
    finally:
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/incidents_bench"
    )
    parser.add_argument("--dashboards", action="store_true", help="stats, grid and tile")
    args = parser.parse_args()
    asyncio.run(main(args.database_url, args.dashboards))
