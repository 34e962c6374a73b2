"""The set-based bulk load keeps every guarantee of the one-by-one path.

A corpus of rows (new ones clustered so that the duplicate rule fires within the batch and
against the store, updates, an unchanged row) is written once one row at a time through the
API and once through each bulk path (`incidents import` rebuilding indexes, `incidents import`
in chunks, `POST /v1/incidents/bulk`); incidents, their revisions, their possible duplicates
and the change feed must be the same. Then: rollups equal direct answers after a load, SQL and
Python validation agree cell by cell, a load killed with SIGKILL (while writing, and while
building indexes) leaves a consistent store that the same command finishes, and a reader
running during a load never sees a partial batch.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from app.incidents.fields import WRITABLE
from app.incidents.importers import indexes
from app.incidents.importers.job import run_import
from app.incidents.importers.raw import copy_in, work_tables
from app.incidents.importers.rows import STAGE_COLUMNS, BulkReport, stage_tuple, validate
from tests.conftest import PEPPER, incident, truncate_incidents

pytestmark = pytest.mark.usefixtures("gazetteer", "boundaries", "clean_incidents")
ROOT = Path(__file__).resolve().parents[2]

# --- the corpus ---------------------------------------------------------------------------

ACTORS = ["Islamic State (Iraq)", "Military Forces of Iraq (2020-)", "Unidentified Armed Group"]
TYPES = [
    ("Violence against civilians", "Attack"),
    ("Battles", "Armed clash"),
    ("Explosions/Remote violence", "Remote explosive/landmine/IED"),
]


def store_rows() -> list[dict[str, Any]]:
    """What the store holds before the load."""
    return [
        incident(
            external_id=f"S{n}",
            event_date=f"2020-06-{10 + n:02d}",
            latitude=34.40 + n * 0.004,
            longitude=45.33,
            fatalities=n,
        )
        for n in range(6)
    ]


def batch_rows() -> list[dict[str, Any]]:
    """The batch: 36 new rows within a few km and days of each other and of the store (the
    duplicate rule fires within the batch and against the store), four updates of stored
    incidents (one of them moves it), one stored incident unchanged, one row that needs its
    country and admin-1 filled from its point."""
    rng = random.Random(11)
    rows = []
    for n in range(36):
        event_type, sub = TYPES[n % 3]
        rows.append(
            incident(
                external_id=f"B{n}",
                event_type=event_type,
                sub_event_type=sub,
                event_date=f"2020-06-{10 + rng.randrange(6):02d}",
                latitude=round(34.39 + rng.random() * 0.05, 5),
                longitude=round(45.31 + rng.random() * 0.05, 5),
                actor1=ACTORS[rng.randrange(3)],
                actor2=None if n % 4 else "Civilians (Iraq)",
                fatalities=rng.randrange(5),
                notes=f"row {n}",
            )
        )
    stored = store_rows()
    rows.insert(5, {**stored[1], "fatalities": 40})
    rows.insert(12, {**stored[2], "latitude": 34.47, "notes": "moved"})
    rows.insert(20, {**stored[3], "admin2": None, "source": "Kurdistan 24"})
    rows.insert(30, {**stored[4], "fatalities": 41, "tags": ["women targeted: girls"]})
    rows.insert(33, stored[5])
    unplaced = incident(external_id="B-fill", notes="fill me", latitude=34.36, longitude=45.38)
    for key in ("country", "admin1", "admin2"):
        unplaced.pop(key)
    rows.append(unplaced)
    return rows


def ndjson(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def own_csv(rows: list[dict[str, Any]]) -> bytes:
    """The rows in our own CSV layout (what `incidents export` writes)."""
    names = [f.name for f in WRITABLE]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([f.csv_name for f in WRITABLE])
    for row in rows:
        cells = []
        for name in names:
            value = row.get(name)
            if isinstance(value, list):
                value = "; ".join(value)
            elif isinstance(value, bool):
                value = "true" if value else "false"
            cells.append("" if value is None else value)
        writer.writerow(cells)
    return out.getvalue().encode()


# --- what a load leaves behind --------------------------------------------------------------

VOLATILE = {"id", "created_at", "updated_at", "changed_at", "at", "changed_by", "links", "etag"}


def _normal(doc: Any, names: dict[str, str]) -> Any:
    if isinstance(doc, dict):
        out = {}
        for key, value in doc.items():
            if key in VOLATILE:
                continue
            if key == "possible_duplicates":
                value = sorted(names[str(v)] for v in value)
            out[key] = _normal(value, names)
        return out
    if isinstance(doc, list):
        return [_normal(v, names) for v in doc]
    return doc


async def feed_cursor(client: httpx.AsyncClient) -> str:
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/changes", params=params)).json()
        cursor = page["next_cursor"]
        if not page["items"]:
            return str(cursor)


async def feed_since(client: httpx.AsyncClient, cursor: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        resp = await client.get("/v1/changes", params={"cursor": cursor, "limit": 17})
        assert resp.status_code == 200, resp.text
        page = resp.json()
        cursor = page["next_cursor"]
        items += page["items"]
        if not page["items"]:
            return items


async def snapshot(
    client: httpx.AsyncClient, db: asyncpg.Connection, cursor: str
) -> dict[str, Any]:
    """Every incident (by external id), its revisions, and the feed since `cursor`, with ids
    replaced by external ids (the two paths number rows differently across runs)."""
    names = {
        str(r["id"]): r["external_id"]
        for r in await db.fetch("SELECT id, external_id FROM incidents")
    }
    incidents, revisions = {}, {}
    for id_, name in names.items():
        doc = await client.get(f"/v1/incidents/{id_}")
        assert doc.status_code == 200, doc.text
        incidents[name] = _normal(doc.json(), names)
        revs = await client.get(f"/v1/incidents/{id_}/revisions")
        assert revs.status_code == 200, revs.text
        revisions[name] = _normal(revs.json(), names)
    feed = Counter(
        (i["op"], names[i["id"]], i["version"], json.dumps(_normal(i["incident"], names)))
        for i in await feed_since(client, cursor)
    )
    return {"incidents": incidents, "revisions": revisions, "feed": feed}


async def check_history(db: asyncpg.Connection) -> None:
    """Every revision has its incident version (current or in the history), and the reverse."""
    orphans = await db.fetchval(
        """
        SELECT count(*) FROM incident_revisions r
        WHERE NOT EXISTS (SELECT 1 FROM incidents i WHERE i.id = r.incident_id
                          AND i.version = r.version)
          AND NOT EXISTS (SELECT 1 FROM incident_history h WHERE h.id = r.incident_id
                          AND h.version = r.version)
        """
    )
    assert orphans == 0
    unexplained = await db.fetchval(
        """
        SELECT count(*) FROM incidents i WHERE NOT EXISTS (
            SELECT 1 FROM incident_revisions r WHERE r.incident_id = i.id
            AND r.version = i.version)
        """
    )
    assert unexplained == 0


async def post_store(client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    for row in store_rows():
        resp = await client.post("/v1/incidents", json=row, headers=writer)
        assert resp.status_code == 201, resp.text


async def one_by_one(client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    """The batch as a client without bulk would send it: a create per new row, an upsert of
    one row per existing one."""
    stored = {r["external_id"] for r in store_rows()}
    for row in batch_rows():
        if row["external_id"] in stored:
            resp = await client.post(
                "/v1/incidents/bulk",
                content=json.dumps([row]),
                headers={**writer, "Content-Type": "application/json"},
            )
            assert resp.status_code == 200, resp.text
        else:
            resp = await client.post("/v1/incidents", json=row, headers=writer)
            assert resp.status_code == 201, resp.text


async def _connect_to(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(url, server_settings={"statement_timeout": "0"})


async def import_file(database_url: str, path: Path, **options: Any) -> Any:
    conn = await _connect_to(database_url)
    try:
        return await run_import(
            conn, path, progress=False, connect=lambda: _connect_to(database_url), **options
        )
    finally:
        await conn.close()


async def reset(db: asyncpg.Connection) -> None:
    await truncate_incidents(db, "import_jobs")


@pytest.mark.parametrize("path", ["import-rebuild", "import-chunks", "api-bulk"])
async def test_bulk_load_equals_one_by_one(
    path: str,
    client: httpx.AsyncClient,
    writer: dict[str, str],
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
) -> None:
    await reset(db)
    await post_store(client, writer)
    cursor = await feed_cursor(client)
    await one_by_one(client, writer)
    expected = await snapshot(client, db, cursor)
    await check_history(db)

    await reset(db)
    await post_store(client, writer)
    cursor = await feed_cursor(client)
    rows = batch_rows()
    if path == "import-rebuild":
        file = tmp_path / "batch.ndjson"
        file.write_bytes(ndjson(rows))
        result = await import_file(database_url, file, rebuild_indexes="always")
        assert result.indexes_built  # the secondary indexes really were rebuilt
        report = result.report
    elif path == "import-chunks":
        file = tmp_path / "batch.csv"
        file.write_bytes(own_csv(rows))
        # Chunks of 7: duplicates across chunk boundaries come from the store's index.
        result = await import_file(database_url, file, rebuild_indexes="never", batch=7)
        assert result.indexes_built == {}
        report = result.report
    else:
        resp = await client.post(
            "/v1/incidents/bulk",
            content=ndjson(rows),
            headers={**writer, "Content-Type": "application/x-ndjson"},
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        report = BulkReport(
            inserted=body["inserted"], updated=body["updated"], unchanged=body["unchanged"]
        )
    assert (report.inserted, report.updated, report.unchanged) == (37, 4, 1)
    got = await snapshot(client, db, cursor)
    await check_history(db)
    assert got["incidents"] == expected["incidents"]
    assert got["revisions"] == expected["revisions"]
    assert got["feed"] == expected["feed"]
    # The corpus does exercise the rule: pairs inside the batch and against the store.
    flagged = {k: v["possible_duplicates"] for k, v in got["incidents"].items()}
    assert any(any(d.startswith("S") for d in v) for k, v in flagged.items() if k[0] == "B")
    assert any(any(d.startswith("B") for d in v) for k, v in flagged.items() if k[0] == "B")
    assert got["incidents"]["B-fill"]["admin1"] == "Diyala"
    assert set(await indexes.missing(db, await indexes.definitions(db))) == set()


async def test_rollups_equal_direct_answers_after_a_load(
    client: httpx.AsyncClient, db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    await reset(db)
    file = generate(tmp_path, 4000)
    await import_file(database_url, file, rebuild_indexes="always")
    # A second file changing the fatalities of 800 of those rows, in chunks with live indexes.
    second = rewrite(file, tmp_path / "second.csv", 800, fatalities=lambda v: str(int(v) + 3))
    result = await import_file(database_url, second, rebuild_indexes="never", batch=300)
    assert result.report.updated == 800
    assert await db.fetchval("SELECT count(*) FROM incidents") == 4000
    rollup = await db.fetch(
        "SELECT country, month, sum(incidents)::bigint AS incidents, "
        "sum(fatalities)::bigint AS fatalities FROM incident_rollup_month "
        "GROUP BY country, month HAVING sum(incidents) <> 0 ORDER BY country, month"
    )
    direct = await db.fetch(
        "SELECT coalesce(country, ''), date_trunc('month', event_date)::date AS month, "
        "count(*) AS incidents, "
        "sum(fatalities)::bigint AS fatalities FROM incidents WHERE deleted_at IS NULL "
        "GROUP BY 1, 2 ORDER BY 1, 2"
    )
    assert [tuple(r) for r in rollup] == [tuple(r) for r in direct]
    # And through the API, where the stats endpoint answers from the rollup.
    stats = await client.get("/v1/stats", params={"group_by": "country"})
    assert stats.status_code == 200, stats.text
    by_country = {row["country"]: row["incidents"] for row in stats.json()["items"]}
    assert by_country == dict(
        await db.fetch(
            "SELECT country, count(*) FROM incidents WHERE deleted_at IS NULL GROUP BY country"
        )
    )


ROLLUP_KEYS = {
    "incident_rollup_month": "month, country, country_code, admin1, admin2, event_type, "
    "sub_event_type, disorder_type",
    "incident_tile_cells": "cx, cy",
    "incident_grid_cells": "edge_km, month, q, r",
}
ROLLUP_SUMS = {
    "incident_rollup_month": "sum(incidents), sum(fatalities)",
    "incident_tile_cells": "sum(incidents), sum(fatalities), round(sum(sum_x)), round(sum(sum_y))",
    "incident_grid_cells": "sum(incidents), sum(fatalities)",
}


async def rollups_from_scratch(db: asyncpg.Connection) -> None:
    """Every rollup equals the same statements run over the live incidents from nothing."""
    cols = await db.fetchval("SELECT incident_rollup_columns()")
    src = f"SELECT {cols}, 1 AS sign FROM incidents WHERE deleted_at IS NULL"
    async with db.transaction():
        for table in ROLLUP_KEYS:
            await db.execute(
                f"CREATE TEMP TABLE scratch_{table} (LIKE {table} INCLUDING DEFAULTS) "
                "ON COMMIT DROP"
            )
        await db.execute(
            await db.fetchval(
                "SELECT incident_rollups_sql($1, $2, $3)",
                src,
                "scratch_incident_rollup_month",
                "scratch_incident_tile_cells",
            )
        )
        await db.execute(
            await db.fetchval(
                "SELECT incident_grid_sql($1, $2)", src, "scratch_incident_grid_cells"
            )
        )
        for table, keys in ROLLUP_KEYS.items():
            sums = ROLLUP_SUMS[table]
            query = (
                "SELECT {keys}, {sums} FROM {t} GROUP BY {keys} "
                "HAVING sum(incidents) <> 0 OR sum(fatalities) <> 0 ORDER BY {keys}"
            )
            stored = await db.fetch(query.format(keys=keys, sums=sums, t=table))
            scratch = await db.fetch(query.format(keys=keys, sums=sums, t=f"scratch_{table}"))
            assert stored, table
            assert [tuple(r) for r in stored] == [tuple(r) for r in scratch], table


async def test_rollups_beside_a_rebuilding_write_equal_rollups_from_scratch(
    db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    """A rebuilding load computes the rollup deltas on its second connection, the triggers
    off: after creates, and after a load that changes, moves and revives incidents, every
    rollup equals the live incidents' from nothing, and the triggers are on again."""
    await reset(db)
    file = generate(tmp_path, 4000)
    await import_file(database_url, file, rebuild_indexes="always")
    await rollups_from_scratch(db)
    # Some incidents deleted (the triggers take those), then a load over 1,500 of the rows:
    # more fatalities, moved half a degree north (other tile and hexagon cells).
    await db.execute(
        "UPDATE incidents SET deleted_at = now(), version = version + 1 WHERE id % 7 = 0"
    )
    second = rewrite(
        file,
        tmp_path / "second.csv",
        1500,
        fatalities=lambda v: str(int(v) + 5),
        latitude=lambda v: str(round(float(v) + 0.5, 4)),
    )
    result = await import_file(database_url, second, rebuild_indexes="always")
    assert result.report.updated == 1500
    await rollups_from_scratch(db)
    enabled = await db.fetch(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = 'incidents'::regclass "
        "AND NOT tgisinternal AND tgenabled = 'D'"
    )
    assert enabled == []


