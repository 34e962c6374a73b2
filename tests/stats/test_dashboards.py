"""Stats, hexagon grid, vector tiles and TileJSON: sums match raw counts for the same filters."""

from __future__ import annotations

import datetime as dt
import random

import asyncpg
import httpx
import mapbox_vector_tile
import pytest

from tests.conftest import insert_incidents

pytestmark = pytest.mark.usefixtures("gazetteer", "boundaries", "clean_incidents")


@pytest.fixture
async def sample(db: asyncpg.Connection) -> list[dict]:
    rng = random.Random(11)
    rows = []
    for n in range(400):
        hotspot = rng.choice(
            [(34.35, 45.39, "Diyala"), (33.31, 44.36, "Baghdad"), (36.2, 37.15, "Aleppo")]
        )
        rows.append(
            {
                "latitude": hotspot[0] + rng.uniform(-0.3, 0.3),
                "longitude": hotspot[1] + rng.uniform(-0.3, 0.3),
                "admin1": hotspot[2],
                "country": "Syria" if hotspot[2] == "Aleppo" else "Iraq",
                "country_code": "SYR" if hotspot[2] == "Aleppo" else "IRQ",
                "event_type": rng.choice(["Battles", "Protests", "Violence against civilians"]),
                "actor1": rng.choice(["Islamic State (Iraq)", "PMF unit", None]),
                "actor2": rng.choice(["Civilians (Iraq)", "Islamic State (Iraq)", None]),
                "fatalities": rng.randint(0, 5),
                "event_date": dt.date(2023, 1, 1) + dt.timedelta(days=rng.randint(0, 700)),
                "external_id": f"S{n}",
            }
        )
    await insert_incidents(db, rows)
    return rows


async def raw_totals(db: asyncpg.Connection, where: str = "true", *args: object) -> tuple:
    row = await db.fetchrow(
        f"SELECT count(*), coalesce(sum(fatalities), 0) FROM incidents WHERE deleted_at IS NULL "
        f"AND {where}",
        *args,
    )
    return int(row[0]), int(row[1])


async def test_stats_sums_match_raw_counts(
    client: httpx.AsyncClient, db: asyncpg.Connection, sample: list[dict]
) -> None:
    for group_by in ("event_type", "admin1", "year", "month", "event_type,month", "country,year"):
        resp = await client.get("/v1/stats", params={"group_by": group_by})
        assert resp.status_code == 200, resp.text
        items = resp.json()["items"]
        assert sum(i["incidents"] for i in items) == len(sample), group_by
        assert sum(i["fatalities"] for i in items) == sum(r["fatalities"] for r in sample)
    filtered = (
        await client.get(
            "/v1/stats",
            params={
                "group_by": "event_type",
                "admin1": "Diyala",
                "start": "2023-06-01",
                "end": "2024-03-31",
            },
        )
    ).json()["items"]
    expected = await raw_totals(
        db,
        "admin1 = 'Diyala' AND event_date BETWEEN $1 AND $2",
        dt.date(2023, 6, 1),
        dt.date(2024, 3, 31),
    )
    assert (
        sum(i["incidents"] for i in filtered),
        sum(i["fatalities"] for i in filtered),
    ) == expected
    near = (
        await client.get(
            "/v1/stats", params={"group_by": "year", "near": "Khanaqin", "radius_km": 30}
        )
    ).json()
    assert near["meta"]["resolved_place"]["geonameid"] == 94591
    listed = (
        await client.get(
            "/v1/incidents", params={"near": "Khanaqin", "radius_km": 30, "limit": 10000}
        )
    ).json()["items"]
    assert sum(i["incidents"] for i in near["items"]) == len(listed)


