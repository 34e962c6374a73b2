"""Dashboard rollups: the answers from the rollups equal the answers from the incidents.

Every comparison asks the API once with the rollups and once with them switched off (the
service's own fallback path), on the same data, after creates, updates, soft deletes, bulk
upserts and with and without compaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
from typing import Any

import asyncpg
import httpx
import mapbox_vector_tile
import pytest

from app.search.filters import RawFilter, SearchFilter
from app.stats import service as stats_service
from app.tiles import service as tiles_service
from tests.conftest import insert_incidents
from tests.stats.test_dashboards import tile_for

pytestmark = pytest.mark.usefixtures("gazetteer", "boundaries", "clean_incidents")

HOTSPOTS = [
    (34.35, 45.39, "Diyala", "Khanaqin", "Iraq", "IRQ"),
    (33.31, 44.36, "Baghdad", None, "Iraq", "IRQ"),
    (36.2, 37.15, "Aleppo", "Jebel Saman", "Syria", "SYR"),
    (35.0, 42.0, None, None, None, None),
]


# Valid (event type, sub-event type, disorder type) combinations, some attributes missing.
KINDS = [
    ("Battles", "Armed clash", "Political violence"),
    ("Battles", None, "Political violence"),
    ("Protests", "Peaceful protest", "Demonstrations"),
    ("Protests", "Peaceful protest", None),
    ("Riots", "Mob violence", "Demonstrations"),
    ("Riots", None, None),
]


def random_rows(n: int, seed: int, prefix: str) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows = []
    for k in range(n):
        lat, lon, admin1, admin2, country, code = rng.choice(HOTSPOTS)
        rows.append(
            {
                "latitude": lat + rng.uniform(-0.4, 0.4),
                "longitude": lon + rng.uniform(-0.4, 0.4),
                "admin1": admin1,
                "admin2": admin2,
                "country": country,
                "country_code": code,
                **dict(
                    zip(
                        ("event_type", "sub_event_type", "disorder_type"),
                        rng.choice(KINDS),
                        strict=True,
                    )
                ),
                "fatalities": rng.randint(0, 9),
                "event_date": dt.date(2023, 1, 1) + dt.timedelta(days=rng.randint(0, 600)),
                "external_id": f"{prefix}{k}",
            }
        )
    return rows


def api_body(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the API takes it (the country code is derived from the country)."""
    return {
        k: (v.isoformat() if isinstance(v, dt.date) else v)
        for k, v in row.items()
        if v is not None and k != "country_code"
    }


QUERIES: list[dict[str, str]] = [
    {"group_by": "month", "start": "2023-01-01", "end": "2024-06-30"},
    {"group_by": "month", "start": "2023-03-15", "end": "2024-02-10"},
    {"group_by": "month,admin1", "start": "2023-02-28", "end": "2023-12-01"},
    {"group_by": "year,event_type"},
    {"group_by": "admin1", "admin1": "Diyala,Aleppo"},
    {"group_by": "admin2,sub_event_type", "country": "Iraq"},
    {"group_by": "country", "country": "SYR,IRQ", "event_type": "Battles,Riots"},
    {"group_by": "disorder_type,month", "end": "2023-08-20"},
    {"group_by": "month", "start": "2023-06-03", "end": "2023-06-20"},  # no whole month
    {"group_by": "event_type", "disorder_type": "Political violence", "start": "2023-05-01"},
]


async def both_ways(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, params: dict[str, str]
) -> tuple[Any, Any]:
    with_rollup = await client.get("/v1/stats", params=params)
    assert with_rollup.status_code == 200, with_rollup.text
    with monkeypatch.context() as m:
        m.setattr(stats_service, "rollup_applies", lambda f, dims: False)
        direct = await client.get("/v1/stats", params=params)
    assert direct.status_code == 200, direct.text
    return with_rollup.json()["items"], direct.json()["items"]


