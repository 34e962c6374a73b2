"""Alerts benchmark: matching a bulk import against 10,000 geofences, delivering the webhooks,
single creates beside the subscriptions, and 200 live streams.

    .venv/bin/python bench/alerts_bench.py --database-url postgresql://postgres@127.0.0.1:5432/postgres

Builds a fresh `incidents_alerts_bench` database from the migrations and runs the API and a
bare webhook receiver (`bench/webhook_receiver.py`) on uvicorn. Each figure is printed beside
its floor, measured in the same run:

1. matching: `POST /v1/incidents/bulk` of a 50,000-row ACLED CSV (`generate_acled.py`) with
   10,000 active circle subscriptions (around random Iraqi and Syrian towns, 2-25 km) against
   the same import with them all disabled (the floor: the import alone); the outbox trigger's
   join run again on its own, read-only, against the bare PostGIS join (GiST probe + geodesic
   distance, no states, no rows written);
2. delivery: from the import's answer to the receiver's last POST, against the same number of
   POSTs sent by a bare httpx loop with the worker's concurrency (no database);
3. single creates: `POST /v1/incidents` (4 clients) with the 10,000 subscriptions active
   against disabled, rounds alternated;
4. streams: 200 SSE clients (`httpx-sse`) on one API process, circles of 50 km around the
   generator's hotspots, while a writer creates 50 incidents/s: every stream must receive
   exactly what a search with its filter finds among the writer's incidents; delay from the
   create's answer (committed) to the event, and the process's RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import httpx
from httpx_sse import aconnect_sse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from generate_acled import HOTSPOTS, generate  # noqa: E402
from http_bench import _uvicorn, stop_server, worker_rss_mb  # noqa: E402

from app.alerts.matching import STATE_ARGS  # noqa: E402
from app.alerts.service import Owner, create_subscription  # noqa: E402
from app.auth.service import create_key  # noqa: E402
from app.cli import run_migrations  # noqa: E402
from app.places.sources import iter_packaged_places  # noqa: E402
from app.search.params import build_raw_filter  # noqa: E402
from app.search.resolve import resolve_filter  # noqa: E402

DB_NAME = "incidents_alerts_bench"
PEPPER = "bench-pepper"
API_PORT, STREAM_PORT, RECEIVER_PORT = 8731, 8732, 8733
# The outbox trigger's statement (migration 0016), over every revision, read-only.
MATCH_SQL = f"""
SELECT coalesce(sum(cardinality(seqs)), 0) FROM (
SELECT s.id, array_agg(DISTINCT r.seq ORDER BY r.seq) AS seqs
FROM incident_revisions r
CROSS JOIN LATERAL incident_alert_states(r.incident_id, r.version, r.op) st
JOIN alert_subscriptions s ON s.status = 'active' AND (s.match).box && st.geom
 AND alert_filter_matches(s.match, {STATE_ARGS})
GROUP BY s.id) m
"""  # noqa: S608 (constant SQL)
FLOOR_WRITE_SQL = """
CREATE TEMP TABLE floor_pairs AS SELECT s.id AS subscription_id, i.id AS incident_id
FROM incidents i JOIN alert_subscriptions s
  ON s.status = 'active' AND (s.match).box && i.geom
 AND _ST_DWithin(i.geom::geography, (s.match).center, (s.match).radius_m, true)
"""
FLOOR_MATCH_SQL = """
SELECT count(*) FROM incidents i JOIN alert_subscriptions s
  ON s.status = 'active' AND (s.match).box && i.geom
 AND _ST_DWithin(i.geom::geography, (s.match).center, (s.match).radius_m, true)
