"""Keyset pages under concurrent writes, cursors, and the four output formats."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import asyncpg
import httpx
import pytest

from tests.conftest import insert_incidents

pytestmark = pytest.mark.usefixtures("gazetteer", "clean_incidents")


def rows(n: int, prefix: str = "P", day0: dt.date = dt.date(2023, 1, 1)) -> list[dict]:
    # Several incidents share a date, so the id tie-breaker matters.
    return [
        {
            "latitude": 34 + n_ / 1000,
            "longitude": 45,
            "external_id": f"{prefix}{n_}",
            "event_date": day0 + dt.timedelta(days=n_ // 3),
        }
        for n_ in range(n)
    ]


async def test_cursor_walks_every_incident_once_while_others_insert(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await insert_incidents(db, rows(50))
    seen: list[str] = []
    params: dict = {"limit": 7, "bbox": "44,33,46,35"}
    page_no = 0
    while True:
        resp = await client.get("/v1/incidents", params=params)
        assert resp.status_code == 200
        body = resp.json()
        seen += [i["external_id"] for i in body["items"]]
        # Someone inserts newer and older incidents between our pages.
        await insert_incidents(db, rows(2, prefix=f"new{page_no}-", day0=dt.date(2030, 1, 1)))
        page_no += 1
        if body["next_cursor"] is None:
            assert "link" not in resp.headers
            break
        assert resp.headers["link"].endswith('rel="next"')
        params = {**params, "cursor": body["next_cursor"]}
    original = [s for s in seen if s.startswith("P")]
    assert sorted(original) == sorted(f"P{n}" for n in range(50))
    assert len(seen) == len(set(seen))


async def test_tampered_or_foreign_cursor_is_400(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await insert_incidents(db, rows(5))
    first = (await client.get("/v1/incidents", params={"limit": 2})).json()
    cursor = first["next_cursor"]
    tampered = cursor[:-3] + ("AAA" if not cursor.endswith("AAA") else "BBB")
    for bad in (tampered, "not-a-cursor", "e30"):
        resp = await client.get("/v1/incidents", params={"limit": 2, "cursor": bad})
        assert resp.status_code == 400, bad
        assert resp.json()["errors"][0]["field"] == "cursor"
    other = await client.get(
        "/v1/incidents", params={"limit": 2, "cursor": cursor, "min_fatalities": 1}
    )
    assert other.status_code == 400


async def test_geojson(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    await insert_incidents(
        db,
        [
            {"latitude": 34.348, "longitude": 45.391, "external_id": "g1"},
            {"latitude": 34.4, "longitude": 45.4, "external_id": "g2"},
        ],
    )
    resp = await client.get(
        "/v1/incidents", params={"format": "geojson", "limit": 1, "near": "Khanaqin"}
    )
    assert resp.headers["content-type"] == "application/geo+json"
    fc = resp.json()
    assert fc["type"] == "FeatureCollection" and fc["numberReturned"] == 1
    feature = fc["features"][0]
    assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Point"
    lon, lat = feature["geometry"]["coordinates"]
    assert (lat, lon) == (feature["properties"]["latitude"], feature["properties"]["longitude"])
    assert 45 < lon < 46 and 34 < lat < 35  # [lon, lat] order (RFC 7946)
    assert "distance_km" in feature["properties"]
    rels = {link["rel"]: link["href"] for link in fc["links"]}
    assert "next" in rels and "cursor=" in rels["next"]
    by_accept = await client.get("/v1/incidents", headers={"Accept": "application/geo+json"})
    assert by_accept.json()["type"] == "FeatureCollection"


async def test_csv_has_acled_columns_first(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await insert_incidents(
        db,
        [
            {
                "latitude": 34.4,
                "longitude": 45.4,
                "external_id": "c1",
                "notes": 'Line one, "quoted"\nline two',
                "actor1": "IS",
            }
        ],
    )
    resp = await client.get("/v1/incidents", params={"format": "csv"})
    assert resp.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(resp.text)))
    header = resp.text.split("\n", 1)[0].split(",")
    assert header[:8] == [
        "event_id_cnty",
        "event_date",
        "year",
        "time_precision",
        "disorder_type",
        "event_type",
        "sub_event_type",
        "actor1",
    ]
    assert table[0]["event_id_cnty"] == "c1"
    assert table[0]["notes"] == 'Line one, "quoted"\nline two'
    assert float(table[0]["latitude"]) == 34.4
    by_accept = await client.get("/v1/incidents", headers={"Accept": "text/csv"})
    assert by_accept.text.startswith("event_id_cnty,")


async def test_ndjson_and_csv_stream_everything_without_limit(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await db.execute(
        """
        INSERT INTO incidents (event_date, event_type, geom, external_id)
        SELECT date '2020-01-01' + (n % 1000), 'Battles',
               ST_SetSRID(ST_MakePoint(45 + n / 100000.0, 34), 4326), 'S' || n
        FROM generate_series(1, 4500) n
        """
    )
    resp = await client.get("/v1/incidents", params={"format": "ndjson"})
    lines = resp.text.strip().split("\n")
    assert len(lines) == 4500
    assert len({json.loads(line)["id"] for line in lines}) == 4500
    resp = await client.get("/v1/incidents", headers={"Accept": "text/csv"})
    assert len(list(csv.DictReader(io.StringIO(resp.text)))) == 4500
    paged = await client.get("/v1/incidents", params={"format": "ndjson", "limit": 10})
    assert len(paged.text.strip().split("\n")) == 10 and "cursor=" in paged.headers["link"]


async def test_limit_bounds(client: httpx.AsyncClient) -> None:
    for bad in (0, 10001, -1):
        resp = await client.get("/v1/incidents", params={"limit": bad})
        assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "limit"
