"""HTTP benchmark of every read path against its floor (the same SQL straight through asyncpg).

    .venv/bin/python bench/http_bench.py --database-url postgresql://postgres@127.0.0.1/incidents_bench

Needs a database loaded with `bash bench/import_bench.sh` (1M synthetic incidents) and `wrk`
(Debian package). For each scenario: 3 s warm-up, then a closed-loop wrk run (2 threads,
16 connections, 10 s) against one uvicorn worker (two for get-one), and the floor: the exact
SQL the API sends, run by 16 concurrent asyncpg connections for 10 s. Prints one table and
keeps the raw output in bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.core.config import Settings  # noqa: E402
from app.core.db import server_settings  # noqa: E402
from app.search.filters import OutputFormat, Sort  # noqa: E402
from app.search.params import build_raw_filter  # noqa: E402
from app.search.resolve import resolve_filter  # noqa: E402
from app.search.service import build_query  # noqa: E402
from app.stats import grid as stats_grid  # noqa: E402
from app.stats import service as stats_service  # noqa: E402
from app.tiles import service as tiles_service  # noqa: E402

SCENARIOS: dict[str, dict[str, Any]] = {
    "radius": {
        "path": "/v1/incidents?near=34.348,45.391&radius_km=25&start=2024-01-01"
        "&end=2024-12-31&limit=100",
        "filter": {
            "near": "34.348,45.391",
            "radius_km": 25,
            "start": "2024-01-01",
            "end": "2024-12-31",
        },
        "limit": 100,
    },
    "radius-place": {
        "path": "/v1/incidents?near=Khanaqin&radius_km=25&start=2024-01-01"
        "&end=2024-12-31&limit=100",
        "filter": {"near": "Khanaqin", "radius_km": 25, "start": "2024-01-01", "end": "2024-12-31"},
        "limit": 100,
    },
    "bbox": {
        "path": "/v1/incidents?bbox=44.5,33.5,46.0,35.0&limit=100",
        "filter": {"bbox": "44.5,33.5,46.0,35.0"},
        "limit": 100,
    },
    "bbox-large": {
        "path": "/v1/incidents?bbox=35,29,50,38&start=2024-06-01&end=2024-06-30&limit=1000",
        "filter": {"bbox": "35,29,50,38", "start": "2024-06-01", "end": "2024-06-30"},
        "limit": 1000,
    },
    "get-one": {"path": "/v1/incidents/{id}", "workers": 2},
    "get-one-1w": {"path": "/v1/incidents/{id}", "workers": 1},
    "stats": {
        "path": "/v1/stats?group_by=month&admin1=Diyala&start=2020-01-01&end=2024-12-31",
        "filter": {"admin1": "Diyala", "start": "2020-01-01", "end": "2024-12-31"},
        "group_by": ["month"],
    },
    "grid": {
        "path": "/v1/stats/grid?cell_km=25&bbox=38.5,29,48.5,37.5&start=2024-01-01&end=2024-12-31",
        "filter": {"bbox": "38.5,29,48.5,37.5", "start": "2024-01-01", "end": "2024-12-31"},
        "cell_km": 25,
    },
    "tile": {"path": "/v1/tiles/8/160/101.mvt", "filter": {}, "tile": (8, 160, 101)},
    "ogc-bbox": {
        "path": "/ogc/collections/incidents/items?bbox=44.5,33.5,46.0,35.0&limit=100",
        "ogc": {"bbox": "44.5,33.5,46.0,35.0", "limit": "100"},
        "peer": "/collections/public.incidents/items?bbox=44.5,33.5,46.0,35.0&limit=100",
    },
    "ogc-cql": {
        "path": "/ogc/collections/incidents/items?bbox=44.5,33.5,46.0,35.0&limit=100"
        "&filter=event_type%20%3D%20%27Battles%27%20AND%20fatalities%20%3E%202",
        "ogc": {
            "bbox": "44.5,33.5,46.0,35.0",
            "limit": "100",
            "filter": "event_type = 'Battles' AND fatalities > 2",
        },
        "peer": "/collections/public.incidents/items?bbox=44.5,33.5,46.0,35.0&limit=100"
        "&filter=event_type%20%3D%20%27Battles%27%20AND%20fatalities%20%3E%202",
    },
    "acled-country-month": {
        "path": "/api/acled/read?country=Iraq&event_date=2024-06-01%7C2024-06-30"
        "&event_date_where=BETWEEN&limit=5000",
        "acled": {
            "country": "Iraq",
            "event_date": "2024-06-01|2024-06-30",
            "event_date_where": "BETWEEN",
        },
        "limit": 5000,
        "page": 1,
    },
    "acled-page-20": {
        "path": "/api/acled/read?limit=500&page=20",
        "acled": {},
        "limit": 500,
        "page": 20,
    },
    "ogc-item": {
        "path": "/ogc/collections/incidents/items/{id}",
        "peer": "/collections/public.incidents/items/{id}",
    },
}

WRK_LINE = re.compile(r"Requests/sec:\s+([\d.]+)")
LAT_LINE = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)", re.M)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _uvicorn(
    app: str, port: int, workers: int, env: dict[str, str], ready: str, extra: list[str]
) -> subprocess.Popen[bytes]:
    """`app` on uvicorn at `port`, returned once GET `ready` answers 200."""
    proc = subprocess.Popen(
        [str(ROOT / ".venv/bin/uvicorn"), app, *extra, "--host", "127.0.0.1", "--port", str(port)]
        + ["--workers", str(workers), "--log-level", "warning", "--no-access-log"],
        cwd=ROOT,
        env={**os.environ, "DB_POOL_SIZE": "16", **env},
        start_new_session=True,
    )
    for _ in range(150):
        try:
            if httpx.get(f"http://127.0.0.1:{port}{ready}", timeout=5).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{app} did not start")


def start_server(database_url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = {"DATABASE_URL": database_url, "LOG_LEVEL": "warning"}
    return _uvicorn("app.main:app", port, workers, env, "/healthz", [])


def start_http_floor(database_url: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    """`bench/http_floor.py` (a bare ASGI app serving each scenario's SQL) on uvicorn."""
    extra = ["--app-dir", str(ROOT / "bench")]
    env = {"DATABASE_URL": database_url}
    return _uvicorn("http_floor:app", port, workers, env, "/radius", extra)


def start_tipg(python: str, database_url: str, port: int) -> subprocess.Popen[bytes]:
    """tipg (a peer OGC API - Features server) on the same database, for comparison."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "TIPG_DB_SCHEMAS": '["public"]',
        "TIPG_MAX_FEATURES_PER_QUERY": "10000",
    }
    proc = subprocess.Popen(
        [
            python,
            "-m",
            "uvicorn",
            "tipg.main:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env=env,
        start_new_session=True,
    )
    for _ in range(150):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/collections", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("tipg did not start")


def run_peer(args: Any, spec: dict[str, Any], sample_id: int, log: Any, name: str) -> float:
    """The scenario against tipg, started for it and stopped after, its queries cancelled
    (tipg counts every page; queued counts would otherwise run on into the next scenario)."""
    port = args.port + 9
    proc = start_tipg(args.peer_tipg, args.database_url, port)
    try:
        url = f"http://127.0.0.1:{port}" + spec["peer"].replace("{id}", str(sample_id))
        check = httpx.get(url, timeout=120)
        assert check.status_code == 200, (url, check.text[:300])
        wrk(url, 3, args.connections, 2)
        rps, _, _, out = wrk(url, args.seconds, args.connections, 2)
        log.write(f"## tipg {name} {url}\n{out}\n")
        return rps
    finally:
        stop_server(proc)

        async def cancel() -> None:
            conn = await asyncpg.connect(args.database_url)
            try:
                await conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND application_name <> 'conflict-incidents'"
                )
            finally:
                await conn.close()

        asyncio.run(cancel())


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # a peer still busy with queued queries
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def worker_rss_mb(proc: subprocess.Popen[bytes]) -> float:
    """Largest RSS among the server's processes (the worker serving requests)."""
    pids = [proc.pid]
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    best = 0.0
    for pid in pids:
        status = Path(f"/proc/{pid}/status")
        if status.exists():
            match = re.search(r"VmRSS:\s+(\d+) kB", status.read_text())
            if match:
                best = max(best, int(match.group(1)) / 1024)
    return best


def wrk(url: str, seconds: int, connections: int, threads: int) -> tuple[float, float, float, str]:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(WRK_LINE.search(out).group(1))  # type: ignore[union-attr]
    lat = {m.group(1): _ms(m.group(2), m.group(3)) for m in LAT_LINE.finditer(out)}
    return rps, lat.get("50", 0.0), lat.get("99", 0.0), out


async def floor_sql(
    conn: asyncpg.Connection, name: str, spec: dict[str, Any], sample_id: int
) -> tuple[str, list[Any]]:
    """The SQL and parameters the API sends for a scenario, built by the same code."""
    if name.startswith("get-one"):
        from app.incidents.service import GET_SQL

        return GET_SQL, [sample_id]
    if name == "ogc-item":
        from app.ogc.router import FEATURE_SQL

        return FEATURE_SQL, [sample_id]
    if "acled" in spec:
        from app.acled import service as acled
        from app.acled.filters import parse_query

        query = parse_query(spec["acled"])
        f = await acled.search_filter(conn, query)
        names = acled.fields_of(None)
        key = acled.fingerprint(query, names, spec["limit"])
        after = await acled.page_start(conn, f, key, spec["page"], spec["limit"])
        return acled._query(f, names, False, False, after=after, limit=spec["limit"])
    if "ogc" in spec:
        from app.ogc.params import parse_items_query, raw_filter
        from app.ogc.router import _feature_doc

        query = parse_items_query(spec["ogc"], list(spec["ogc"]))
        f = await resolve_filter(conn, raw_filter(query))
        f.conditions = query.conditions
        sql, values, _ = build_query(
            f,
            sort=Sort.newest,
            fmt=OutputFormat.geojson,
            after=None,
            limit=query.limit + 1,
            doc=_feature_doc,
        )
        return sql, values
    params = dict(spec.get("filter", {}))
    for key in ("start", "end"):
        if key in params:
            params[key] = dt.date.fromisoformat(params[key])
    raw = build_raw_filter(params)
    f = await resolve_filter(conn, raw)
    if name == "stats":
        captured: dict[str, Any] = {}

        class Spy:
            async def fetchval(self, sql: str, *args: Any) -> Any:
                captured["sql"], captured["args"] = sql, list(args)
                return await conn.fetchval(sql, *args)

            async def fetchrow(self, sql: str, *args: Any) -> Any:
                return await conn.fetchrow(sql, *args)

        await stats_service.stats(Spy(), f, spec["group_by"])  # type: ignore[arg-type]
        return captured["sql"], captured["args"]
    if name == "grid":
        return stats_grid.grid_query(f, spec["cell_km"] * 1000)
    if name == "tile":
        return tiles_service.tile_query(f, *spec["tile"])
    sql, values, _ = build_query(
        f, sort=Sort.newest, fmt=OutputFormat.json, after=None, limit=spec["limit"] + 1
    )
    return sql, values


async def floor(
    database_url: str, sql: str, args: list[Any], seconds: float, concurrency: int
) -> float:
    settings = Settings(database_url=database_url)

    async def init(conn: asyncpg.Connection) -> None:
        for typ in ("json", "jsonb"):
            await conn.set_type_codec(
                typ, encoder=lambda v: v, decoder=lambda v: v, schema="pg_catalog", format="text"
            )

    pool = await asyncpg.create_pool(
        settings.plain_database_url,
        min_size=concurrency,
        max_size=concurrency,
        init=init,
        server_settings=server_settings(settings),
    )
    count = 0
    deadline = 0.0

    async def loop() -> None:
        nonlocal count
        conn = await pool.acquire()
        while time.perf_counter() < deadline:
            await conn.fetch(sql, *args)
            count += 1
        await pool.release(conn, timeout=120)

    try:
        deadline = time.perf_counter() + 3  # warm-up
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        count = 0
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        return count / (time.perf_counter() - started)
    finally:
        pool.terminate()


def export_run(base: str, proc: subprocess.Popen[bytes]) -> dict[str, float]:
    peak = worker_rss_mb(proc)
    start_rss = peak
    size = 0
    started = time.perf_counter()
    with httpx.stream(
        "GET", base + "/v1/incidents?format=csv&bbox=44,33,46,35", timeout=600
    ) as resp:
        for chunk in resp.iter_bytes():
            size += len(chunk)
            peak = max(peak, worker_rss_mb(proc))
    seconds = time.perf_counter() - started
    return {
        "mb": size / 1e6,
        "seconds": seconds,
        "mb_s": size / 1e6 / seconds,
        "rss_start": start_rss,
        "rss_peak": peak,
    }


def ensure_wrk() -> None:
    """wrk comes from Debian's apt; installed here when missing (as root), else a clear exit."""
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        if subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, **quiet).returncode:
            subprocess.run(["apt-get", "update"], check=False, **quiet)
            subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, **quiet)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install -y wrk")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/incidents_bench"
    )
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--scenarios", default=",".join([*SCENARIOS, "export"]))
    parser.add_argument(
        "--peer-tipg",
        metavar="PYTHON",
        help="a Python with tipg installed (pip install tipg==1.6.1 uvicorn in a venv of its "
        "own): the OGC scenarios also run against tipg on the same table",
    )
    args = parser.parse_args()
    ensure_wrk()
    chosen = args.scenarios.split(",")
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M")
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    raw_log = (out_dir / f"http-{stamp}.txt").open("w")
    rows = []

    async def prepare() -> tuple[int, dict[str, tuple[str, list[Any]]]]:
        conn = await asyncpg.connect(args.database_url)
        try:
            sample_id = await conn.fetchval(
                "SELECT id FROM incidents WHERE deleted_at IS NULL ORDER BY id LIMIT 1 "
                "OFFSET 500000"
            )
            sqls = {}
            for name in chosen:
                if name in SCENARIOS:
                    sqls[name] = await floor_sql(conn, name, SCENARIOS[name], sample_id)
            return int(sample_id or 1), sqls
        finally:
            await conn.close()

    sample_id, sqls = asyncio.run(prepare())
    servers: dict[int, subprocess.Popen[bytes]] = {}
    floors: dict[int, subprocess.Popen[bytes]] = {}
    try:
        for name in chosen:
            if name == "export":
                continue
            spec = SCENARIOS[name]
            workers = spec.get("workers", 1)
            if workers not in servers:
                servers[workers] = start_server(args.database_url, args.port + workers, workers)
            base = f"http://127.0.0.1:{args.port + workers}"
            url = base + spec["path"].replace("{id}", str(sample_id))
            response = httpx.get(url, timeout=60)
            assert response.status_code == 200, (name, response.status_code, response.text[:300])
            wrk(url, 3, args.connections, 2)
            rps, p50, p99, out = wrk(url, args.seconds, args.connections, 2)
            rss = worker_rss_mb(servers[workers])
            if workers not in floors:
                floors[workers] = start_http_floor(
                    args.database_url, args.port + 100 + workers, workers
                )
            floor_url = f"http://127.0.0.1:{args.port + 100 + workers}/{name}"
            wrk(floor_url, 3, args.connections, 2)
            http_rps, _, _, floor_out = wrk(floor_url, args.seconds, args.connections, 2)
            sql, values = sqls[name]
            floor_rps = asyncio.run(
                floor(args.database_url, sql, values, args.seconds, args.connections)
            )
            peer_rps = None
            if args.peer_tipg and "peer" in spec:
                peer_rps = run_peer(args, spec, sample_id, raw_log, name)
            rows.append(
                (
                    name,
                    rps,
                    p50,
                    p99,
                    floor_rps,
                    rps / floor_rps if floor_rps else 0,
                    http_rps,
                    len(response.content),
                    rss,
                    workers,
                    peer_rps,
                )
            )
            raw_log.write(
                f"## {name} {url}\n{out}\nfloor {floor_rps:.1f} q/s\n"
                f"## HTTP floor {floor_url}\n{floor_out}\n\n"
            )
            raw_log.flush()
        if "export" in chosen:
            if 1 not in servers:
                servers[1] = start_server(args.database_url, args.port + 1, 1)
            exp = export_run(f"http://127.0.0.1:{args.port + 1}", servers[1])
            raw_log.write(f"## export {exp}\n")
    finally:
        for proc in [*servers.values(), *floors.values()]:
            stop_server(proc)
    header = (
        f"{'scenario':<14}{'API req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'floor q/s':>11}"
        f"{'API/floor':>10}{'HTTP floor':>11}{'API/HTTP':>9}{'bytes':>10}{'RSS MB':>8}"
        f"{'workers':>8}" + (f"{'tipg req/s':>11}{'API/tipg':>9}" if args.peer_tipg else "")
    )
    lines = [
        f"# {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
        f"wrk -t2 -c{args.connections} -d{args.seconds}s after 3 s warm-up",
        header,
    ]
    for name, rps, p50, p99, floor_rps, ratio, http_rps, size, rss, workers, peer_rps in rows:
        line = (
            f"{name:<14}{rps:>10.1f}{p50:>9.2f}{p99:>9.2f}{floor_rps:>11.1f}"
            f"{ratio:>10.2f}{http_rps:>11.1f}{rps / http_rps if http_rps else 0:>9.2f}"
            f"{size:>10}{rss:>8.0f}{workers:>8}"
        )
        if peer_rps is not None:
            line += f"{peer_rps:>11.1f}{rps / peer_rps if peer_rps else 0:>9.1f}"
        lines.append(line)
    if "export" in chosen:
        lines.append(
            f"export csv bbox=44,33,46,35: {exp['mb']:.1f} MB in {exp['seconds']:.1f}s "
            f"= {exp['mb_s']:.1f} MB/s; worker RSS {exp['rss_start']:.0f} -> peak "
            f"{exp['rss_peak']:.0f} MB"
        )
    table = "\n".join(lines)
    raw_log.write(table + "\n")
    raw_log.close()
    print(table)


if __name__ == "__main__":
    main()
