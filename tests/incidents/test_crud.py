"""Create, read, update with If-Match, soft delete and history of one incident."""

from __future__ import annotations

import uuid

import asyncpg
import httpx

from tests.conftest import incident


def ext() -> str:
    return f"T-{uuid.uuid4().hex[:12]}"


async def test_create_returns_201_location_etag_and_acled_fields(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    body = incident(external_id=ext(), tags=["kakai"], fatalities_low=6, fatalities_high=8)
    resp = await client.post("/v1/incidents", json=body, headers=writer)
    assert resp.status_code == 201, resp.text
    data = resp.json()
    assert resp.headers["location"] == f"/v1/incidents/{data['id']}"
    assert resp.headers["etag"] == '"v1"'
    assert data["version"] == 1
    for field in (
        "event_date",
        "event_type",
        "sub_event_type",
        "actor1",
        "actor2",
        "fatalities",
        "admin1",
        "admin2",
        "location",
        "latitude",
        "longitude",
        "notes",
        "external_id",
    ):
        assert data[field] == body[field], field
    assert data["disorder_type"] == "Political violence"  # derived from the event type
    assert data["tags"] == ["kakai"]
    assert data["fatalities_low"] == 6 and data["fatalities_high"] == 8
    assert isinstance(data["id"], str)

    got = await client.get(resp.headers["location"])
    assert got.status_code == 200
    assert got.headers["etag"] == '"v1"'
    assert got.json() == data


async def test_geometry_input_is_lon_lat(client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    body = incident(
        latitude=None, longitude=None, geometry={"type": "Point", "coordinates": [45.391, 34.348]}
    )
    resp = await client.post("/v1/incidents", json=body, headers=writer)
    assert resp.status_code == 201, resp.text
    assert (resp.json()["latitude"], resp.json()["longitude"]) == (34.348, 45.391)


async def test_event_type_case_is_normalised(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    body = incident(event_type="battles", sub_event_type="ARMED CLASH", civilian_targeting=False)
    resp = await client.post("/v1/incidents", json=body, headers=writer)
    assert resp.status_code == 201, resp.text
    assert resp.json()["event_type"] == "Battles"
    assert resp.json()["sub_event_type"] == "Armed clash"


async def test_if_none_match_gives_304(client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    created = await client.post("/v1/incidents", json=incident(), headers=writer)
    url = created.headers["location"]
    resp = await client.get(url, headers={"If-None-Match": created.headers["etag"]})
    assert resp.status_code == 304


async def test_patch_with_if_match_and_stale_etag(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    created = await client.post("/v1/incidents", json=incident(), headers=writer)
    url = created.headers["location"]
    resp = await client.patch(
        url,
        json={"fatalities": 8, "notes": "revised"},
        headers={**writer, "If-Match": created.headers["etag"]},
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["etag"] == '"v2"'
    assert resp.json()["fatalities"] == 8 and resp.json()["version"] == 2

    stale = await client.patch(url, json={"fatalities": 9}, headers={**writer, "If-Match": '"v1"'})
    assert stale.status_code == 412
    assert stale.headers["content-type"] == "application/problem+json"
    assert (await client.get(url)).json()["fatalities"] == 8

    # No If-Match: last write wins, still versioned.
    resp = await client.patch(url, json={"fatalities": 9}, headers=writer)
    assert resp.json()["version"] == 3


async def test_patch_that_changes_nothing_keeps_version(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    created = await client.post("/v1/incidents", json=incident(), headers=writer)
    resp = await client.patch(created.headers["location"], json={"fatalities": 7}, headers=writer)
    assert resp.status_code == 200
    assert resp.json()["version"] == 1


async def test_patch_validates_the_merged_incident(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    created = await client.post("/v1/incidents", json=incident(), headers=writer)
    url = created.headers["location"]
    resp = await client.patch(url, json={"event_date_end": "2020-06-01"}, headers=writer)
    assert resp.status_code == 422
    assert resp.json()["errors"][0]["field"] == "event_date_end"
    resp = await client.patch(url, json={"event_type": "Battles"}, headers=writer)
    assert resp.status_code == 422  # sub_event_type "Attack" is not a Battles sub-type
    assert resp.json()["errors"][0]["field"] == "sub_event_type"
    resp = await client.patch(url, json={"event_date": None}, headers=writer)
    assert resp.status_code == 422
    assert (await client.get(url)).json()["version"] == 1


async def test_delete_is_soft_and_kept_in_history(
    client: httpx.AsyncClient, writer: dict[str, str], db: asyncpg.Connection
) -> None:
    created = await client.post("/v1/incidents", json=incident(), headers=writer)
    url = created.headers["location"]
    await client.patch(
        url, json={"fatalities": 8, "actor2": "Civilians (Iraq) Kakai"}, headers=writer
    )
    resp = await client.delete(url, headers={**writer, "If-Match": '"v2"'})
    assert resp.status_code == 204
    assert (await client.get(url)).status_code == 404
    assert (await client.patch(url, json={"fatalities": 1}, headers=writer)).status_code == 404
    assert (await client.delete(url, headers=writer)).status_code == 404
    row = await db.fetchrow(
        "SELECT deleted_at, version FROM incidents WHERE id = $1", int(created.json()["id"])
    )
    assert row["deleted_at"] is not None and row["version"] == 3

    history = await client.get(url + "/revisions")
    assert history.status_code == 200
    items = history.json()["items"]
    assert [i["op"] for i in items] == ["create", "update", "delete"]
    assert [i["version"] for i in items] == [1, 2, 3]
    assert all(i["changed_by"] == "ingest" for i in items)
    assert sorted(items[1]["changed_fields"]) == ["actor2", "fatalities"]
    assert items[1]["incident"]["fatalities"] == 8
    assert history.json()["next_cursor"] is None


async def test_revisions_page_with_cursor(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    created = await client.post("/v1/incidents", json=incident(), headers=writer)
    url = created.headers["location"]
    for n in range(3):
        await client.patch(url, json={"fatalities": 10 + n}, headers=writer)
    first = await client.get(url + "/revisions", params={"limit": 2})
    assert [i["version"] for i in first.json()["items"]] == [1, 2]
    assert 'rel="next"' in first.headers["link"]
    second = await client.get(
        url + "/revisions", params={"limit": 2, "cursor": first.json()["next_cursor"]}
    )
    assert [i["version"] for i in second.json()["items"]] == [3, 4]
    assert second.json()["next_cursor"] is None
    bad = await client.get(
        url + "/revisions", params={"cursor": "xx" + first.json()["next_cursor"]}
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "cursor"


async def test_duplicate_external_id_is_409(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    external_id = ext()
    first = await client.post(
        "/v1/incidents", json=incident(external_id=external_id), headers=writer
    )
    assert first.status_code == 201
    second = await client.post(
        "/v1/incidents", json=incident(external_id=external_id), headers=writer
    )
    assert second.status_code == 409
    assert second.json()["errors"][0]["field"] == "external_id"
    other = await client.post("/v1/incidents", json=incident(external_id=ext()), headers=writer)
    clash = await client.patch(
        other.headers["location"], json={"external_id": external_id}, headers=writer
    )
    assert clash.status_code == 409


async def test_unknown_ids_are_404_problems(client: httpx.AsyncClient) -> None:
    for raw in ("999999999", "abc", "0", "-1", "99999999999999999999999"):
        resp = await client.get(f"/v1/incidents/{raw}")
        assert resp.status_code == 404, raw
        assert resp.headers["content-type"] == "application/problem+json"
        assert resp.json()["status"] == 404


async def test_taxonomy_has_acled_types(client: httpx.AsyncClient) -> None:
    data = (await client.get("/v1/taxonomy")).json()
    assert len(data["event_types"]) == 6
    assert sum(len(e["sub_event_types"]) for e in data["event_types"]) == 25