async def assert_stats_agree(client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    for params in QUERIES:
        rolled, direct = await both_ways(client, monkeypatch, params)
        assert rolled == direct, params
        assert sum(item["incidents"] for item in direct) > 0, params


def test_rollup_is_used_for_whole_months_only() -> None:
    def sf(**kw: Any) -> SearchFilter:
        return SearchFilter(raw=RawFilter(**kw))

    p = stats_service.Params()
    whole = stats_service._rollup_agg_sql(
        sf(start=dt.date(2020, 1, 1), end=dt.date(2024, 12, 31)), ["month"], p
    )
    assert whole is not None and "incident_rollup_month" in whole
    assert "FROM incidents" not in whole  # whole months: nothing read from the incidents
    edged = stats_service._rollup_agg_sql(
        sf(start=dt.date(2020, 1, 9), end=dt.date(2024, 12, 30)), ["month"], p
    )
    assert edged is not None and edged.count("FROM incidents i") == 2
    assert stats_service._rollup_agg_sql(sf(), ["day"], p) is None
    assert stats_service._rollup_agg_sql(sf(actors=("ISIS",)), ["month"], p) is None
    assert stats_service._rollup_agg_sql(sf(minimums={"fatalities": 1}), ["admin1"], p) is None


async def test_stats_from_rollups_equal_stats_from_incidents(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    writer: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ids = await insert_incidents(db, random_rows(600, 3, "R"))
    await assert_stats_agree(client, monkeypatch)
    # Updates that move incidents between keys, change fatalities, soft-delete some.
    await db.execute(
        "UPDATE incidents SET admin1 = 'Diyala', fatalities = fatalities + 2 WHERE id = ANY($1)",
        ids[:50],
    )
    await db.execute(
        "UPDATE incidents SET event_date = event_date + 45 WHERE id = ANY($1)", ids[50:90]
    )
    await db.execute("UPDATE incidents SET deleted_at = now() WHERE id = ANY($1)", ids[90:140])
    # Through the API: a create, an update, a delete.
    created = await client.post(
        "/v1/incidents", json=api_body(random_rows(1, 9, "API")[0]), headers=writer
    )
    assert created.status_code == 201, created.text
    one = await client.get(f"/v1/incidents/{ids[200]}")
    patched = await client.patch(
        f"/v1/incidents/{ids[200]}",
        json={
            "fatalities": 40,
            "event_type": "Protests",
            "sub_event_type": "Peaceful protest",
            "disorder_type": "Demonstrations",
        },
        headers={**writer, "If-Match": one.headers["etag"]},
    )
    assert patched.status_code == 200, patched.text
    gone = await client.get(f"/v1/incidents/{ids[201]}")
    deleted = await client.delete(
        f"/v1/incidents/{ids[201]}", headers={**writer, "If-Match": gone.headers["etag"]}
    )
    assert deleted.status_code in (200, 204), deleted.text
    pending = await db.fetchval("SELECT count(*) FROM incident_rollup_month WHERE NOT merged")
    assert pending > 0
    await assert_stats_agree(client, monkeypatch)
    # Compaction folds the deltas into one row per key and changes no answer.
    await db.fetchval("SELECT incident_rollups_compact()")
    assert await db.fetchval("SELECT count(*) FROM incident_rollup_month WHERE NOT merged") == 0
    duplicates = await db.fetchval(
        "SELECT count(*) FROM (SELECT 1 FROM incident_rollup_month GROUP BY month, country, "
        "country_code, admin1, admin2, event_type, sub_event_type, disorder_type "
        "HAVING count(*) > 1) d"
    )
    assert duplicates == 0
    await assert_stats_agree(client, monkeypatch)


async def test_rollups_stay_exact_under_concurrent_bulk_loads_and_compaction(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    writer: dict[str, str],
    database_url: str,
) -> None:
    """Six overlapping bulk upserts race four compactions; the sums equal the live incidents."""

    def body(seed: int) -> str:
        rows = random_rows(300, seed, "B")  # the same external_ids in every file: upserts
        return "\n".join(json.dumps(api_body(r)) for r in rows)

    async def compact_loop() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            for _ in range(4):
                await conn.fetchval("SELECT incident_rollups_compact()")
                await asyncio.sleep(0.05)
        finally:
            await conn.close()

    headers = {**writer, "Content-Type": "application/x-ndjson"}
    results = await asyncio.gather(
        *[client.post("/v1/incidents/bulk", content=body(s), headers=headers) for s in range(6)],
        compact_loop(),
    )
    for resp in results[:6]:
        assert resp.status_code == 200, resp.text
    truth = await db.fetch(
        "SELECT date_trunc('month', event_date)::date AS month, coalesce(admin1, '') AS admin1, "
        "event_type, count(*) AS n, sum(fatalities) AS f FROM incidents "
        "WHERE deleted_at IS NULL GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    rolled = await db.fetch(
        "SELECT month, admin1, event_type, sum(incidents) AS n, sum(fatalities) AS f "
        "FROM incident_rollup_month GROUP BY 1, 2, 3 HAVING sum(incidents) <> 0 "
        "OR sum(fatalities) <> 0 ORDER BY 1, 2, 3"
    )
    assert [tuple(r) for r in rolled] == [tuple(r) for r in truth]
    cells = await db.fetchrow(
        "SELECT sum(incidents) AS n, sum(fatalities) AS f FROM incident_tile_cells"
    )
    live = await db.fetchrow(
        "SELECT count(*) AS n, sum(fatalities) AS f FROM incidents WHERE deleted_at IS NULL"
    )
    assert (cells["n"], cells["f"]) == (live["n"], live["f"])


def features(data: bytes) -> list[tuple[Any, ...]]:
    layer = mapbox_vector_tile.decode(data).get("incidents", {"features": []})
    return sorted(
        (
            tuple(f["geometry"]["coordinates"]),
            f["properties"]["count"],
            f["properties"]["fatalities"],
        )
        for f in layer["features"]
    )


@pytest.mark.parametrize("zoom", [3, 5, 7, 8])
async def test_cluster_tiles_from_rollup_equal_tiles_from_incidents(
    client: httpx.AsyncClient, db: asyncpg.Connection, zoom: int
) -> None:
    ids = await insert_incidents(db, random_rows(800, 5, "T"))
    await db.execute("UPDATE incidents SET deleted_at = now() WHERE id = ANY($1)", ids[:40])
    await db.execute(
        "UPDATE incidents SET geom = ST_Translate(geom, 0.05, 0.05) WHERE id = ANY($1)",
        ids[40:80],
    )
    # Small moves, mostly within one zoom-14 cell: the count stays, the mean position moves.
    await db.execute(
        "UPDATE incidents SET geom = ST_Translate(geom, 0.01, 0.0) WHERE id = ANY($1)",
        ids[80:200],
    )
    for lat, lon, *_ in HOTSPOTS:
        x, y = tile_for(lat, lon, zoom)
        resp = await client.get(f"/v1/tiles/{zoom}/{x}/{y}.mvt")
        assert resp.status_code == 200
        sql, values = tiles_service.tile_query(SearchFilter(raw=RawFilter()), zoom, x, y)
        assert "incident_tile_cells" in sql
        # The same tile computed from the incidents (a filter that keeps every row).
        base = SearchFilter(raw=RawFilter(start=dt.date(1900, 1, 1)))
        sql, values = tiles_service.tile_query(base, zoom, x, y)
        assert "incident_tile_cells" not in sql
        direct = bytes(await db.fetchval(sql, *values) or b"")
        rolled = features(resp.content)
        assert rolled == features(direct)
        assert sum(count for _, count, _ in rolled) > 0


GRID_CASES: list[dict[str, Any]] = [
    {"cell_km": 25, "bbox": (38.5, 29, 48.5, 37.5), "start": "2023-01-01", "end": "2023-12-31"},
    {"cell_km": 25, "bbox": (44.0, 33.0, 46.0, 35.5), "start": "2023-02-11", "end": "2024-03-04"},
    {"cell_km": 10, "bbox": (44.9, 33.9, 45.9, 34.8)},
    {"cell_km": 25, "bbox": (45.0, 34.0, 45.3, 34.3), "start": "2023-01-01"},  # no whole cell
    {"cell_km": 50, "end": "2024-01-31"},
    {"cell_km": 100, "bbox": (34.0, 29.0, 48.0, 38.5), "start": "2023-04-01"},
]


async def grid_both_ways(db: asyncpg.Connection, case: dict[str, Any]) -> tuple[dict, dict]:
    from app.core.geo import Envelope
    from app.stats import grid

    raw = RawFilter(
        bbox=case.get("bbox"),
        start=dt.date.fromisoformat(case["start"]) if "start" in case else None,
        end=dt.date.fromisoformat(case["end"]) if "end" in case else None,
    )
    f = SearchFilter(raw=raw, envelopes=[Envelope(*case["bbox"])] if "bbox" in case else [])
    edge_m = case["cell_km"] * 1000
    sql, values = grid.grid_query(f, edge_m)
    assert "incident_grid_cells" in sql
    rolled = await db.fetchrow(sql, *values)
    sql, values = grid.grid_query(f, edge_m, rollup=False)
    assert "incident_grid_cells" not in sql
    direct = await db.fetchrow(sql, *values)
    return (
        {"features": json.loads(rolled["features"]), "numberReturned": rolled["cells"]},
        {"features": json.loads(direct["features"]), "numberReturned": direct["cells"]},
    )


def cells(collection: dict) -> dict[str, tuple]:
    return {
        f["id"]: (f["properties"]["incidents"], f["properties"]["fatalities"], f["geometry"])
        for f in collection["features"]
    }


async def test_grid_from_rollup_equals_grid_from_incidents(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    ids = await insert_incidents(db, random_rows(1500, 8, "G"))
    await db.execute("UPDATE incidents SET deleted_at = now() WHERE id = ANY($1)", ids[:60])
    await db.execute(
        "UPDATE incidents SET event_date = event_date + 20, fatalities = fatalities + 1 "
        "WHERE id = ANY($1)",
        ids[60:120],
    )
    for compacted in (False, True):
        if compacted:
            await db.fetchval("SELECT incident_grid_cells_compact()")
            assert not await db.fetchval(
                "SELECT count(*) FROM incident_grid_cells WHERE NOT merged"
            )
        for case in GRID_CASES:
            rolled, direct = await grid_both_ways(db, case)
            assert cells(rolled) == cells(direct), case
            assert rolled["numberReturned"] == direct["numberReturned"] > 0, case
    # Through the API (the rollup path), sums equal the live incidents in the bbox.
    resp = await client.get(
        "/v1/stats/grid",
        params={"cell_km": 25, "bbox": "38.5,29,48.5,37.5", "start": "2023-01-01"},
    )
    assert resp.status_code == 200
    total = sum(f["properties"]["incidents"] for f in resp.json()["features"])
    expected = await db.fetchval(
        "SELECT count(*) FROM incidents WHERE deleted_at IS NULL AND event_date >= '2023-01-01' "
        "AND geom && ST_MakeEnvelope(38.5, 29, 48.5, 37.5, 4326)"
    )
    assert total == expected


async def test_grid_near_the_antimeridian_counts_from_the_incidents(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    from app.core.geo import Envelope
    from app.stats import grid

    world = SearchFilter(
        raw=RawFilter(bbox=(-180, -90, 180, 90)), envelopes=[Envelope(-180, -90, 180, 90)]
    )
    sql, _ = grid.grid_query(world, 100_000)
    assert "incident_grid_cells" not in sql
    await insert_incidents(
        db,
        [
            {
                "latitude": -17.0,
                "longitude": 179.5,
                "country": "Fiji",
                "country_code": "FJI",
                "external_id": "FIJI",
            }
        ],
    )
    resp = await client.get("/v1/stats/grid", params={"cell_km": 100, "bbox": "-180,-90,180,90"})
    assert resp.status_code == 200
    assert sum(f["properties"]["incidents"] for f in resp.json()["features"]) == 1


async def test_stats_edge_cases_match_the_incidents(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    writer: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await insert_incidents(db, random_rows(200, 4, "E"))
    # An empty name is no name: stored as null, grouped with the other missing ones.
    body = {**api_body(random_rows(1, 12, "BLANK")[0]), "admin1": "", "admin2": " "}
    created = await client.post("/v1/incidents", json=body, headers=writer)
    assert created.status_code == 201, created.text
    assert created.json()["admin2"] is None
    # A filter value that normalises to nothing matches nothing, on both paths.
    for params in (
        {"group_by": "month", "admin1": "\u0301", "start": "2023-01-01"},
        {"group_by": "admin1", "country": "\u0301"},
    ):
        rolled, direct = await both_ways(client, monkeypatch, params)
        assert rolled == direct, params
    # Dates at the end of the calendar: answered, not a 500.
    for params in (
        {"group_by": "event_type", "end": "9999-12-31"},
        {"group_by": "event_type", "start": "9999-12-15"},
    ):
        rolled, direct = await both_ways(client, monkeypatch, params)
        assert rolled == direct, params
    await assert_stats_agree(client, monkeypatch)
