"""`near` + `radius_km`: exact geodesic answers, distances, sort, nearest-k, unknown places."""

from __future__ import annotations

import datetime as dt
import random

import asyncpg
import httpx
import pytest
from geographiclib.geodesic import Geodesic

from tests.conftest import insert_incidents

pytestmark = pytest.mark.usefixtures("gazetteer", "clean_incidents")

KHANAQIN = (34.3482, 45.39065)  # GeoNames 94591


def around(lat: float, lon: float, distances_km: list[float], seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for n, d in enumerate(distances_km):
        g = Geodesic.WGS84.Direct(lat, lon, rng.uniform(0, 360), d * 1000)
        rows.append(
            {
                "latitude": g["lat2"],
                "longitude": g["lon2"],
                "external_id": f"R{n}",
                "event_date": dt.date(2024, 1, 1) + dt.timedelta(days=n),
            }
        )
    return rows


def geodesic_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    return Geodesic.WGS84.Inverse(lat1, lon1, lat2, lon2)["s12"] / 1000


async def test_within_25km_of_khanaqin_is_exact(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    distances = [0.5, 5, 12, 24.0, 24.9, 24.99, 25.01, 25.1, 26, 40, 100]
    await insert_incidents(db, around(*KHANAQIN, distances))
    resp = await client.get("/v1/incidents", params={"near": "Khanaqin", "radius_km": 25})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    place = body["meta"]["resolved_place"]
    assert place["geonameid"] == 94591 and place["name"] == "Khānaqīn"
    expected = {f"R{n}" for n, d in enumerate(distances) if d <= 25}
    assert {i["external_id"] for i in body["items"]} == expected
    for item in body["items"]:
        truth = geodesic_km(
            place["latitude"], place["longitude"], item["latitude"], item["longitude"]
        )
        assert abs(item["distance_km"] - truth) <= max(truth * 0.001, 0.0005), item
    assert body["meta"]["filters"]["radius_km"] == 25


async def test_coordinates_work_the_same_and_default_radius_is_25(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await insert_incidents(db, around(34.348, 45.391, [1, 10, 24.95, 25.05, 30]))
    resp = await client.get("/v1/incidents", params={"near": "34.348,45.391"})
    assert resp.status_code == 200
    assert {i["external_id"] for i in resp.json()["items"]} == {"R0", "R1", "R2"}
    assert resp.json()["meta"]["resolved_place"] is None


async def test_sort_by_distance(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    distances = [9.0, 3.0, 15.0, 1.0, 7.0]
    await insert_incidents(db, around(34.348, 45.391, distances))
    resp = await client.get(
        "/v1/incidents",
        params={"near": "34.348,45.391", "radius_km": 20, "sort": "distance", "limit": 2},
    )
    items = resp.json()["items"]
    assert [i["external_id"] for i in items] == ["R3", "R1"]
    rest = await client.get(
        "/v1/incidents",
        params={
            "near": "34.348,45.391",
            "radius_km": 20,
            "sort": "distance",
            "limit": 2,
            "cursor": resp.json()["next_cursor"],
        },
    )
    assert [i["external_id"] for i in rest.json()["items"]] == ["R4", "R0"]


async def test_nearest_k_without_radius(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    rng = random.Random(7)
    rows = [
        {"latitude": rng.uniform(25, 45), "longitude": rng.uniform(30, 60), "external_id": f"K{n}"}
        for n in range(300)
    ]
    await insert_incidents(db, rows)
    resp = await client.get(
        "/v1/incidents", params={"near": "34.348,45.391", "sort": "distance", "limit": 7}
    )
    assert resp.status_code == 200, resp.text
    got = [i["external_id"] for i in resp.json()["items"]]
    truth = sorted(rows, key=lambda r: geodesic_km(34.348, 45.391, r["latitude"], r["longitude"]))[
        :7
    ]
    assert got == [r["external_id"] for r in truth]
    assert resp.json()["next_cursor"] is None


async def test_far_north_and_antimeridian_radius(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    # Chukotka: a circle around 65N 179.9E crosses the antimeridian and is wide in longitude.
    distances = [10, 49, 51, 80]
    rows = around(65.0, 179.9, distances, seed=3)
    await insert_incidents(db, rows)
    resp = await client.get("/v1/incidents", params={"near": "65,179.9", "radius_km": 50})
    assert {i["external_id"] for i in resp.json()["items"]} == {"R0", "R1"}


async def test_unknown_place_is_404_naming_it(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/incidents", params={"near": "Qwxzyvillage"})
    assert resp.status_code == 404
    problem = resp.json()
    assert problem["errors"][0]["field"] == "near"
    assert "Qwxzyvillage" in problem["detail"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"near": "91,45"}, "near"),
        ({"near": "34,45", "radius_km": 0}, "radius_km"),
        ({"near": "34,45", "radius_km": 20001}, "radius_km"),
        ({"radius_km": 5}, "radius_km"),
        ({"sort": "distance"}, "sort"),
    ],
)
async def test_bad_radius_input(client: httpx.AsyncClient, params: dict, field: str) -> None:
    resp = await client.get("/v1/incidents", params=params)
    assert resp.status_code == 422, resp.text
    assert field in [e["field"] for e in resp.json()["errors"]]


def test_inner_box_is_inside_the_circle() -> None:
    """Points in the shortcut box are within the radius (checked with geographiclib)."""
    from app.core.geo import inner_box

    rng = random.Random(3)
    for _ in range(300):
        lat, lon = rng.uniform(-80, 80), rng.uniform(-170, 170)
        radius = rng.choice([100.0, 5_000.0, 25_000.0, 500_000.0])
        box = inner_box(lat, lon, radius)
        if box is None:
            continue
        for plat, plon in (
            (box.min_lat, box.min_lon),
            (box.max_lat, box.max_lon),
            (box.min_lat, box.max_lon),
            (box.max_lat, box.min_lon),
        ):
            assert geodesic_km(lat, lon, plat, plon) * 1000 <= radius


def test_circle_envelope_contains_the_circle() -> None:
    from app.core.geo import circle_envelopes

    rng = random.Random(4)
    for _ in range(300):
        lat, lon = rng.uniform(-85, 85), rng.uniform(-180, 180)
        radius = rng.choice([1_000.0, 25_000.0, 300_000.0])
        envelopes = circle_envelopes(lat, lon, radius)
        for azimuth in range(0, 360, 15):
            g = Geodesic.WGS84.Direct(lat, lon, azimuth, radius * 0.9999)
            assert any(
                e.min_lon <= g["lon2"] <= e.max_lon and e.min_lat <= g["lat2"] <= e.max_lat
                for e in envelopes
            ), (lat, lon, radius, azimuth)