async def test_stats_sorting_zero_fill_and_csv(
    client: httpx.AsyncClient, sample: list[dict]
) -> None:
    months = (
        await client.get(
            "/v1/stats", params={"group_by": "month", "start": "2022-11-01", "end": "2023-02-15"}
        )
    ).json()["items"]
    assert [m["month"] for m in months] == ["2022-11", "2022-12", "2023-01", "2023-02"]
    assert months[0]["incidents"] == 0 and months[1]["incidents"] == 0
    types = (await client.get("/v1/stats", params={"group_by": "event_type"})).json()["items"]
    assert [t["incidents"] for t in types] == sorted((t["incidents"] for t in types), reverse=True)
    both = (
        await client.get(
            "/v1/stats",
            params={"group_by": "event_type,year", "start": "2022-01-01", "end": "2024-12-31"},
        )
    ).json()
    assert len(both["items"]) == 3 * 3  # every type for every year, zero-filled
    csv_text = (await client.get("/v1/stats", params={"group_by": "year", "format": "csv"})).text
    assert csv_text.splitlines()[0] == "year,incidents,fatalities"


async def test_stats_by_actor_counts_each_distinct_actor_once(
    client: httpx.AsyncClient, db: asyncpg.Connection, sample: list[dict]
) -> None:
    items = (await client.get("/v1/stats", params={"group_by": "actor"})).json()["items"]
    isis = next(i for i in items if i["actor"] == "Islamic State (Iraq)")
    expected = sum(1 for r in sample if "Islamic State (Iraq)" in (r["actor1"], r["actor2"]))
    assert isis["incidents"] == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "planet"}, "group_by"),
        ({"group_by": "month,year"}, "group_by"),
        ({"group_by": "a,b,c"}, "group_by"),
        ({}, "group_by"),
        ({"group_by": "day", "start": "1900-01-01", "end": "2100-01-01"}, "group_by"),
    ],
)
async def test_stats_bad_input(client: httpx.AsyncClient, params: dict, field: str) -> None:
    resp = await client.get("/v1/stats", params=params)
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == field


async def test_grid_sums_match_and_cells_are_equal_area(
    client: httpx.AsyncClient, db: asyncpg.Connection, sample: list[dict]
) -> None:
    resp = await client.get("/v1/stats/grid", params={"cell_km": 25, "bbox": "35,29,50,38"})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/geo+json"
    fc = resp.json()
    assert fc["type"] == "FeatureCollection" and fc["numberReturned"] == len(fc["features"])
    assert sum(f["properties"]["incidents"] for f in fc["features"]) == len(sample)
    assert sum(f["properties"]["fatalities"] for f in fc["features"]) == sum(
        r["fatalities"] for r in sample
    )
    ids = [f["id"] for f in fc["features"]]
    areas = [
        await db.fetchval(
            "SELECT ST_Area(ST_GeomFromGeoJSON($1)::geography) / 1e6",
            str(f["geometry"]).replace("'", '"'),
        )
        for f in fc["features"][:5]
    ]
    expected = fc["meta"]["cell_area_km2"]
    assert all(abs(a - expected) / expected < 0.02 for a in areas), (areas, expected)
    assert len(ids) == len(set(ids))
    # Each incident falls inside the hexagon that counts it.
    inside = await db.fetchval(
        "SELECT count(*) FROM incidents i, json_array_elements($1::json) f "
        "WHERE ST_Intersects(i.geom, ST_SetSRID(ST_GeomFromGeoJSON(f->>'geometry'), 4326))",
        resp.text and __import__("json").dumps(fc["features"]),
    )
    assert inside >= len(sample) * 0.98  # shared edges aside