# Cells whose reading is subtle; every one goes through SQL and through Python.
TRICKY = [
    {},
    {"fatalities": " 12 "},
    {"fatalities": "1.0"},
    {"fatalities": "-1"},
    {"fatalities": "1e3"},
    {"fatalities": "٣"},
    {"latitude": "91"},
    {"latitude": "34.5\u00a0"},
    {"latitude": "nan"},
    {"longitude": "+45.2"},
    {"event_date": "2020-02-30"},
    {"event_date": "13 June 2020"},
    {"event_date": "2020-6-3"},
    {"event_date": " 2020-06-13"},
    {"event_type": "battles"},
    {"event_type": "Protests", "sub_event_type": "Attack"},
    {"sub_event_type": ""},
    {"civilian_targeting": "Civilian targeting"},
    {"civilian_targeting": "yes"},
    {"time_precision": "4"},
    {"geo_precision": "2.0"},
    {"tags": "a; b;; c"},
    {"tags": ""},
    {"country_code": "irq"},
    {"country_code": "XXX"},
    {"country": "", "admin1": ""},
    {"notes": "line one\nline two"},
    {"notes": "\u2003padded\u2003"},
    {"actor1": "x" * 300},
    {"interaction": "17"},
    {"inter1": "9"},
    {"external_id": "  spaced  "},
    {"latitude": "", "longitude": ""},
]


