"""Time travel and location uncertainty against their live counterparts, each beside its floor.

    .venv/bin/python bench/as_of_bench.py [--database-url postgresql://.../incidents_bench]

Needs the 1M-row benchmark database (`bash bench/import_bench.sh`) and `wrk`. It makes a copy
of that database (`<name>_history`, kept for later runs) and gives every incident three
versions, as two bulk updates of the whole store would (fatalities corrected, then the point
moved by about a kilometre: `incident_history` gets two million rows from its trigger). Their
timestamps are then spread over the last two years (the first version written 18-24 months
ago, the second 6-18 months ago, the current one in the last 6 months), the way a store that
has been revised over time looks; so "as of a year ago" reads about half the incidents' first
versions and half their second ones, and none of the current rows.

Scenarios, one uvicorn worker each, wrk -t2 -c16 (as `bench/http_bench.py`):
  radius / radius-as-of        25 km of Khanaqin in 2024, live and as of a year ago
  get-one / get-one-as-of      one incident by id, live and as of a year ago
  radius / radius-possible     match=point (default) and match=possible
Each beside its database floor: the exact SQL the API sends, run by 16 asyncpg connections.
Targets: radius-as-of >= 0.5 of radius, get-one-as-of >= 0.5 of get-one, radius-possible >=
0.7 of radius. Output also goes to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from http_bench import ensure_wrk, floor, start_server, stop_server, worker_rss_mb, wrk  # noqa: E402

from app.incidents.service import AS_OF_SQL, GET_SQL  # noqa: E402
from app.search.filters import OutputFormat, Sort  # noqa: E402
from app.search.params import build_raw_filter  # noqa: E402
from app.search.resolve import resolve_filter  # noqa: E402
from app.search.service import build_query  # noqa: E402

RADIUS = {"near": "34.348,45.391", "radius_km": "25", "start": "2024-01-01", "end": "2024-12-31"}

# Two bulk updates of every incident: what a corrected re-release of a data set does.
UPDATES = (
    "UPDATE incidents SET fatalities = fatalities + 1, version = version + 1, "
    "updated_at = greatest(now(), updated_at)",
    "UPDATE incidents SET geom = ST_SetSRID(ST_MakePoint(ST_X(geom) + 0.01, ST_Y(geom)), 4326), "
    "version = version + 1, updated_at = greatest(now(), updated_at)",
)
# Each incident's three instants, from hashes of its id (fractions of the spans below).
_FRACTION = "((hashint8(id * 3 + {k}) & 1048575)::float8 / 1048576)"
SPREAD = (
    "SET session_replication_role = replica",  # no triggers: this is the bench's time machine
    f"""
    CREATE TEMP TABLE times AS
    SELECT id, now() - interval '730 days' + {_FRACTION.format(k=1)} * interval '180 days' AS t1,
               now() - interval '550 days' + {_FRACTION.format(k=2)} * interval '360 days' AS t2,
               now() - interval '180 days' + {_FRACTION.format(k=3)} * interval '179 days' AS t3
    FROM incidents
    """,  # noqa: S608 (constant SQL)
    "ALTER TABLE times ADD PRIMARY KEY (id)",
    "UPDATE incidents i SET created_at = t.t1, updated_at = t.t3 FROM times t WHERE t.id = i.id",
    """
    UPDATE incident_history h SET created_at = t.t1,
        updated_at = CASE h.version WHEN 1 THEN t.t1 ELSE t.t2 END,
        valid = CASE h.version WHEN 1 THEN tstzrange(t.t1, t.t2, '[)')
                               ELSE tstzrange(t.t2, t.t3, '[)') END
    FROM times t WHERE t.id = h.id
    """,
    "RESET session_replication_role",
    # The dashboards' rollups took two million deltas from the updates: fold them now, not
    # in the server's background compaction during the measurements.
    "SELECT incident_rollups_compact()",
    "REINDEX TABLE incident_history",
    "VACUUM (ANALYZE) incidents",
    "VACUUM (ANALYZE) incident_history",
)


async def prepare(source_url: str, url: str) -> dict[str, Any]:
    """The copy with its history (made once), and what it holds."""
    base, name = url.rsplit("/", 1)
    admin = await asyncpg.connect(base + "/postgres")
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            source = source_url.rsplit("/", 1)[1]
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                source,
            )
            started = time.perf_counter()
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
            print(f"copied {source} -> {name} in {time.perf_counter() - started:.0f} s")
    finally:
        await admin.close()
    conn = await asyncpg.connect(url, server_settings={"statement_timeout": "0"})
    try:
        if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM incident_history)"):
            for sql in (*UPDATES, *SPREAD):
                started = time.perf_counter()
                await conn.execute(sql)
                print(f"{time.perf_counter() - started:7.1f} s  {' '.join(sql.split())[:90]}")
        return dict(
            await conn.fetchrow(
                "SELECT (SELECT count(*) FROM incidents) AS incidents, "
                "(SELECT count(*) FROM incident_history) AS history, "
                "pg_size_pretty(pg_total_relation_size('incident_history')) AS history_size, "
                "(SELECT min(lower(valid)) FROM incident_history) AS first_write"
            )
        )
    finally:
        await conn.close()


async def scenario_sql(url: str, params: dict[str, str], sample_id: int) -> tuple[str, list[Any]]:
    """The SQL the API sends for a list (or with `sample_id`, get-one) request."""
    conn = await asyncpg.connect(url)
    try:
        if "id" in params:
            if "as_of" in params:
                return AS_OF_SQL, [
                    sample_id,
                    dt.datetime.fromisoformat(params["as_of"]),
                ]
            return GET_SQL, [sample_id]
        raw = build_raw_filter(params)
        f = await resolve_filter(conn, raw)
        sql, values, _ = build_query(
            f, sort=Sort.newest, fmt=OutputFormat.json, after=None, limit=101
        )
        return sql, values
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/incidents_bench"
    )
    parser.add_argument("--port", type=int, default=8030)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    ensure_wrk()
    url = args.database_url + "_history"
    facts = asyncio.run(prepare(args.database_url, url))
    year_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=365)).replace(microsecond=0)
    as_of = year_ago.isoformat().replace("+00:00", "Z")

    async def sample() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(
                await conn.fetchval(
                    "SELECT id FROM incidents WHERE deleted_at IS NULL ORDER BY id "
                    "LIMIT 1 OFFSET 500000"
                )
            )
        finally:
            await conn.close()

    sample_id = asyncio.run(sample())
    scenarios: dict[str, dict[str, str]] = {
        "radius": RADIUS,
        "radius-as-of": {**RADIUS, "as_of": as_of},
        "radius-possible": {**RADIUS, "match": "possible"},
        "get-one": {"id": str(sample_id)},
        "get-one-as-of": {"id": str(sample_id), "as_of": as_of},
    }
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M")
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    log = (out_dir / f"as-of-{stamp}.txt").open("w")
    results: dict[str, tuple[float, float, float, float, int, float]] = {}
    server = start_server(url, args.port, 1)
    try:
        base = f"http://127.0.0.1:{args.port}"
        for name, params in scenarios.items():
            query = {k: v for k, v in params.items() if k != "id"}
            path = f"/v1/incidents/{params['id']}" if "id" in params else "/v1/incidents"
            full = str(
                httpx.URL(
                    base + path, params={**query, "limit": "100"} if "id" not in params else query
                )
            )
            check = httpx.get(full, timeout=60)
            assert check.status_code == 200, (name, check.status_code, check.text[:300])
            returned = len(check.json().get("items", [check.json()]))
            wrk(full, 3, args.connections, 2)
            rps, p50, p99, out = wrk(full, args.seconds, args.connections, 2)
            sql, values = asyncio.run(scenario_sql(url, params, sample_id))
            floor_rps = asyncio.run(floor(url, sql, values, args.seconds, args.connections))
            results[name] = (rps, p50, p99, floor_rps, returned, worker_rss_mb(server))
            log.write(f"## {name} {full}\n{out}\nfloor {floor_rps:.1f} q/s\n\n")
            log.flush()
    finally:
        stop_server(server)

    lines = [
        f"# {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, wrk -t2 "
        f"-c{args.connections} -d{args.seconds}s after 3 s warm-up, one worker",
        f"# {facts['incidents']:,} incidents, {facts['history']:,} superseded versions "
        f"({facts['history_size']}), first write {facts['first_write']:%Y-%m-%d}; as_of={as_of}",
        f"{'scenario':<17}{'API req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'floor q/s':>11}"
        f"{'API/floor':>10}{'items':>7}{'RSS MB':>8}",
    ]
    for name, (rps, p50, p99, floor_rps, returned, rss) in results.items():
        lines.append(
            f"{name:<17}{rps:>10.1f}{p50:>9.2f}{p99:>9.2f}{floor_rps:>11.1f}"
            f"{rps / floor_rps:>10.2f}{returned:>7}{rss:>8.0f}"
        )
    for name, against, target in (
        ("radius-as-of", "radius", 0.5),
        ("get-one-as-of", "get-one", 0.5),
        ("radius-possible", "radius", 0.7),
    ):
        ours = results[name][0] / results[against][0]
        floors = results[name][3] / results[against][3]
        lines.append(
            f"{name} / {against}: API {ours:.2f} (target >= {target}), "
            f"floors {floors:.2f}: {'met' if ours >= target else 'NOT met'}"
        )
    table = "\n".join(lines)
    log.write(table + "\n")
    log.close()
    print(table)


if __name__ == "__main__":
    main()
