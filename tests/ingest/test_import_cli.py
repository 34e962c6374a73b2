"""`incidents import` (idempotent, resumable, progress) and `incidents export`."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from app.incidents.importers import job as job_module
from app.incidents.importers.job import run_import
from tests.conftest import PEPPER

pytestmark = pytest.mark.usefixtures("gazetteer", "boundaries", "clean_incidents")
ROOT = Path(__file__).resolve().parents[2]


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "KEY_PEPPER": PEPPER}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def generated(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "acled.csv"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "generate_acled.py"),
            "--rows",
            str(rows),
            "--out",
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    return path


def test_import_is_idempotent_with_progress(database_url: str, tmp_path: Path) -> None:
    path = generated(tmp_path, 3000)
    first = cli(database_url, "import", str(path), "--batch", "1000")
    assert first.returncode == 0, first.stderr
    assert "3000 rows read, 3000 inserted" in first.stderr
    assert "rows/s" in first.stderr and "ETA" in first.stderr and "100.0%" in first.stderr
    second = cli(database_url, "import", str(path), "--batch", "1000")
    assert "0 inserted, 0 updated, 3000 unchanged" in second.stderr, second.stderr


async def test_import_resumes_after_interruption(
    database_url: str, tmp_path: Path, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = generated(tmp_path, 2500)
    calls = {"n": 0}
    real = job_module.write

    async def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # the user pressed Ctrl-C during the third chunk
        await real(*args, **kwargs)

    monkeypatch.setattr(job_module, "write", failing)

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(database_url)

    conn = await asyncpg.connect(database_url, server_settings={"jit": "off"})
    try:
        with pytest.raises(KeyboardInterrupt):
            await run_import(
                conn, path, batch=1000, progress=False, rebuild_indexes="never", connect=connect
            )
    finally:
        await conn.close()
    assert await db.fetchval("SELECT count(*) FROM incidents") == 2000
    assert await db.fetchval("SELECT rows_done FROM import_jobs WHERE status = 'running'") == 2000
    monkeypatch.setattr(job_module, "write", real)
    conn = await asyncpg.connect(database_url, server_settings={"jit": "off"})
    try:
        result = await run_import(
            conn, path, batch=1000, progress=False, rebuild_indexes="never", connect=connect
        )
    finally:
        await conn.close()
    assert result.resumed_from == 2000 and result.report.inserted == 500
    assert await db.fetchval("SELECT count(DISTINCT external_id) FROM incidents") == 2500
    assert await db.fetchval("SELECT count(*) FROM incidents") == 2500


def test_import_reports_bad_rows(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    src = (ROOT / "tests" / "fixtures" / "acled_legacy.csv").read_text()
    path.write_text(src.replace("29-Feb-20", "31-Feb-20"))
    result = cli(database_url, "import", str(path))
    assert "1 inserted" in result.stderr and "1 failed" in result.stderr
    assert "row 1 line 2: event_date" in result.stderr
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("a,b\n1,2\n")
    result = cli(database_url, "import", str(unknown))
    assert result.returncode == 1 and "unrecognised CSV header" in result.stderr


def test_export_streams_every_format(database_url: str, tmp_path: Path) -> None:
    path = generated(tmp_path, 1200)
    assert cli(database_url, "import", str(path), "--quiet").returncode == 0
    out = cli(database_url, "export", "--format", "csv")
    assert len(list(csv.DictReader(io.StringIO(out.stdout)))) == 1200
    nd = cli(database_url, "export", "--format", "ndjson", "--country", "Syria")
    lines = [json.loads(line) for line in nd.stdout.splitlines()]
    assert lines and all(item["country"] == "Syria" for item in lines)
    target = tmp_path / "out.geojson"
    geo = cli(
        database_url,
        "export",
        "--format",
        "geojson",
        "--near",
        "Khanaqin",
        "--radius-km",
        "30",
        "-o",
        str(target),
    )
    assert geo.returncode == 0, geo.stderr
    fc = json.loads(target.read_text())
    assert fc["type"] == "FeatureCollection" and fc["features"]
    assert all(f["properties"]["distance_km"] <= 30 for f in fc["features"])
    bad = cli(database_url, "export", "--near", "Qwxzyvillage")
    assert bad.returncode == 1 and "Unknown place" in bad.stderr