def tricky_csv() -> bytes:
    names = [f.name for f in WRITABLE]
    base = {k: str(v) for k, v in incident().items()}
    base["civilian_targeting"] = "true"
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([f.csv_name for f in WRITABLE])
    for n, change in enumerate(TRICKY):
        row = {**base, "external_id": f"T{n}", **change}
        writer.writerow([row.get(name, "") for name in names])
    return out.getvalue().encode()


def tricky_ndjson() -> bytes:
    lines = []
    for n, change in enumerate(TRICKY):
        row: dict[str, Any] = {**incident(), "external_id": f"T{n}", **change}
        lines.append(json.dumps(row))
    # JSON's own types: numbers where text is expected and the reverse, null, nested values.
    for n, change in enumerate(
        [
            {"fatalities": 3.0},
            {"fatalities": True},
            {"fatalities": "3"},
            {"latitude": "34.4"},
            {"tags": ["a", " b "]},
            {"tags": "a; b"},
            {"civilian_targeting": 1},
            {"notes": None},
            {"admin1": {"name": "Diyala"}},
            {"surprise": 1},
            {"event_date": 20200613},
        ]
    ):
        lines.append(json.dumps({**incident(), "external_id": f"J{n}", **change}))
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
async def test_sql_and_python_read_every_cell_alike(database_url: str, fmt: str) -> None:
    """Each row SQL vouches for stages exactly the tuple `IncidentIn` makes of it; each row it
    does not vouch for is one Python refuses or reads differently from SQL's shortcut."""
    body = tricky_csv() if fmt == "csv" else tricky_ndjson()
    conn = await _connect_to(database_url)
    try:
        tables = await work_tables(conn)
        raw = await copy_in(conn, tables, io.BytesIO(body), fmt)
        assert raw is not None
        staged = {
            r["row_no"]: r
            for r in await conn.fetch(raw.stage_select())  # every row, `bad` flag included
        }
        records = await raw.records(conn, sorted(staged))
        await tables.drop(conn)
    finally:
        await conn.close()
    assert len(records) == len(staged) == raw.rows
    vouched = 0
    for record in records:
        row = staged[record.row]
        incident_in, problem = validate(record)
        if row["bad"]:
            continue  # Python decides alone: nothing to compare
        vouched += 1
        assert problem is None, (record.data, problem)
        assert incident_in is not None
        expected = stage_tuple(record.row, record.line, incident_in)
        got = tuple(row[c] for c in STAGE_COLUMNS)
        for name, want, have in zip(STAGE_COLUMNS, expected, got, strict=True):
            if name in {"line_no"} and fmt == "csv":
                continue
            if isinstance(want, str) and name in {"tags"}:
                want = json.loads(want)
            assert want == have, (record.data, name, want, have)
    # SQL takes the plain row and the harmless variations (the rest is for Python to judge).
    assert not staged[1]["bad"] and vouched >= 8


