"""Database outage under write load: nothing acknowledged is lost, nothing failed is half-done.

The script builds a PostgreSQL cluster of its own (initdb in a temporary directory, its own
port and socket directory; the machine's shared server is never touched), migrates it, starts
the API against it, and runs WRITERS clients posting incidents in a closed loop. After
BEFORE_S seconds it stops the cluster (`pg_ctl stop -m immediate`: a crash, no clean
shutdown), keeps it down for OUTAGE_S seconds while the writers and a /readyz prober carry
on, starts it again and lets the writers run AFTER_S more seconds. Then it counts:

- acknowledged writes (2xx) and how many of them are in the database (must be all);
- writes that got an error, and how many of those are nevertheless stored (a commit whose
  reply was lost when the connection died; reported, never half-applied);
- half-applied writes: incidents without their `create` revision or revisions without an
  incident (must be 0);
- responses during the outage: status codes, content types, slowest reply (must be 503
  problem+json within the bound), /readyz failures, seconds until the first write succeeds
  after the restart, and that the same server process served again.

Usage: .venv/bin/python bench/outage.py [--writers 20] [--outage-s 10] [--json]
Exit status 0 when every check holds. Figures go to stdout (and bench/results/ with --save).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
DB_NAME = "incidents_outage"
# A request must not wait longer than this while the database is down (connect timeout 2 s).
REPLY_BOUND_S = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pg_bindir() -> Path:
    out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False)
    if out.returncode == 0 and Path(out.stdout.strip(), "initdb").exists():
        return Path(out.stdout.strip())
    for version in ("17", "16", "15"):
        candidate = Path(f"/usr/lib/postgresql/{version}/bin")
        if (candidate / "initdb").exists():
            return candidate
    raise SystemExit("initdb not found: install PostgreSQL's server package")


class Cluster:
    """A throwaway PostgreSQL cluster in a temporary directory (run as `postgres` when root)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bindir = pg_bindir()
        self.tmp = Path(tempfile.mkdtemp(prefix="incidents-outage-"))
        self.data = self.tmp / "data"
        self.log = self.tmp / "server.log"
        self.user: str | None = None
        if os.geteuid() == 0:  # initdb refuses to run as root
            self.user = "postgres"
            entry = pwd.getpwnam(self.user)
            os.chown(self.tmp, entry.pw_uid, entry.pw_gid)

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.tmp}'\nmax_connections = 100\n"
            )

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "start")

    def crash(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.tmp, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DB_NAME}"


@dataclass
class Reply:
    external_id: str
    status: int  # 0: no HTTP reply at all (connection error or client timeout)
    content_type: str
    started: float
    seconds: float


@dataclass
class Timeline:
    crashed_at: float = 0.0  # the cluster is down (pg_ctl returned)
    restarting_at: float = 0.0  # pg_ctl start called
    restarted_at: float = 0.0  # the cluster accepts connections again
    ready_probes: list[tuple[float, int]] = field(default_factory=list)


def incident_body(external_id: str, n: int) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "event_date": "2024-05-01",
        "event_type": "Explosions/Remote violence",
        "sub_event_type": "Remote explosive/landmine/IED",
        "actor1": "Unidentified Armed Group (Iraq)",
        "country": "Iraq",
        "admin1": "Diyala",
        "location": "Khanaqin",
        # Spread the points so no two writes look like duplicates of each other.
        "latitude": 30.0 + (n % 500) * 0.02,
        "longitude": 40.0 + (n // 500 % 500) * 0.02,
        "fatalities": n % 7,
        "source": "outage test",
    }


