"""Every search filter of the spec, each checked against incidents placed for it."""

from __future__ import annotations

import datetime as dt

import asyncpg
import httpx
import pytest

from tests.conftest import insert_incidents

pytestmark = pytest.mark.usefixtures("gazetteer", "boundaries", "clean_incidents")


async def ids(client: httpx.AsyncClient, **params: object) -> set[str]:
    resp = await client.get("/v1/incidents", params={"limit": 1000, **params})
    assert resp.status_code == 200, resp.text
    return {i["external_id"] for i in resp.json()["items"]}


async def test_bbox_and_antimeridian(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    await insert_incidents(
        db,
        [
            {"latitude": 34.4, "longitude": 45.4, "external_id": "khanaqin"},
            {"latitude": 0, "longitude": 179.5, "external_id": "east"},
            {"latitude": 0, "longitude": -179.5, "external_id": "west"},
            {"latitude": 0, "longitude": 0, "external_id": "null-island"},
        ],
    )
    assert await ids(client, bbox="44.5,33.5,46,35") == {"khanaqin"}
    assert await ids(client, bbox="179,-1,-179,1") == {"east", "west"}
    assert await ids(client, bbox="-180,-90,180,90") == {"khanaqin", "east", "west", "null-island"}
    for bad in ("1,2,3", "a,b,c,d", "0,10,5,5", "-181,0,0,1", "0,-91,1,0", "nan,0,1,1"):
        resp = await client.get("/v1/incidents", params={"bbox": bad})
        assert resp.status_code == 422, bad
        assert resp.json()["errors"][0]["field"] == "bbox"


async def test_within_area_by_id_and_name_and_polygon_search(
    client: httpx.AsyncClient, db: asyncpg.Connection, writer: dict[str, str]
) -> None:
    await insert_incidents(
        db,
        [
            {"latitude": 34.4, "longitude": 45.4, "external_id": "inside"},
            {"latitude": 33.3, "longitude": 44.4, "external_id": "baghdad"},
        ],
    )
    square = {
        "type": "Polygon",
        "coordinates": [[[45.1, 34.2], [45.6, 34.2], [45.6, 34.6], [45.1, 34.6], [45.1, 34.2]]],
    }
    created = await client.post(
        "/v1/areas", json={"name": "Khanaqin test square", "geometry": square}, headers=writer
    )
    assert created.status_code == 201, created.text
    area_id = created.json()["id"]
    assert await ids(client, within=area_id) == {"inside"}
    assert await ids(client, within="khanaqin TEST square") == {"inside"}
    assert await ids(client, within="Diyala") == {"inside"}  # Natural Earth admin-1
    assert await ids(client, within="Iraq") == {"inside", "baghdad"}  # country
    missing = await client.get("/v1/incidents", params={"within": "Atlantis"})
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "within"

    resp = await client.post("/v1/incidents/search", json={"geometry": square})
    assert resp.status_code == 200, resp.text
    assert {i["external_id"] for i in resp.json()["items"]} == {"inside"}
    multi = {
        "type": "MultiPolygon",
        "coordinates": [
            square["coordinates"],
            [[[44.3, 33.2], [44.5, 33.2], [44.5, 33.4], [44.3, 33.4], [44.3, 33.2]]],
        ],
    }
    resp = await client.post("/v1/incidents/search", json={"geometry": multi})
    assert {i["external_id"] for i in resp.json()["items"]} == {"inside", "baghdad"}
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}
    resp = await client.post("/v1/incidents/search", json={"geometry": bowtie})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "geometry"
    resp = await client.post(
        "/v1/incidents/search", json={"geometry": {"type": "Point", "coordinates": [1, 2]}}
    )
    assert resp.status_code == 422


