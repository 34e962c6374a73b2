"""Bad input is a 4xx problem+json naming the field, and nothing is stored."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from tests.conftest import incident

CASES = [
    (incident(latitude=91), 422, "latitude"),
    (incident(longitude=-181), 422, "longitude"),
    (incident(fatalities=-1), 422, "fatalities"),
    (incident(event_date="2021-02-30"), 422, "event_date"),
    (incident(event_date="2021-13-01"), 422, "event_date"),
    (incident(event_date="yesterday"), 422, "event_date"),
    (incident(event_date_end="2020-06-01"), 422, "event_date_end"),
    (incident(event_type="Massacre"), 422, "event_type"),
    (incident(sub_event_type="Armed clash"), 422, "sub_event_type"),
    (incident(sub_event_type="Drive-by"), 422, "sub_event_type"),
    (incident(disorder_type="War"), 422, "disorder_type"),
    (incident(time_precision=4), 422, "time_precision"),
    (incident(geo_precision=0), 422, "geo_precision"),
    (incident(latitude=None), 422, "latitude"),
    (incident(latitude=None, longitude=None, location=None), 422, "latitude"),
    (
        incident(
            geometry={"type": "Point", "coordinates": [200, 10]}, latitude=None, longitude=None
        ),
        422,
        "geometry.coordinates",
    ),
    (incident(fatalities_low=9), 422, "fatalities_low"),
    (incident(unknown_field=1), 422, "unknown_field"),
    (incident(fatalities="many"), 422, "fatalities"),
    (incident(tags="kakai"), 422, "tags"),
    ({}, 422, "event_date"),
    ([1, 2], 422, "body"),
]


@pytest.mark.parametrize(("body", "status", "field"), CASES)
async def test_invalid_incident_is_rejected_and_nothing_stored(
    client: httpx.AsyncClient,
    writer: dict[str, str],
    db: asyncpg.Connection,
    body: object,
    status: int,
    field: str,
) -> None:
    before = await db.fetchval("SELECT count(*) FROM incidents")
    resp = await client.post("/v1/incidents", json=body, headers=writer)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    assert {"type", "title", "status", "detail", "errors"} <= problem.keys()
    assert problem["status"] == status
    assert field in [e["field"] for e in problem["errors"]], problem["errors"]
    assert await db.fetchval("SELECT count(*) FROM incidents") == before


async def test_nan_is_rejected(client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    raw = b'{"event_date":"2020-01-01","event_type":"Battles","latitude":NaN,"longitude":1}'
    resp = await client.post(
        "/v1/incidents", content=raw, headers={**writer, "Content-Type": "application/json"}
    )
    assert resp.status_code in (400, 422)
    assert resp.headers["content-type"] == "application/problem+json"


async def test_malformed_json_is_400(client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    resp = await client.post(
        "/v1/incidents",
        content=b'{"event_date": ',
        headers={**writer, "Content-Type": "application/json"},
    )
    assert resp.status_code == 400
    assert resp.json()["errors"][0]["field"] == "body"


async def test_wrong_content_type_is_415(client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    resp = await client.post(
        "/v1/incidents",
        content=b"event_date=2020-01-01",
        headers={**writer, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert resp.status_code == 415
    assert resp.json()["errors"][0]["field"] == "content-type"


async def test_body_over_limit_is_413_and_nothing_stored(
    client: httpx.AsyncClient, writer: dict[str, str], db: asyncpg.Connection
) -> None:
    before = await db.fetchval("SELECT count(*) FROM incidents")
    big = incident(notes="x" * (300 * 1024))
    resp = await client.post("/v1/incidents", json=big, headers=writer)
    assert resp.status_code == 413
    assert resp.headers["content-type"] == "application/problem+json"
    assert await db.fetchval("SELECT count(*) FROM incidents") == before


async def test_streamed_body_over_limit_is_413(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"x" * 10_000

    resp = await client.post(
        "/v1/incidents", content=chunks(), headers={**writer, "Content-Type": "application/json"}
    )
    assert resp.status_code == 413


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/nothing-here")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == "application/problem+json"
    resp = await client.put("/v1/incidents/1", json={})
    assert resp.status_code == 405
    assert resp.headers["content-type"] == "application/problem+json"