async def writer(
    client: httpx.AsyncClient, wid: int, stop: asyncio.Event, replies: list[Reply]
) -> None:
    n = 0
    while not stop.is_set():
        external_id = f"outage-{wid}-{n}"
        started = time.monotonic()
        try:
            resp = await client.post(
                "/v1/incidents", json=incident_body(external_id, wid * 100000 + n)
            )
            status, ctype = resp.status_code, resp.headers.get("content-type", "")
        except httpx.HTTPError:
            status, ctype = 0, ""
        replies.append(Reply(external_id, status, ctype, started, time.monotonic() - started))
        n += 1
        if status >= 500 or status == 0:
            await asyncio.sleep(0.2)  # a client backing off, as Retry-After asks


async def prober(client: httpx.AsyncClient, stop: asyncio.Event, timeline: Timeline) -> None:
    while not stop.is_set():
        try:
            status = (await client.get("/readyz")).status_code
        except httpx.HTTPError:
            status = 0
        timeline.ready_probes.append((time.monotonic(), status))
        await asyncio.sleep(0.25)


def start_server(database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "warning",
        "DB_CONNECT_TIMEOUT_S": "2",
        "DB_POOL_SIZE": "10",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def cli(database_url: str, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": database_url}
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    cluster = Cluster(free_port())
    server: subprocess.Popen[bytes] | None = None
    try:
        cluster.init()
        cluster.start()
        admin = await asyncpg.connect(cluster.url.rsplit("/", 1)[0] + "/postgres")
        await admin.execute(f'CREATE DATABASE "{DB_NAME}"')
        await admin.close()
        cli(cluster.url, "migrate")
        key = cli(cluster.url, "keys", "create", "--name", "outage", "--scopes", "read,write")

        port = free_port()
        server = start_server(cluster.url, port)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as probe:
            for _ in range(100):
                with contextlib.suppress(httpx.HTTPError):
                    if (await probe.get("/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise SystemExit("server did not become ready")
        server_pid = server.pid

        replies: list[Reply] = []
        timeline = Timeline()
        stop = asyncio.Event()
        limits = httpx.Limits(max_connections=args.writers + 2)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(
            base_url=base, timeout=30, limits=limits, headers=headers
        ) as client:
            tasks = [
                asyncio.create_task(writer(client, w, stop, replies)) for w in range(args.writers)
            ]
            tasks.append(asyncio.create_task(prober(client, stop, timeline)))
            await asyncio.sleep(args.before_s)
            await asyncio.to_thread(cluster.crash)
            timeline.crashed_at = time.monotonic()
            await asyncio.sleep(args.outage_s)
            timeline.restarting_at = time.monotonic()
            await asyncio.to_thread(cluster.start)
            timeline.restarted_at = time.monotonic()
            await asyncio.sleep(args.after_s)
            stop.set()
            await asyncio.gather(*tasks)
        same_process = server.poll() is None and server.pid == server_pid

        conn = await asyncpg.connect(cluster.url)
        try:
            stored = {
                r["external_id"]
                for r in await conn.fetch(
                    "SELECT external_id FROM incidents WHERE external_id LIKE 'outage-%'"
                )
            }
            without_revision = await conn.fetchval(
                "SELECT count(*) FROM incidents i WHERE NOT EXISTS (SELECT 1 FROM "
                "incident_revisions r WHERE r.incident_id = i.id AND r.op = 'create')"
            )
            revisions_without_incident = await conn.fetchval(
                "SELECT count(*) FROM incident_revisions r WHERE NOT EXISTS "
                "(SELECT 1 FROM incidents i WHERE i.id = r.incident_id)"
            )
            extra_revisions = await conn.fetchval(
                "SELECT count(*) - count(DISTINCT incident_id) FROM incident_revisions"
            )
        finally:
            await conn.close()
        return summarise(
            args,
            replies,
            timeline,
            stored,
            same_process,
            int(without_revision),
            int(revisions_without_incident),
            int(extra_revisions),
        )
    finally:
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        cluster.destroy()


def summarise(
    args: argparse.Namespace,
    replies: list[Reply],
    timeline: Timeline,
    stored: set[str],
    same_process: bool,
    without_revision: int,
    revisions_without_incident: int,
    extra_revisions: int,
) -> dict[str, Any]:
    acked = {r.external_id for r in replies if 200 <= r.status < 300}
    failed = {r.external_id for r in replies if not 200 <= r.status < 300}
    down = [r for r in replies if timeline.crashed_at <= r.started < timeline.restarting_at]
    after = [r for r in replies if r.started >= timeline.restarted_at]
    first_ok_after = min(
        (r.started + r.seconds for r in after if 200 <= r.status < 300), default=None
    )
    ready_down = [
        s for t, s in timeline.ready_probes if timeline.crashed_at <= t < timeline.restarting_at
    ]
    ready_after = [s for t, s in timeline.ready_probes if t >= timeline.restarted_at]
    error_types = Counter(
        r.content_type.split(";")[0] for r in replies if r.status >= 400 or r.status == 0
    )
    result: dict[str, Any] = {
        "writers": args.writers,
        "outage_s": args.outage_s,
        "requests": len(replies),
        "acknowledged": len(acked),
        "acknowledged_found": len(acked & stored),
        "acknowledged_lost": len(acked - stored),
        "errored": len(failed),
        "errored_but_stored": len(failed & stored),
        "stored_total": len(stored),
        "half_applied": without_revision + revisions_without_incident + extra_revisions,
        "statuses": dict(sorted(Counter(r.status for r in replies).items())),
        "statuses_while_down": dict(sorted(Counter(r.status for r in down).items())),
        "error_content_types": dict(error_types),
        "slowest_reply_while_down_s": round(max((r.seconds for r in down), default=0.0), 3),
        "median_reply_while_down_s": round(
            sorted(r.seconds for r in down)[len(down) // 2] if down else 0.0, 3
        ),
        "readyz_while_down": dict(Counter(ready_down)),
        "readyz_after": dict(Counter(ready_after)),
        "first_write_ok_after_restart_s": (
            round(first_ok_after - timeline.restarted_at, 3) if first_ok_after else None
        ),
        "acknowledged_after_restart": sum(1 for r in after if 200 <= r.status < 300),
        "same_server_process": same_process,
    }
    checks = {
        "no acknowledged write lost": result["acknowledged_lost"] == 0,
        "nothing half-applied": result["half_applied"] == 0,
        "writes acknowledged before and after": bool(acked)
        and result["acknowledged_after_restart"] > 0,
        "503 while down": bool(down) and set(result["statuses_while_down"]) <= {503},
        "errors are problem+json": set(error_types) <= {"application/problem+json"},
        "bounded replies while down": result["slowest_reply_while_down_s"] <= REPLY_BOUND_S,
        "readyz fails while down": bool(ready_down) and 200 not in ready_down,
        "readyz recovers": 200 in ready_after,
        "served again without a restart": same_process,
    }
    result["checks"] = checks
    result["ok"] = all(checks.values())
    return result


def report(result: dict[str, Any]) -> str:
    lines = [
        f"database outage under write load ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})"
    ]
    for name, value in result.items():
        if name not in ("checks", "ok"):
            lines.append(f"  {name:34} {value}")
    lines.append("checks:")
    for name, passed in result["checks"].items():
        lines.append(f"  {'PASS' if passed else 'FAIL'}  {name}")
    lines.append("OK" if result["ok"] else "FAILED")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=20)
    parser.add_argument("--before-s", type=float, default=5.0)
    parser.add_argument("--outage-s", type=float, default=10.0)
    parser.add_argument("--after-s", type=float, default=8.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--save", action="store_true", help="also write bench/results/outage-*.txt")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    text = json.dumps(result) if args.json else report(result)
    print(text)
    if args.save:
        out = (
            ROOT / "bench" / "results" / f"outage-{time.strftime('%Y%m%d-%H%M', time.gmtime())}.txt"
        )
        out.write_text(report(result) + "\n")
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
