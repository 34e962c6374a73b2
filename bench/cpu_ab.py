"""Worker CPU per request of two checkouts of the API, interleaved (A/B on a noisy machine).

    git worktree add /tmp/before <revision>; ln -s "$PWD/.venv" /tmp/before/.venv
    .venv/bin/python bench/cpu_ab.py --before /tmp/before --after . [--rounds 6]

Both servers (one uvicorn worker each) run on the benchmark database at once; each round runs
every scenario against each (order alternating by round): 2 s of warm-up, then 6 s of wrk
-t2 -c16, reading the worker's CPU time (user + system, /proc) before and after. CPU time per
request is what the Python side costs, far less sensitive than req/s to what else the two
cores are doing. Prints medians (and every run); the output also goes to bench/results/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = {
    "get-one": "/v1/incidents/{id}",
    "radius": "/v1/incidents?near=34.348,45.391&radius_km=25&start=2024-01-01&end=2024-12-31"
    "&limit=100",
    "bbox": "/v1/incidents?bbox=44.5,33.5,46.0,35.0&limit=100",
}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(tree: Path, port: int, database_url: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "warning", "DB_POOL_SIZE": "16"}
    proc = subprocess.Popen(
        [str(tree / ".venv/bin/uvicorn"), "app.main:app", "--host", "127.0.0.1"]
        + ["--port", str(port), "--workers", "1", "--log-level", "warning", "--no-access-log"],
        cwd=tree,
        env=env,
        start_new_session=True,
    )
    for _ in range(150):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{tree} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=ROOT)
    parser.add_argument(
        "--database-url", default="postgresql://postgres@127.0.0.1:5432/incidents_bench"
    )
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--sample-id", type=int, default=500001)
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    ports = {"before": 8071, "after": 8072}
    procs = {name: start(tree, ports[name], args.database_url) for name, tree in trees.items()}
    runs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    try:
        for rnd in range(args.rounds):
            order = ("before", "after") if rnd % 2 == 0 else ("after", "before")
            for scenario, path in SCENARIOS.items():
                for name in order:
                    url = f"http://127.0.0.1:{ports[name]}{path.format(id=args.sample_id)}"
                    assert httpx.get(url, timeout=30).status_code == 200, url
                    subprocess.run(["wrk", "-t2", "-c16", "-d2s", url], capture_output=True)
                    used = cpu_seconds(procs[name].pid)
                    out = subprocess.run(
                        ["wrk", "-t2", "-c16", "-d6s", url], capture_output=True, text=True
                    ).stdout
                    used = cpu_seconds(procs[name].pid) - used
                    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
                    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
                    runs.setdefault((scenario, name), []).append((used / count * 1e6, rps))
    finally:
        for proc in procs.values():
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    lines = [
        f"# {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, {args.rounds} "
        f"interleaved rounds; before {trees['before']}, after {trees['after']}",
        f"{'scenario':<10}{'CPU µs/req before':>19}{'after':>8}{'ratio':>7}"
        f"{'req/s before':>14}{'after':>8}",
    ]
    for scenario in SCENARIOS:
        before, after = runs[(scenario, "before")], runs[(scenario, "after")]
        b, a = median([c for c, _ in before]), median([c for c, _ in after])
        lines.append(
            f"{scenario:<10}{b:>19.0f}{a:>8.0f}{a / b:>7.2f}"
            f"{median([r for _, r in before]):>14.0f}{median([r for _, r in after]):>8.0f}"
            f"   runs {[round(c) for c, _ in before]} / {[round(c) for c, _ in after]}"
        )
    table = "\n".join(lines)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"cpu-ab-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M}.txt").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
