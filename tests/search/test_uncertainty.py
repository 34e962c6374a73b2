"""Location uncertainty: `uncertainty_km` and `match=point|certain|possible`, checked against
distances computed independently (geographiclib) on incidents of mixed precision."""

from __future__ import annotations

import json
import random
from typing import Any

import asyncpg
import httpx
import pytest
from geographiclib.geodesic import Geodesic

from app.core.config import DEFAULT_UNCERTAINTY_KM
from tests.conftest import incident

pytestmark = pytest.mark.usefixtures("gazetteer", "clean_incidents")

CENTER = (34.3482, 45.39065)
RADIUS_KM = 25.0


def _spread(seed: int = 3) -> list[dict[str, Any]]:
    """Incidents 1..420 km from CENTER: geo_precision 1, 2, 3 in turn, some with their own
    uncertainty (0, small, and 300 km: more than any default, 200 km away)."""
    rng = random.Random(seed)
    rows = []
    distances = [1, 3, 8, 14, 20, 23, 24.3, 26, 27.5, 31, 36, 48, 58, 70, 74, 90, 140, 200, 420]
    for n, d in enumerate(distances):
        g = Geodesic.WGS84.Direct(*CENTER, rng.uniform(0, 360), d * 1000)
        row = incident(
            external_id=f"U{n:02d}",
            latitude=g["lat2"],
            longitude=g["lon2"],
            geo_precision=1 + n % 3,
        )
        rows.append(row)
    own = {"U02": 0.0, "U07": 2.5, "U17": 300.0, "U18": 10.0}
    for row in rows:
        if row["external_id"] in own:
            row["uncertainty_km"] = own[row["external_id"]]
    return rows


