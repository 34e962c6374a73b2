"""Soak and overload: a mixed load far above the pool, for minutes, against two workers.

    .venv/bin/python bench/soak.py --database-url postgresql://postgres@127.0.0.1/incidents_bench

Needs a loaded database (`bash bench/import_bench.sh`). Starts `incidents serve --workers 2`
on it (pool of `DB_POOL_SIZE` per worker, far fewer than the connections), creates a write key
with the real CLI, then `--connections` clients each loop for `--minutes`: 80% searches (the
radius, bbox, bbox-large and get-one scenarios of `bench/http_bench.py`), 15% single creates,
5% bulk batches of 1,000 NDJSON rows. Every client opens its own connection. Prints and keeps
in bench/results/:

- responses by status; any status >= 500 other than 503 with Retry-After counts as a failure,
  and so does a connection dropped or timed out (a transport error);
- the slowest 503 (a full pool answers within `DB_CONNECT_TIMEOUT_S`, the queue timeout): one
  more than a second later fails;
- the workers' RSS at the start and at the end;
- every acknowledged write looked up at the end: created incidents by id, bulk rows by
  external id; one missing is a failure.

Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_bench import SCENARIOS, _uvicorn, stop_server, worker_rss_mb  # noqa: E402

QUEUE_TIMEOUT_S = 2.0
SEARCHES = ("radius", "bbox", "bbox-large", "get-one")
EVENT = {
    "event_date": "2024-05-01",
    "event_type": "Battles",
    "sub_event_type": "Armed clash",
    "actor1": "Soak test",
    "country": "Iraq",
    "admin1": "Diyala",
    "fatalities": 0,
    "source": "bench/soak.py",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def incident(tag: str) -> dict[str, object]:
    lat, lon = 33.5 + random.random(), 44.5 + random.random()
    return {**EVENT, "external_id": tag, "latitude": round(lat, 5), "longitude": round(lon, 5)}


class Soak:
    def __init__(self, base: str, key: str, ids: list[int], until: float) -> None:
        self.base, self.until, self.ids = base, until, ids
        self.auth = {"Authorization": f"Bearer {key}"}
        self.codes: Counter[str] = Counter()
        self.failures: list[str] = []
        self.slowest_503 = 0.0
        self.created: list[int] = []
        self.bulk_ids: list[str] = []

    def record(self, kind: str, resp: httpx.Response, seconds: float) -> None:
        self.codes[f"{kind} {resp.status_code}"] += 1
        if resp.status_code == 503:
            self.slowest_503 = max(self.slowest_503, seconds)
            if "retry-after" not in resp.headers:
                self.failures.append(f"{kind}: 503 without Retry-After")
        elif resp.status_code >= 500:
            self.failures.append(f"{kind}: {resp.status_code} {resp.text[:200]}")

    async def one(self, client: httpx.AsyncClient) -> None:
        roll = random.random()
        started = time.perf_counter()
        if roll < 0.80:
            name = random.choice(SEARCHES)
            path = SCENARIOS[name]["path"].replace("{id}", str(random.choice(self.ids)))
            resp = await client.get(self.base + path)
            self.record(name, resp, time.perf_counter() - started)
        elif roll < 0.95:
            tag = f"soak-{uuid.uuid4().hex}"
            resp = await client.post(
                self.base + "/v1/incidents", json=incident(tag), headers=self.auth
            )
            self.record("create", resp, time.perf_counter() - started)
            if resp.status_code == 201:
                self.created.append(int(resp.json()["id"]))
        else:
            tags = [f"soak-bulk-{uuid.uuid4().hex}" for _ in range(1000)]
            body = "\n".join(json.dumps(incident(t)) for t in tags).encode()
            resp = await client.post(
                self.base + "/v1/incidents/bulk",
                content=body,
                headers={**self.auth, "Content-Type": "application/x-ndjson"},
            )
            self.record("bulk", resp, time.perf_counter() - started)
            if resp.status_code == 200 and resp.json().get("failed") == 0:
                self.bulk_ids += tags

    async def client_loop(self) -> None:
        # One connection per simulated client, as 500 separate users would open.
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            while time.monotonic() < self.until:
                try:
                    await self.one(client)
                except httpx.HTTPError as exc:
                    self.codes[f"transport {type(exc).__name__}"] += 1


async def sample_ids(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT id FROM incidents WHERE deleted_at IS NULL ORDER BY random() LIMIT 2000"
        )
    finally:
        await conn.close()
    return [int(r["id"]) for r in rows]


async def missing_writes(url: str, created: list[int], bulk: list[str]) -> tuple[int, int]:
    conn = await asyncpg.connect(url)
    try:
        found = await conn.fetchval(
            "SELECT count(*) FROM incidents WHERE id = ANY($1::bigint[])", created
        )
        found_bulk = await conn.fetchval(
            "SELECT count(*) FROM incidents WHERE external_id = ANY($1::text[])", bulk
        )
    finally:
        await conn.close()
    return len(created) - int(found), len(bulk) - int(found_bulk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool", type=int, default=10, help="DB_POOL_SIZE per worker")
    args = parser.parse_args()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "DB_POOL_SIZE": str(args.pool),
        "DB_CONNECT_TIMEOUT_S": str(QUEUE_TIMEOUT_S),
        "LOG_LEVEL": "warning",
        "WEBHOOK_WORKER": "false",
        "RATE_LIMIT_PER_MINUTE": "0",
    }
    cli = [str(ROOT / ".venv/bin/incidents")]
    key = subprocess.run(
        [*cli, "keys", "create", "--name", "soak", "--scopes", "read,write"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # What `incidents serve --workers N` runs (WEB_CONCURRENCY as it sets it).
    server = _uvicorn(
        "app.main:app",
        port,
        args.workers,
        {**env, "WEB_CONCURRENCY": str(args.workers)},
        "/healthz",
        [],
    )
    base = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    try:
        ids = asyncio.run(sample_ids(args.database_url))
        rss_start = worker_rss_mb(server)
        soak = Soak(base, key, ids, time.monotonic() + args.minutes * 60)

        async def run() -> None:
            await asyncio.gather(*(soak.client_loop() for _ in range(args.connections)))

        started = time.perf_counter()
        asyncio.run(run())
        seconds = time.perf_counter() - started
        rss_end = worker_rss_mb(server)
        lost_created, lost_bulk = asyncio.run(
            missing_writes(args.database_url, soak.created, soak.bulk_ids)
        )
    finally:
        stop_server(server)
    total = sum(soak.codes.values())
    lines.append(
        f"# soak, {dt.datetime.now(dt.UTC):%Y-%m-%dT%H:%M:%SZ}, {os.cpu_count()} cores, "
        f"{args.workers} workers x pool {args.pool}, {args.connections} connections, "
        f"{seconds:.0f} s, queue timeout {QUEUE_TIMEOUT_S:g} s"
    )
    lines.append(f"responses: {total} ({total / seconds:.0f}/s)")
    lines += [f"  {name}: {count}" for name, count in sorted(soak.codes.items())]
    lines.append(f"slowest 503: {soak.slowest_503:.2f} s")
    lines.append(f"worker RSS: {rss_start:.0f} MB at the start, {rss_end:.0f} MB at the end")
    lines.append(
        f"acknowledged writes: {len(soak.created)} creates, {len(soak.bulk_ids)} bulk rows; "
        f"missing at the end: {lost_created} creates, {lost_bulk} bulk rows"
    )
    transport = sum(n for name, n in soak.codes.items() if name.startswith("transport"))
    # A full pool answers 503 within the queue timeout; a second more for the work before it.
    late = soak.slowest_503 > QUEUE_TIMEOUT_S + 1
    lines.append(f"transport errors (connections dropped or timed out): {transport}")
    lines.append(f"503 later than the queue timeout + 1 s: {'yes' if late else 'no'}")
    failed = bool(soak.failures) or lost_created > 0 or lost_bulk > 0 or transport > 0 or late
    lines.append(
        f"failures: {len(soak.failures)}"
        + (f" (first: {soak.failures[0]})" if soak.failures else "")
    )
    lines.append("result: " + ("FAILED" if failed else "ok"))
    out = ROOT / "bench" / "results" / f"soak-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M}.txt"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
