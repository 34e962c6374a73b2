"""The API's memory while it ingests a large bulk upload.

Starts the API on a scratch database (`incidents_bulkmem`, created from the migrations),
streams an NDJSON body of ROWS synthetic incidents to POST /v1/incidents/bulk, samples the
worker's RSS every 100 ms and prints body size, time, rows/s and RSS before / peak / after.

Usage: .venv/bin/python bench/bulk_memory.py [--rows 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
DB = "incidents_bulkmem"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else 0.0


def write_body(path: Path, rows: int) -> None:
    rng = random.Random(5)
    with path.open("w") as out:
        for n in range(rows):
            out.write(
                json.dumps(
                    {
                        "external_id": f"MEM{n}",
                        "event_date": f"2024-{1 + n % 12:02d}-{1 + n % 28:02d}",
                        "event_type": "Battles",
                        "sub_event_type": "Armed clash",
                        "actor1": "Military Forces of Iraq (2022-)",
                        "actor2": "Islamic State (Iraq)",
                        "country": "Iraq",
                        "admin1": "Diyala",
                        "location": "Khanaqin",
                        "latitude": round(33.0 + rng.random() * 2, 4),
                        "longitude": round(44.0 + rng.random() * 2, 4),
                        "fatalities": n % 5,
                        "source": "synthetic",
                        "notes": "Synthetic incident for the bulk memory benchmark. " * 4,
                    }
                )
                + "\n"
            )


async def prepare(base_url: str) -> None:
    conn = await asyncpg.connect(f"{base_url}/postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{DB}"')
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    import asyncio

    asyncio.run(prepare(args.server))
    env = {
        **os.environ,
        "DATABASE_URL": f"{args.server}/{DB}",
        "LOG_LEVEL": "warning",
        "MAX_BULK_BODY_BYTES": str(2 * 1024**3),
    }
    cli = [sys.executable, "-m", "app.cli"]
    subprocess.run([*cli, "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run([*cli, "places", "load"], cwd=ROOT, env=env, check=True, capture_output=True)
    key = subprocess.run(
        [*cli, "keys", "create", "--name", "bulkmem", "--scopes", "read,write"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    port = free_port()
    server = subprocess.Popen([*cli, "serve", "--port", str(port)], cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        with tempfile.TemporaryDirectory() as tmp:
            body = Path(tmp) / "bulk.ndjson"
            write_body(body, args.rows)
            size_mb = body.stat().st_size / 1e6
            before = rss_mb(server.pid)
            samples: list[float] = []
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    samples.append(rss_mb(server.pid))
                    time.sleep(0.1)

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.perf_counter()
            with body.open("rb") as fh:
                resp = httpx.post(
                    base + "/v1/incidents/bulk",
                    content=iter(lambda: fh.read(1 << 20), b""),
                    headers={
                        "Authorization": f"Bearer {key}",
                        "Content-Type": "application/x-ndjson",
                    },
                    timeout=3600,
                )
            seconds = time.perf_counter() - started
            done.set()
            sampler.join()
        report = resp.json()
        if resp.status_code != 200:
            print(resp.text[:2000])
        lines = [
            f"# bulk upload memory, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
            f"status {resp.status_code}: inserted {report.get('inserted')}, "
            f"failed {report.get('failed')}",
            f"body {size_mb:.1f} MB, {args.rows:,} rows in {seconds:.1f} s "
            f"= {args.rows / seconds:,.0f} rows/s",
            f"worker RSS before {before:.0f} MB, peak {max(samples):.0f} MB, "
            f"after {rss_mb(server.pid):.0f} MB",
        ]
        print("\n".join(lines))
        stamp = time.strftime("%Y%m%d-%H%M", time.gmtime())
        (ROOT / "bench" / "results" / f"bulk-memory-{stamp}.txt").write_text(
            "\n".join(lines) + "\n"
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