def _expected(rows: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """external_id -> (geodesic distance km, uncertainty km)."""
    out = {}
    for row in rows:
        d = Geodesic.WGS84.Inverse(*CENTER, row["latitude"], row["longitude"])["s12"] / 1000
        u = row.get("uncertainty_km", DEFAULT_UNCERTAINTY_KM[row["geo_precision"]])
        out[str(row["external_id"])] = (d, u)
    return out


RULES = {
    "point": lambda d, u: d <= RADIUS_KM,
    "certain": lambda d, u: d + u <= RADIUS_KM,
    "possible": lambda d, u: d - u <= RADIUS_KM,
}


async def _load(client: httpx.AsyncClient, writer: dict[str, str]) -> list[dict[str, Any]]:
    rows = _spread()
    # Half through the bulk path (SQL staging), half one by one.
    ndjson = "".join(json.dumps(r) + "\n" for r in rows[::2])
    resp = await client.post(
        "/v1/incidents/bulk",
        content=ndjson,
        headers={**writer, "Content-Type": "application/x-ndjson"},
    )
    assert resp.status_code == 200 and resp.json()["inserted"] == len(rows[::2]), resp.text
    for row in rows[1::2]:
        resp = await client.post("/v1/incidents", json=row, headers=writer)
        assert resp.status_code == 201, resp.text
    return rows


async def test_match_against_geodesic_distances(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    rows = await _load(client, writer)
    truth = _expected(rows)
    for ext, (d, u) in truth.items():  # nothing sits on an edge the float could tip over
        assert min(abs(d - RADIUS_KM), abs(d + u - RADIUS_KM), abs(d - u - RADIUS_KM)) > 0.05, ext
    near = f"{CENTER[0]},{CENTER[1]}"
    for match, rule in RULES.items():
        want = {ext for ext, (d, u) in truth.items() if rule(d, u)}
        resp = await client.get(
            "/v1/incidents",
            params={"near": near, "radius_km": RADIUS_KM, "match": match, "limit": 1000},
        )
        assert resp.status_code == 200, resp.text
        items = resp.json()["items"]
        assert {i["external_id"] for i in items} == want, match
        for item in items:
            d, u = truth[item["external_id"]]
            assert abs(item["distance_km"] - d) <= max(d * 0.001, 0.0005), item
            assert item["uncertainty_km"] == pytest.approx(u), item
        if match != "point":
            assert resp.json()["meta"]["filters"]["match"] == match
        # Stats count the same incidents; the grid too; the ACLED API and OGC API agree.
        stats = await client.get(
            "/v1/stats",
            params={"near": near, "radius_km": RADIUS_KM, "match": match, "group_by": "year"},
        )
        assert sum(r["incidents"] for r in stats.json()["items"]) == len(want), stats.text
        grid = await client.get(
            "/v1/stats/grid",
            params={"near": near, "radius_km": RADIUS_KM, "match": match, "cell_km": 50},
        )
        assert sum(c["properties"]["incidents"] for c in grid.json()["features"]) == len(want)
        ogc = await client.get(
            "/ogc/collections/incidents/items",
            params={"near": near, "radius_km": RADIUS_KM, "match": match, "limit": 1000},
        )
        assert {f["properties"]["external_id"] for f in ogc.json()["features"]} == want
        acled = await client.get(
            "/api/acled/read",
            params={"near": near, "radius_km": RADIUS_KM, "match": match, "limit": 1000},
        )
        assert {r["event_id_cnty"] for r in acled.json()["data"]} == want


async def test_defaults_follow_the_precision_and_the_stored_value_wins(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    resp = await client.post("/v1/incidents", json=incident(geo_precision=2), headers=writer)
    assert resp.status_code == 201
    body = resp.json()
    assert body["uncertainty_km"] == DEFAULT_UNCERTAINTY_KM[2]
    path = f"/v1/incidents/{body['id']}"
    # A default stays a default: a new precision brings its own.
    resp = await client.patch(path, json={"geo_precision": 3}, headers=writer)
    assert resp.json()["uncertainty_km"] == DEFAULT_UNCERTAINTY_KM[3]
    resp = await client.patch(path, json={"notes": "edited"}, headers=writer)
    assert resp.json()["uncertainty_km"] == DEFAULT_UNCERTAINTY_KM[3]
    # Given, it stays whatever the precision; null gives the default back.
    resp = await client.patch(path, json={"uncertainty_km": 4.5}, headers=writer)
    assert resp.json()["uncertainty_km"] == 4.5
    resp = await client.patch(path, json={"geo_precision": 1}, headers=writer)
    assert resp.json()["uncertainty_km"] == 4.5
    resp = await client.patch(path, json={"uncertainty_km": None}, headers=writer)
    assert resp.json()["uncertainty_km"] == DEFAULT_UNCERTAINTY_KM[1]
    # No precision, no value: 0 (or the default of the precision the place fill gave).
    resp = await client.post(
        "/v1/incidents", json=incident(external_id="np", geo_precision=None), headers=writer
    )
    doc = resp.json()  # (the place fill may have given it a precision)
    precision = doc["geo_precision"]
    assert doc["uncertainty_km"] == (DEFAULT_UNCERTAINTY_KM[precision] if precision else 0.0)


async def test_bad_uncertainty_and_match_are_refused(
    client: httpx.AsyncClient, writer: dict[str, str], db: asyncpg.Connection
) -> None:
    resp = await client.post("/v1/incidents", json=incident(uncertainty_km=-1), headers=writer)
    assert resp.status_code == 422 and "uncertainty_km" in resp.text
    bulk = await client.post(
        "/v1/incidents/bulk",
        content=json.dumps(incident(external_id="neg", uncertainty_km=-3)) + "\n",
        headers={**writer, "Content-Type": "application/x-ndjson"},
    )
    # A bulk load reports the row and its field (atomic=false: the other rows would load).
    assert bulk.status_code == 200, bulk.text
    assert bulk.json()["failed"] == 1
    assert bulk.json()["errors"][0]["errors"][0]["field"] == "uncertainty_km"
    assert await db.fetchval("SELECT count(*) FROM incidents WHERE external_id = 'neg'") == 0
    for params in (
        {"match": "possible"},  # no near
        {"near": "Khanaqin", "match": "maybe"},
        {"near": "Khanaqin", "match": "certain", "sort": "distance"},  # nearest-k, no circle
    ):
        resp = await client.get("/v1/incidents", params=params)
        assert resp.status_code == 422 and "match" in resp.text, (params, resp.text)
    stream = await client.get("/v1/stream", params={"near": "Khanaqin", "match": "possible"})
    assert stream.status_code == 422 and "match" in stream.text


async def test_possible_reads_indexes_not_the_table(db: asyncpg.Connection) -> None:
    """`match=possible` grows the circle by the largest default and adds the few incidents
    with a larger uncertainty of their own, both from indexes."""
    from app.search.filters import Match, OutputFormat, RawFilter, Sort
    from app.search.resolve import resolve_filter
    from app.search.service import build_query

    await db.execute(
        """
        INSERT INTO incidents (event_date, event_type, fatalities, geo_precision,
                               uncertainty_km, geom)
        SELECT date '2020-01-01' + (n % 1500), 'Battles', n % 7, 1 + n % 3,
               CASE WHEN n % 500 = 0 THEN 400 END,
               ST_SetSRID(ST_MakePoint(30 + (n % 997) * 0.03, 25 + (n % 701) * 0.03), 4326)
        FROM generate_series(1, 30000) n
        """
    )
    await db.execute("ANALYZE incidents")
    raw = RawFilter(near=f"{CENTER[0]},{CENTER[1]}", radius_km=25, match=Match.possible)
    f = await resolve_filter(db, raw)
    sql, values, _ = build_query(f, sort=Sort.newest, fmt=OutputFormat.json, after=None, limit=100)
    plan = "\n".join(r[0] for r in await db.fetch(f"EXPLAIN {sql}", *values))
    assert "Seq Scan" not in plan, plan
    assert "incidents_uncertainty" in plan and "incidents_geom_gist" in plan, plan


async def test_csv_column_and_settings(client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    """`uncertainty_km` as a CSV column (the SQL staging path): a blank cell is no value, a
    bad one a row error naming it; the defaults are a setting of `precision:km` pairs."""
    from pydantic import ValidationError

    from app.core.config import Settings

    csv_body = (
        "event_id_cnty,event_date,event_type,latitude,longitude,geo_precision,uncertainty_km\n"
        "C1,2024-05-01,Battles,34.35,45.39,3,\n"
        "C2,2024-05-02,Battles,34.35,45.39,3,7.5\n"
        "C3,2024-05-03,Battles,34.35,45.39,1,-2\n"
    )
    resp = await client.post(
        "/v1/incidents/bulk", content=csv_body, headers={**writer, "Content-Type": "text/csv"}
    )
    report = resp.json()
    assert resp.status_code == 200 and report["inserted"] == 2, report
    assert report["errors"][0]["errors"][0]["field"] == "uncertainty_km"
    items = (await client.get("/v1/incidents", params={"limit": 10})).json()["items"]
    got = {i["external_id"]: i["uncertainty_km"] for i in items}
    assert got == {"C1": DEFAULT_UNCERTAINTY_KM[3], "C2": 7.5}

    settings = Settings(uncertainty_km_by_geo_precision="1:2,2:20,3:80")  # type: ignore[arg-type]
    assert settings.uncertainty_km_by_geo_precision == {1: 2.0, 2: 20.0, 3: 80.0}
    with pytest.raises(ValidationError):
        Settings(uncertainty_km_by_geo_precision="1:-5")  # type: ignore[arg-type]