async def test_grid_is_bounded_by_the_cells_that_hold_incidents(
    client: httpx.AsyncClient, db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.stats import grid

    await insert_incidents(
        db,
        [
            {"latitude": 33.75 + k * 0.2, "longitude": 44.6 + k * 0.25, "admin1": "Diyala"}
            for k in range(5)
        ],
    )
    # No bbox: small hexagons over the whole world are fine when few hold incidents.
    for params in ({"cell_km": 10, "admin1": "Diyala"}, {"cell_km": 1}):
        resp = await client.get("/v1/stats/grid", params=params)
        assert resp.status_code == 200, (params, resp.text)
        assert resp.json()["numberReturned"] >= 1
    diyala = await client.get("/v1/stats/grid", params={"cell_km": 10, "admin1": "Diyala"})
    assert sum(f["properties"]["incidents"] for f in diyala.json()["features"]) >= 5
    # More non-empty hexagons than the limit: a 422 naming cell_km, nothing built.
    monkeypatch.setattr(grid, "MAX_CELLS", 2)
    resp = await client.get("/v1/stats/grid", params={"cell_km": 1, "admin1": "Diyala"})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "cell_km"
    assert (await client.get("/v1/stats/grid", params={"cell_km": 0})).status_code == 422


def tile_for(lat: float, lon: float, z: int) -> tuple[int, int]:
    import math

    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


async def test_tiles_decode_with_expected_features(
    client: httpx.AsyncClient, db: asyncpg.Connection, sample: list[dict]
) -> None:
    await insert_incidents(
        db,
        [
            {
                "latitude": 34.3482,
                "longitude": 45.3907,
                "external_id": "TILE",
                "event_type": "Battles",
                "fatalities": 3,
                "event_date": dt.date(2024, 5, 1),
            }
        ],
    )
    x, y = tile_for(34.3482, 45.3907, 14)
    resp = await client.get(f"/v1/tiles/14/{x}/{y}.mvt")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    layer = mapbox_vector_tile.decode(resp.content)["incidents"]
    props = [f["properties"] for f in layer["features"]]
    assert {"id", "event_date", "event_type", "fatalities"} <= props[0].keys()
    tile_incident = next(
        p for p in props if p["event_date"] == "2024-05-01" and p["fatalities"] == 3
    )
    assert tile_incident["event_type"] == "Battles"
    # Low zoom: clusters with counts that add up to what the tile covers.
    x6, y6 = tile_for(34.35, 45.39, 6)
    low = await client.get(f"/v1/tiles/6/{x6}/{y6}.mvt")
    clusters = mapbox_vector_tile.decode(low.content)["incidents"]["features"]
    assert all(c["properties"]["cluster"] for c in clusters)
    covered = await db.fetchval(
        "SELECT count(*) FROM incidents WHERE geom && ST_Transform(ST_TileEnvelope(6, $1, $2), "
        "4326)",
        x6,
        y6,
    )
    assert sum(c["properties"]["count"] for c in clusters) == covered
    filtered = await client.get(f"/v1/tiles/6/{x6}/{y6}.mvt", params={"event_type": "Battles"})
    battle_count = sum(
        c["properties"]["count"]
        for c in mapbox_vector_tile.decode(filtered.content)["incidents"]["features"]
    )
    assert 0 < battle_count < covered


async def test_tile_caching_headers(
    client: httpx.AsyncClient, writer: dict[str, str], sample: list[dict]
) -> None:
    x, y = tile_for(34.35, 45.39, 8)
    first = await client.get(f"/v1/tiles/8/{x}/{y}.mvt")
    assert "max-age" in first.headers["cache-control"] and first.headers["etag"]
    again = await client.get(
        f"/v1/tiles/8/{x}/{y}.mvt", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    from tests.conftest import incident

    await client.post("/v1/incidents", json=incident(), headers=writer)
    changed = await client.get(
        f"/v1/tiles/8/{x}/{y}.mvt", headers={"If-None-Match": first.headers["etag"]}
    )
    assert changed.status_code == 200 and changed.headers["etag"] != first.headers["etag"]
    bad = await client.get("/v1/tiles/3/8/1.mvt")
    assert bad.status_code == 422


async def test_tilejson(client: httpx.AsyncClient) -> None:
    doc = (await client.get("/v1/tiles.json", params={"event_type": "Battles"})).json()
    assert doc["tilejson"] == "3.0.0"
    assert doc["tiles"][0].endswith("/v1/tiles/{z}/{x}/{y}.mvt?event_type=Battles")
    assert doc["vector_layers"][0]["id"] == "incidents"
    assert len(doc["bounds"]) == 4 and len(doc["center"]) == 3