async def test_dates_types_fatalities_admin_country(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await insert_incidents(
        db,
        [
            {
                "latitude": 34.4,
                "longitude": 45.4,
                "external_id": "a",
                "event_date": dt.date(2024, 1, 1),
                "event_type": "Battles",
                "fatalities": 3,
                "admin1": "Diyālá",
                "admin2": "Khanaqin",
            },
            {
                "latitude": 34.4,
                "longitude": 45.4,
                "external_id": "b",
                "event_date": dt.date(2024, 1, 31),
                "event_type": "Violence against civilians",
                "sub_event_type": "Attack",
                "fatalities": 7,
                "admin1": "Diyala",
            },
            {
                "latitude": 36.2,
                "longitude": 37.1,
                "external_id": "c",
                "event_date": dt.date(2024, 2, 1),
                "event_type": "Protests",
                "sub_event_type": "Peaceful protest",
                "disorder_type": "Demonstrations",
                "country": "Syria",
                "country_code": "SYR",
            },
        ],
    )
    assert await ids(client, start="2024-01-01", end="2024-01-31") == {"a", "b"}
    assert await ids(client, start="2024-01-31") == {"b", "c"}
    assert await ids(client, event_type="battles,Protests") == {"a", "c"}
    assert await ids(client, sub_event_type="Attack") == {"b"}
    assert await ids(client, disorder_type="Demonstrations") == {"c"}
    assert await ids(client, min_fatalities=5) == {"b"}
    assert await ids(client, admin1="diyala") == {"a", "b"}  # accents and case aside
    assert await ids(client, admin2="KHANAQIN") == {"a"}
    for country in ("Syria", "SY", "syr", "Syrian Arab Republic"):
        assert await ids(client, country=country) == {"c"}, country
    assert await ids(client, country="Iraq,Syria") == {"a", "b", "c"}
    resp = await client.get("/v1/incidents", params={"start": "2024-02-01", "end": "2024-01-01"})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "end"
    resp = await client.get("/v1/incidents", params={"event_type": "Massacres"})
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "event_type"


async def test_actor_aliases(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    await insert_incidents(
        db,
        [
            {
                "latitude": 34,
                "longitude": 45,
                "external_id": "isis",
                "actor1": "Islamic State (Iraq)",
            },
            {"latitude": 34, "longitude": 45, "external_id": "daesh", "actor2": "Daesh fighters"},
            {
                "latitude": 34,
                "longitude": 45,
                "external_id": "pmf",
                "actor1": "Popular Mobilization Forces",
            },
            {"latitude": 34, "longitude": 45, "external_id": "hashd", "actor1": "Hashd al-Shaabi"},
            {
                "latitude": 34,
                "longitude": 45,
                "external_id": "crisis",
                "actor1": "Crisis Response Division",
            },
            {
                "latitude": 34,
                "longitude": 45,
                "external_id": "pesh",
                "actor1": "Military Forces of Iraq (2022-) Peshmerga",
            },
        ],
    )
    for alias in ("ISIS", "isil", "Daesh", "Islamic State", "IS"):
        assert await ids(client, actor=alias) == {"isis", "daesh"}, alias
    assert await ids(client, actor="PMF") == {"pmf", "hashd"}
    assert await ids(client, actor="hashd al-shaabi") == {"pmf", "hashd"}
    assert await ids(client, actor="peshmerga") == {"pesh"}
    assert await ids(client, actor="ISIS,PMF") == {"isis", "daesh", "pmf", "hashd"}
    meta = (await client.get("/v1/incidents", params={"actor": "ISIS"})).json()["meta"]
    assert meta["filters"]["actor"]["matched_groups"][0]["name"] == "Islamic State"


async def test_actor_groups_are_extendable(
    client: httpx.AsyncClient, db: asyncpg.Connection, writer: dict[str, str]
) -> None:
    await insert_incidents(
        db, [{"latitude": 34, "longitude": 45, "external_id": "daish", "actor1": "Daish cell"}]
    )
    assert await ids(client, actor="ISIS") == set()
    resp = await client.post(
        "/v1/actors", json={"name": "Islamic State", "aliases": ["Daish"]}, headers=writer
    )
    assert resp.status_code == 201 and "Daish" in resp.json()["aliases"]
    assert await ids(client, actor="ISIS") == {"daish"}


async def test_full_text_over_notes(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    await insert_incidents(
        db,
        [
            {
                "latitude": 34,
                "longitude": 45,
                "external_id": "n1",
                "notes": "Militants stormed the village and killed six Kakai Kurds.",
            },
            {
                "latitude": 34,
                "longitude": 45,
                "external_id": "n2",
                "notes": "Mortar shells hit the market.",
            },
        ],
    )
    assert await ids(client, q="kill") == {"n1"}  # stemmed: killed
    assert await ids(client, q="kakai village") == {"n1"}
    assert await ids(client, q='"mortar shells"') == {"n2"}
    assert await ids(client, q="kakai -village") == set()


async def test_sorts(client: httpx.AsyncClient, db: asyncpg.Connection) -> None:
    await insert_incidents(
        db,
        [
            {
                "latitude": 34,
                "longitude": 45,
                "external_id": "old",
                "event_date": dt.date(2020, 1, 1),
                "fatalities": 5,
            },
            {
                "latitude": 34,
                "longitude": 45,
                "external_id": "new",
                "event_date": dt.date(2024, 1, 1),
                "fatalities": 1,
            },
            {
                "latitude": 34,
                "longitude": 45,
                "external_id": "mid",
                "event_date": dt.date(2022, 1, 1),
                "fatalities": 9,
            },
        ],
    )

    async def order(sort: str | None) -> list[str]:
        params = {"sort": sort} if sort else {}
        items = (await client.get("/v1/incidents", params=params)).json()["items"]
        return [i["external_id"] for i in items]

    assert await order(None) == ["new", "mid", "old"]
    assert await order("event_date") == ["old", "mid", "new"]
    assert await order("-fatalities") == ["mid", "old", "new"]
    assert (await client.get("/v1/incidents", params={"sort": "bogus"})).status_code == 422


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"near": "Khanaqin", "radius_km": "abc"}, "radius_km"),
        ({"near": "Khanaqin", "radius_km": "0"}, "radius_km"),
        ({"near": "Khanaqin", "radius_km": "nan"}, "radius_km"),
        ({"min_fatalities": "-1"}, "min_fatalities"),
        ({"min_fatalities": "2.5"}, "min_fatalities"),
        ({"start": "2024-13-01"}, "start"),
        ({"q": "x" * 1001}, "q"),
        ({"near": "Khanaqin", "match": "sometimes"}, "match"),
    ],
)
async def test_query_string_filters_are_typed_and_bounded(
    client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    """The filters are read from the query string by the search itself: each bad value is a
    422 problem naming its parameter, on every endpoint that takes them."""
    for path in ("/v1/incidents", "/v1/stats?group_by=year", "/v1/stats/grid"):
        resp = await client.get(path, params=params)
        assert resp.status_code == 422, (path, params, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert field in {e["field"] for e in resp.json()["errors"]}, resp.text