"""


def url_for(base: str, name: str) -> str:
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))


def towns() -> list[tuple[float, float]]:
    return [
        (p.latitude, p.longitude) for p in iter_packaged_places() if p.country_code in ("IQ", "SY")
    ]


async def fresh_database(base: str) -> str:
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{DB_NAME}"')
    finally:
        await conn.close()
    url = url_for(base, DB_NAME)
    await asyncio.to_thread(run_migrations, "head", url)
    return url


async def subscribe(url: str, key_id: int, n: int, webhook: str) -> float:
    rng = random.Random(16)
    places = towns()
    conn = await asyncpg.connect(url)
    started = time.perf_counter()
    try:
        for k in range(n):
            lat, lon = rng.choice(places)
            near = f"{lat:.5f},{lon:.5f}"
            raw = build_raw_filter({"near": near, "radius_km": rng.uniform(2, 25)})
            resolved = await resolve_filter(conn, raw)
            await create_subscription(
                conn,
                Owner(key_id),
                name=f"office {k}",
                webhook_url=webhook,
                filter_doc={"near": raw.near, "radius_km": raw.radius_km},
                resolved=resolved,
                limit=n,
            )
        await conn.execute("ANALYZE alert_subscriptions")
    finally:
        await conn.close()
    return time.perf_counter() - started


async def import_csv(client: httpx.AsyncClient, headers: dict[str, str], csv: Path) -> float:
    body = await asyncio.to_thread(csv.read_bytes)
    started = time.perf_counter()
    resp = await client.post(
        "/v1/incidents/bulk",
        content=body,
        headers={**headers, "Content-Type": "text/csv"},
        timeout=600,
    )
    seconds = time.perf_counter() - started
    assert resp.status_code == 200, resp.text[:500]
    return seconds


async def empty_store(conn: asyncpg.Connection) -> None:
    await conn.execute("TRUNCATE incidents, incident_revisions, alert_deliveries CASCADE")


async def receiver_count(client: httpx.AsyncClient) -> dict[str, Any]:
    return dict((await client.get(f"http://127.0.0.1:{RECEIVER_PORT}/count")).json())


async def http_floor(n: int, concurrency: int, body: bytes) -> float:
    """n POSTs to the receiver by `concurrency` tasks sharing one aiohttp session (the
    worker's client), no database."""
    url = f"http://127.0.0.1:{RECEIVER_PORT}/floor"
    left = [n]
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def run() -> None:
            while left[0] > 0:
                left[0] -= 1
                async with session.post(
                    url, data=body, headers={"content-type": "application/json"}
                ) as resp:
                    await resp.read()

        started = time.perf_counter()
        await asyncio.gather(*(run() for _ in range(concurrency)))
        return time.perf_counter() - started


def one_incident(rng: random.Random, k: int) -> dict[str, Any]:
    spot = rng.choice(HOTSPOTS)
    location, admin1, admin2, lat, lon, spread_km, _, country, _ = spot
    d = spread_km / 111.0
    return {
        "event_date": "2024-06-01",
        "event_type": "Battles",
        "sub_event_type": "Armed clash",
        "actor1": "Military Forces of Iraq",
        "fatalities": rng.randint(0, 5),
        "country": country,
        "admin1": admin1,
        "admin2": admin2,
        "location": location,
        "latitude": round(lat + rng.uniform(-d, d), 5),
        "longitude": round(lon + rng.uniform(-d, d), 5),
        "source": "bench",
        "external_id": f"bench-single-{k}-{rng.random():.12f}",
    }


async def single_creates(
    client: httpx.AsyncClient, headers: dict[str, str], n: int, rng: random.Random
) -> float:
    """Creates per second with 4 concurrent clients."""
    left = list(range(n))

    async def run() -> None:
        while left:
            k = left.pop()
            resp = await client.post("/v1/incidents", json=one_incident(rng, k), headers=headers)
            assert resp.status_code == 201, resp.text

    started = time.perf_counter()
    await asyncio.gather(*(run() for _ in range(4)))
    return n / (time.perf_counter() - started)


async def streams_run(
    base: str, headers: dict[str, str], n_streams: int, rate: float, seconds: float
) -> dict[str, Any]:
    rng = random.Random(200)
    filters = []
    for _ in range(n_streams):
        spot = rng.choice(HOTSPOTS)
        filters.append({"near": f"{spot[3]},{spot[4]}", "radius_km": 50})
    received: list[list[tuple[str, float]]] = [[] for _ in filters]
    committed: dict[str, float] = {}
    ready = asyncio.Event()
    connected = 0
    limits = httpx.Limits(max_connections=n_streams + 10)
    async with httpx.AsyncClient(base_url=base, timeout=None, limits=limits) as readers:

        async def listen(i: int) -> None:
            nonlocal connected
            async with aconnect_sse(readers, "GET", "/v1/stream", params=filters[i]) as source:
                connected += 1
                if connected == n_streams:
                    ready.set()
                async for sse in source.aiter_sse():
                    if sse.data:  # httpx-sse hands a heartbeat comment over as an empty event
                        received[i].append((json.loads(sse.data)["id"], time.time()))

        tasks = [asyncio.create_task(listen(i)) for i in range(n_streams)]
        await asyncio.wait_for(ready.wait(), 60)
        async with httpx.AsyncClient(base_url=base, timeout=30) as writer:
            total = int(rate * seconds)
            started = time.perf_counter()

            async def create(k: int) -> None:
                await asyncio.sleep(max(started + k / rate - time.perf_counter(), 0))
                resp = await writer.post(
                    "/v1/incidents", json=one_incident(rng, k), headers=headers
                )
                assert resp.status_code == 201, resp.text
                committed[str(resp.json()["id"])] = time.time()

            await asyncio.gather(*(create(k) for k in range(total)))  # open loop, on time
            achieved = total / (time.perf_counter() - started)
            await asyncio.sleep(3)  # the last events' way
            expected: list[set[str]] = []
            for f in filters:
                # The writer's incidents are all of this date: the page holds all of them.
                day = {**f, "start": "2024-06-01", "end": "2024-06-01", "limit": 10000}
                page = await writer.get("/v1/incidents", params=day)
                expected.append({i["id"] for i in page.json()["items"]} & set(committed))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    delays = [t - committed[i] for stream in received for i, t in stream if i in committed]
    mine = set(committed)
    got_sets = [{i for i, _ in got} for got in received]
    # Events of incidents written before the measurement (a stream "from now" may begin a
    # moment early) are counted apart; what is compared is the writer's incidents.
    exact = sum(1 for got, want in zip(got_sets, expected, strict=True) if got & mine == want)
    missing = sum(len(want - got) for got, want in zip(got_sets, expected, strict=True))
    extra = sum(len((got & mine) - want) for got, want in zip(got_sets, expected, strict=True))
    earlier = sum(len(got - mine) for got in got_sets)
    repeated = sum(len(got) - len(ids) for got, ids in zip(received, got_sets, strict=True))
    delays.sort()
    return {
        "streams": n_streams,
        "writes": len(committed),
        "write_rate": achieved,
        "events": len(delays),
        "exact": exact,
        "missing": missing,
        "extra": extra,
        "repeated": repeated,
        "earlier": earlier,
        "p50_ms": 1000 * delays[len(delays) // 2] if delays else None,
        "p99_ms": 1000 * delays[int(len(delays) * 0.99)] if delays else None,
        "max_ms": 1000 * delays[-1] if delays else None,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--singles", type=int, default=300, help="creates per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--deliver-timeout", type=float, default=3600)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--stream-seconds", type=float, default=20)
    args = parser.parse_args()

    url = await fresh_database(args.database_url)
    csv = ROOT / "bench" / "data" / f"acled_alerts_{args.rows}.csv"
    if not csv.exists():
        csv.parent.mkdir(parents=True, exist_ok=True)
        generate(args.rows, csv, seed=16)
    conn = await asyncpg.connect(url, server_settings={"jit": "off"})
    key, key_id = await create_key(conn, name="bench", scopes=["write"], pepper=PEPPER)
    headers = {"Authorization": f"Bearer {key}"}
    env = {
        "DATABASE_URL": url,
        "KEY_PEPPER": PEPPER,
        "LOG_LEVEL": "warning",
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "ROLLUP_COMPACT_INTERVAL_S": "0",
    }
    receiver = _uvicorn("bench.webhook_receiver:app", RECEIVER_PORT, 1, {}, "/count", [])
    api = _uvicorn("app.main:app", API_PORT, 1, {**env, "WEBHOOK_WORKER": "true"}, "/healthz", [])
    results: dict[str, Any] = {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    try:
        webhook = f"http://127.0.0.1:{RECEIVER_PORT}/hook"
        results["subscribe_s"] = await subscribe(url, key_id, args.subscriptions, webhook)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{API_PORT}") as client:
            # 1. matching: the import with the subscriptions disabled (floor), then active.
            await conn.execute("UPDATE alert_subscriptions SET status = 'disabled'")
            results["import_off_s"] = await import_csv(client, headers, csv)
            await empty_store(conn)
            await conn.execute("UPDATE alert_subscriptions SET status = 'active'")
            await conn.execute("VACUUM ANALYZE alert_subscriptions")
            await client.get(f"http://127.0.0.1:{RECEIVER_PORT}/reset")
            results["import_on_s"] = await import_csv(client, headers, csv)
            delivered_from = time.time()
            count_sql = (
                "SELECT (SELECT count(*) FROM alert_deliveries) + "
                "(SELECT coalesce(sum(cardinality(revision_seqs)), 0) FROM alert_matches)"
            )
            results["deliveries"] = int(await conn.fetchval(count_sql))
            started = time.perf_counter()
            results["match_rows"] = int(await conn.fetchval(MATCH_SQL))
            results["match_query_s"] = time.perf_counter() - started
            started = time.perf_counter()
            results["floor_match_rows"] = int(await conn.fetchval(FLOOR_MATCH_SQL))
            results["floor_match_s"] = time.perf_counter() - started
            started = time.perf_counter()
            await conn.execute(FLOOR_WRITE_SQL)
            results["floor_write_s"] = time.perf_counter() - started
            # 2. delivery: until the receiver has had every event.
            deadline = time.time() + args.deliver_timeout
            while time.time() < deadline:
                count = await receiver_count(client)
                if count["distinct"] >= results["deliveries"]:
                    break
                await asyncio.sleep(0.5)
            results["receiver"] = count
            results["received"] = count["distinct"]
            results["last_webhook_s"] = (count["last"] or delivered_from) - delivered_from
            body = await conn.fetchval(
                "SELECT octet_length(json_build_object('x', repeat('a', 1800))::text)"
            )
            floor_n = min(results["deliveries"], 20_000)
            results["floor_posts"] = floor_n
            results["floor_posts_s"] = await http_floor(floor_n, 16, b"x" * int(body))
            # 3. single creates, worker-free server so only the write path is compared.
        stop_server(api)
        # Part 1's log out of the way (its vacuum would run under the next measurements).
        await conn.execute("TRUNCATE alert_deliveries, alert_attempts, alert_matches")
        await conn.execute("VACUUM ANALYZE incidents")
        api = _uvicorn(
            "app.main:app", API_PORT, 1, {**env, "WEBHOOK_WORKER": "false"}, "/healthz", []
        )
        rng = random.Random(3)
        on: list[float] = []
        off: list[float] = []
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{API_PORT}") as client:
            await single_creates(client, headers, 100, rng)  # warm-up
            for _ in range(args.rounds):
                for mode in ("active", "disabled"):
                    await conn.execute("UPDATE alert_subscriptions SET status = $1", mode)
                    rate = await single_creates(client, headers, args.singles, rng)
                    (on if mode == "active" else off).append(rate)
        results["creates_on"] = statistics.median(on)
        results["creates_off"] = statistics.median(off)
        # 4. streams
        stop_server(api)
        await conn.execute("UPDATE alert_subscriptions SET status = 'disabled'")
        streams = _uvicorn(
            "app.main:app",
            STREAM_PORT,
            1,
            {**env, "WEBHOOK_WORKER": "false", "MAX_STREAMS": str(args.streams + 10)},
            "/healthz",
            [],
        )
        api = streams
        rss_before = worker_rss_mb(streams)
        results["streams"] = await streams_run(
            f"http://127.0.0.1:{STREAM_PORT}",
            headers,
            args.streams,
            args.rate,
            args.stream_seconds,
        )
        results["streams"]["rss_idle_mb"] = rss_before
        results["streams"]["rss_mb"] = worker_rss_mb(streams)
    finally:
        for proc in (api, receiver):
            if proc.poll() is None:
                stop_server(proc)
        await conn.close()
    report(results, args)


def report(r: dict[str, Any], args: argparse.Namespace) -> None:
    s = r["streams"]
    lines = [
        f"alerts benchmark {r['at']}: {args.subscriptions:,} subscriptions, {args.rows:,} rows",
        f"  subscriptions created        {r['subscribe_s']:8.1f} s "
        f"({args.subscriptions / r['subscribe_s']:,.0f}/s)",
        f"  bulk import, alerts active   {r['import_on_s']:8.2f} s   "
        f"floor (subscriptions disabled) {r['import_off_s']:.2f} s   "
        f"matching inside the import ~{r['import_on_s'] - r['import_off_s']:.2f} s",
        f"  match query alone            {r['match_query_s']:8.2f} s   "
        f"floor (bare GiST + distance join) {r['floor_match_s']:.2f} s   "
        f"({r['match_rows']:,} vs {r['floor_match_rows']:,} pairs); the bare join written to an "
        f"unindexed table {r['floor_write_s']:.2f} s",
        f"  deliveries                   {r['deliveries']:8,}     "
        + (
            f"last received after {r['last_webhook_s']:.1f} s "
            if r["received"] >= r["deliveries"]
            else f"{r['received']:,} received in {r['last_webhook_s']:.1f} s (stopped there; "
            f"all at that pace ~{r['deliveries'] * r['last_webhook_s'] / r['received']:.0f} s) "
        )
        + f"({r['received'] / max(r['last_webhook_s'], 1e-9):,.0f}/s); "
        f"floor: {r['floor_posts']:,} bare POSTs in {r['floor_posts_s']:.1f} s "
        f"({r['floor_posts'] / r['floor_posts_s']:,.0f}/s)",
        f"  single creates               {r['creates_on']:8.0f}/s with subscriptions active; "
        f"floor (disabled) {r['creates_off']:.0f}/s; "
        f"ratio {r['creates_on'] / r['creates_off']:.2f}",
        f"  streams                      {s['streams']} open, {s['writes']} writes at "
        f"{s['write_rate']:.1f}/s, {s['events']:,} events, {s['exact']}/{s['streams']} streams "
        f"exact ({s['missing']} missing, {s['extra']} extra, {s['repeated']} repeated); "
        f"delay p50 {s['p50_ms']:.0f} ms p99 {s['p99_ms']:.0f} ms max {s['max_ms']:.0f} ms;"
        f" RSS {s['rss_idle_mb']:.0f} -> {s['rss_mb']:.0f} MB",
    ]
    text = "\n".join(lines)
    print(text)
    out = ROOT / "bench" / "results" / f"alerts-{dt.datetime.now():%Y%m%d-%H%M}.txt"
    out.write_text(text + "\n" + json.dumps(r, indent=2, default=str) + "\n")
    print(f"(kept in {out.relative_to(ROOT)})")


if __name__ == "__main__":
    asyncio.run(main())