# --- crashes and concurrent readers ----------------------------------------------------------


def cli(database_url: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "KEY_PEPPER": PEPPER}
    return subprocess.Popen(
        [sys.executable, "-m", "app.cli", "import", *args, "--quiet"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def rewrite(source: Path, target: Path, rows: int, **changes: Any) -> Path:
    """The first `rows` rows of an ACLED CSV with some columns changed."""
    with source.open(newline="") as f:
        reader = csv.DictReader(f)
        with target.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(reader.fieldnames or []))
            writer.writeheader()
            for n, row in enumerate(reader):
                if n == rows:
                    break
                writer.writerow({k: changes[k](v) if k in changes else v for k, v in row.items()})
    return target


def generate(tmp_path: Path, rows: int, name: str = "acled.csv") -> Path:
    path = tmp_path / name
    subprocess.run(
        [sys.executable, str(ROOT / "bench/generate_acled.py"), "--rows", str(rows), "--out", path],
        check=True,
        capture_output=True,
    )
    return path


async def wait_for(db: asyncpg.Connection, sql: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not await db.fetchval(sql):
        assert time.monotonic() < deadline, f"never true: {sql}"
        await asyncio.sleep(0.05)


async def consistent(db: asyncpg.Connection, rows: int) -> None:
    """The store holds `rows` incidents, each with its revision; the rollup agrees."""
    assert await db.fetchval("SELECT count(*) FROM incidents") == rows
    assert await db.fetchval("SELECT count(*) FROM incident_revisions") == rows
    assert (
        await db.fetchval("SELECT coalesce(sum(incidents), 0) FROM incident_rollup_month") == rows
    )
    await check_history(db)


async def test_sigkill_while_writing_leaves_the_store_as_before(
    db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    await reset(db)
    file = generate(tmp_path, 6000)
    defs = await indexes.definitions(db)
    # Hold the rollup table so the load's write blocks on it after the indexes are dropped
    # (the rollup deltas wait for the table, the upsert may have finished: its transaction is
    # open), then kill the importer there.
    blocker = await _connect_to(database_url)
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("LOCK TABLE incident_rollup_month IN ACCESS EXCLUSIVE MODE")
    proc = cli(database_url, str(file), "--rebuild-indexes", "always")
    try:
        await wait_for(
            db,
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE 'CREATE UNLOGGED TABLE import_load_%_deltas%') AND EXISTS ("
            "SELECT 1 FROM pg_stat_activity WHERE state = 'idle in transaction' "
            "OR query LIKE 'WITH up AS (INSERT INTO incidents%')",
        )
        assert await db.fetchval("SELECT phase FROM import_jobs WHERE status = 'running'") == (
            "loading"
        )
        assert await indexes.missing(db, defs)  # the secondary indexes are gone
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        await tx.rollback()
        await blocker.close()
    # The killed session's statement is cancelled with its connection.
    await wait_for(
        db,
        "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity "
        "WHERE query LIKE 'WITH up AS (INSERT INTO incidents%')",
    )
    await consistent(db, 0)
    # Readers get right answers without the indexes; the same command finishes the job.
    again = cli(database_url, str(file))
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert "6000 inserted" in err
    assert await indexes.missing(db, defs) == []
    await consistent(db, 6000)
    assert await db.fetchval("SELECT count(*) FROM import_jobs WHERE status = 'running'") == 0
    assert (
        await db.fetchval(
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'import\\_load\\_%' "
            "AND NOT relname LIKE 'import\\_load\\_' || pg_backend_pid() || '\\_%'"
        )
        == 0
    )


async def test_sigkill_while_building_indexes_is_resumable(
    db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    await reset(db)
    file = generate(tmp_path, 6000)
    defs = await indexes.definitions(db)
    proc = cli(database_url, str(file), "--rebuild-indexes", "always")
    try:
        await wait_for(db, "SELECT EXISTS (SELECT 1 FROM import_jobs WHERE phase = 'indexing')")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # The rows are in (their transaction committed before the rebuild), answers are right.
    await wait_for(
        db,
        "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE query LIKE 'CREATE INDEX%')",
    )
    await consistent(db, 6000)
    again = cli(database_url, str(file))
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert "6000 inserted" in err  # the job's counts, not a second load
    assert await indexes.missing(db, defs) == []
    await consistent(db, 6000)
    invalid = await db.fetchval(
        "SELECT count(*) FROM pg_index WHERE indrelid = 'incidents'::regclass AND NOT indisvalid"
    )
    assert invalid == 0


async def test_reader_during_a_load_sees_before_or_after(
    client: httpx.AsyncClient, db: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    """A radius count polled while a rebuilding load runs equals the count before the load or
    after it, never one in between; the change feed followed meanwhile and after holds every
    loaded row exactly once."""
    await reset(db)
    first = generate(tmp_path, 3000, "first.csv")
    await import_file(database_url, first, rebuild_indexes="always")
    cursor = await feed_cursor(client)
    # Other external ids: 3000 new rows at the same places.
    second = rewrite(first, tmp_path / "second.csv", 3000, event_id_cnty=lambda v: "N" + v)
    params = {"near": "33.3,44.4", "radius_km": 400, "group_by": "country"}

    async def radius_count() -> int:
        resp = await client.get("/v1/stats", params=params)
        assert resp.status_code == 200, resp.text
        return sum(int(row["incidents"]) for row in resp.json()["items"])

    before = await radius_count()
    assert before > 0
    seen: list[int] = []
    feed: list[dict[str, Any]] = []
    proc = cli(database_url, str(second), "--rebuild-indexes", "always")
    feed_position = cursor
    while proc.poll() is None:
        seen.append(await radius_count())
        resp = await client.get("/v1/changes", params={"cursor": feed_position, "limit": 500})
        page = resp.json()
        feed += page["items"]
        feed_position = page["next_cursor"]
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    after = await radius_count()
    assert after > before
    assert set(seen) <= {before, after}, Counter(seen)
    assert len(seen) > 3  # the reader really ran during the load
    feed += await feed_since(client, feed_position)
    ids = Counter(item["id"] for item in feed)
    assert len(ids) == 3000 and set(ids.values()) == {1}


async def test_reimport_skips_rows_nothing_changed_since(
    client: httpx.AsyncClient,
    writer: dict[str, str],
    db: asyncpg.Connection,
    database_url: str,
    tmp_path: Path,
) -> None:
    """A row an import wrote, and that nobody changed since, is recognised by its digest on the
    next import and not validated again; a row changed through the API in between, and a row
    that appears twice in the file, take the full path."""
    await reset(db)
    file = generate(tmp_path, 2000)
    first = await import_file(database_url, file)
    assert first.report.inserted == 2000
    assert (
        await db.fetchval(
            "SELECT count(*) FROM incidents WHERE source_digest IS NOT NULL AND source_version = 1"
        )
        == 2000
    )
    again = await import_file(database_url, file)
    assert (again.report.unchanged, again.report.inserted, again.report.updated) == (2000, 0, 0)
    assert "skip unchanged (digest)" in again.report.timings
    assert "stage in SQL" in again.report.timings  # of nothing: every row was skipped
    # Change one incident through the API: the next import puts the file's value back.
    target = await db.fetchrow(
        "SELECT id, external_id, fatalities FROM incidents ORDER BY id LIMIT 1"
    )
    resp = await client.patch(
        f"/v1/incidents/{target['id']}", json={"fatalities": 999}, headers=writer
    )
    assert resp.status_code == 200, resp.text
    third = await import_file(database_url, file)
    assert (third.report.updated, third.report.unchanged) == (1, 1999)
    assert (
        await db.fetchval("SELECT fatalities FROM incidents WHERE id = $1", target["id"])
        == target["fatalities"]
    )
    revisions = await db.fetch(
        "SELECT op, changed_fields FROM incident_revisions WHERE incident_id = $1 ORDER BY version",
        target["id"],
    )
    assert [(r["op"], r["changed_fields"]) for r in revisions] == [
        ("create", []),
        ("update", ["fatalities"]),
        ("update", ["fatalities"]),
    ]
    # Written again by an import: skipped once more from now on.
    fourth = await import_file(database_url, file)
    assert fourth.report.unchanged == 2000
    # A file naming one external id twice: neither row is skipped, the later one wins.
    lines = file.read_text().splitlines(keepends=True)
    twice = tmp_path / "twice.csv"
    twice.write_text(lines[0] + lines[1] + lines[2] + lines[1].replace(",1,", ",1,", 1))
    fifth = await import_file(database_url, twice)
    assert fifth.report.unchanged == 3 and fifth.report.inserted == 0
    await check_history(db)
