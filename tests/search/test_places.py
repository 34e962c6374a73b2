"""The gazetteer: fuzzy, accent- and script-insensitive, alternate names, offline load."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from app.places.loader import load_places
from app.places.sources import iter_packaged_places

pytestmark = pytest.mark.usefixtures("gazetteer")


@pytest.mark.parametrize(
    "query",
    ["Khanaqin", "Khānaqīn", "khanaqin", "KHANAQIN", "خانقين", "Xaneqîn", "Khanaqeen", "Khanaquin"],
)
async def test_khanaqin_found_first_in_every_spelling(
    client: httpx.AsyncClient, query: str
) -> None:
    resp = await client.get("/v1/places", params={"q": query})
    assert resp.status_code == 200
    first = resp.json()["items"][0]
    assert first["geonameid"] == 94591
    assert first["country_code"] == "IQ" and first["country_code3"] == "IRQ"
    assert first["admin1"] == "Diyālá"
    assert "Khanaqin" in first["admin2"]
    assert abs(first["latitude"] - 34.348) < 0.01 and abs(first["longitude"] - 45.391) < 0.01
    assert first["population"] > 100_000
    assert "خانقين" in first["alternate_names"]
    for field in (
        "id",
        "name",
        "alternate_names",
        "country_code",
        "admin1",
        "admin2",
        "latitude",
        "longitude",
        "population",
    ):
        assert field in first


async def test_ranking_prefers_population_among_equal_names(client: httpx.AsyncClient) -> None:
    items = (await client.get("/v1/places", params={"q": "Paris", "limit": 5})).json()["items"]
    assert items[0]["country_code"] == "FR"
    us = (await client.get("/v1/places", params={"q": "Paris", "country": "US"})).json()["items"]
    assert us and all(i["country_code"] == "US" for i in us)
    by_name = await client.get("/v1/places", params={"q": "Paris", "country": "United States"})
    assert by_name.json()["items"][0]["country_code"] == "US"


async def test_unknown_country_is_404_naming_it(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/places", params={"q": "Paris", "country": "Atlantis"})
    assert resp.status_code == 404
    assert resp.json()["errors"][0]["field"] == "country"


async def test_nothing_matches(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/places", params={"q": "qxwvzjk"})
    assert resp.status_code == 200 and resp.json()["items"] == []


async def test_post_place_adds_a_missing_town(
    client: httpx.AsyncClient, writer: dict[str, str], read_key: str
) -> None:
    body = {
        "name": "Jalawla",
        "alternate_names": ["Jalula", "جلولاء"],
        "latitude": 34.2726,
        "longitude": 45.1633,
        "country_code": "IRQ",
        "admin1": "Diyala",
        "population": 60000,
    }
    denied = await client.post(
        "/v1/places", json=body, headers={"Authorization": f"Bearer {read_key}"}
    )
    assert denied.status_code == 403
    resp = await client.post("/v1/places", json=body, headers=writer)
    assert resp.status_code == 201, resp.text
    assert resp.json()["country_code"] == "IQ" and resp.json()["source"] == "user"
    got = await client.get(resp.headers["location"])
    assert got.json()["name"] == "Jalawla"
    found = (await client.get("/v1/places", params={"q": "جلولاء"})).json()["items"][0]
    assert found["name"] == "Jalawla"
    bad = await client.post("/v1/places", json={**body, "latitude": 95}, headers=writer)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "latitude"


async def test_reload_is_idempotent(database_url: str, gazetteer: dict[str, float]) -> None:
    """A second load changes nothing (how long loads take is a benchmark's business: the
    suite runs on shared machines)."""
    assert gazetteer["rows"] > 230_000
    conn = await asyncpg.connect(database_url, server_settings={"statement_timeout": "0"})
    try:
        before = await conn.fetchval("SELECT count(*) FROM place_names")
        report = await load_places(conn, iter_packaged_places())
        assert report.upserted == 0 and report.names == 0
        assert await conn.fetchval("SELECT count(*) FROM place_names") == before
        assert await conn.fetchval("SELECT count(*) FROM places WHERE geonameid = 94591") == 1
    finally:
        await conn.close()


async def test_geonames_dump_loads(database_url: str, tmp_path: object) -> None:
    from pathlib import Path

    from app.places.sources import iter_geonames_dump

    path = Path(str(tmp_path)) / "IQ.txt"
    row = [
        "99000001",
        "Dara",
        "Dara",
        "Darah,دارا",
        "34.415",
        "45.335",
        "P",
        "PPL",
        "IQ",
        "",
        "10",
        "",
        "",
        "",
        "150",
        "",
        "200",
        "Asia/Baghdad",
        "2024-01-01",
    ]
    path.write_text("\t".join(row) + "\n", encoding="utf-8")
    conn = await asyncpg.connect(database_url, server_settings={"statement_timeout": "0"})
    try:
        report = await load_places(conn, iter_geonames_dump(path))
        assert report.rows == 1 and report.upserted == 1
        admin1 = await conn.fetchval("SELECT admin1 FROM places WHERE geonameid = 99000001")
        assert admin1 == "Diyālá"
    finally:
        await conn.close()
