"""Inputs found by fuzzing: NUL characters and integers beyond 64 bits are 4xx problems."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from tests.conftest import incident, insert_incidents


@pytest.mark.parametrize(
    ("method", "path", "body", "params"),
    [
        ("GET", "/v1/places", None, {"q": "Khana\x00qin"}),
        ("GET", "/v1/incidents", None, {"q": "kill\x00"}),
        ("GET", "/v1/incidents", None, {"admin1": "Diy\x00ala"}),
        ("POST", "/v1/places", {"name": "Dara\x00", "latitude": 34.4, "longitude": 45.3}, None),
        ("POST", "/v1/actors", {"name": "IS\x00"}, None),
        ("POST", "/v1/incidents", incident(notes="nul \x00 inside"), None),
        (
            "POST",
            "/v1/areas",
            {
                "name": "big",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[2**70, 0], [1, 1], [1, 0], [2**70, 0]]],
                },
            },
            None,
        ),
        (
            "POST",
            "/v1/areas",
            {
                "name": "props",
                "properties": {"n": 2**70},
                "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 0]]]},
            },
            None,
        ),
        ("POST", "/v1/incidents", incident(fatalities=2**70), None),
    ],
)
async def test_hostile_values_are_client_errors(
    client: httpx.AsyncClient,
    writer: dict[str, str],
    method: str,
    path: str,
    body: object,
    params: dict | None,
) -> None:
    resp = await client.request(method, path, json=body, params=params, headers=writer)
    assert resp.status_code < 500, (resp.status_code, resp.text)
    if resp.status_code >= 400:
        assert resp.headers["content-type"] == "application/problem+json"
    else:  # a big number in free-form properties is valid JSON and kept as such
        assert path == "/v1/areas" and "properties" in (body or {})
    assert "Traceback" not in resp.text


async def test_bulk_with_huge_numbers_and_nul(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    import json

    rows = [incident(external_id="H1", fatalities=2**70), incident(external_id="H2\x00")]
    resp = await client.post(
        "/v1/incidents/bulk",
        content=json.dumps(rows),
        headers={**writer, "Content-Type": "application/json"},
    )
    assert 400 <= resp.status_code < 500 or resp.json()["failed"] >= 1, resp.text


@pytest.mark.parametrize("path", ["/v1/incidents", "/v1/incidents/bulk"])
async def test_slow_uploads_time_out(database_url: str, write_key: str, path: str) -> None:
    import asyncio

    from app.main import create_app
    from tests.conftest import make_settings

    app = create_app(make_settings(database_url, body_read_timeout_s=0.3))

    async def trickle():  # type: ignore[no-untyped-def]
        yield b'{"event_date": '
        await asyncio.sleep(1.0)
        yield b'"2020-01-01"}'

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            resp = await client.post(
                path,
                content=trickle(),
                headers={
                    "Authorization": f"Bearer {write_key}",
                    "Content-Type": "application/json",
                },
            )
    assert resp.status_code == 408
    assert resp.headers["content-type"] == "application/problem+json"


@pytest.mark.usefixtures("gazetteer", "clean_incidents")
async def test_patch_of_a_row_stored_under_looser_rules_is_a_422_not_a_500(
    client: httpx.AsyncClient, db: asyncpg.Connection, writer: dict[str, str]
) -> None:
    """A row loaded straight into the table with a sub-event type that does not belong to its
    event type: a patch that keeps it is refused naming the field; one that mends it lands."""
    [incident_id] = await insert_incidents(
        db,
        [
            {
                "latitude": 34.4,
                "longitude": 45.3,
                "event_type": "Protests",
                "sub_event_type": "Armed clash",
            }
        ],
    )
    current = await client.get(f"/v1/incidents/{incident_id}")
    assert current.status_code == 200
    headers = {**writer, "If-Match": current.headers["etag"]}
    keep = await client.patch(
        f"/v1/incidents/{incident_id}", json={"fatalities": 2}, headers=headers
    )
    assert keep.status_code == 422, keep.text
    assert "sub_event_type" in keep.text
    mend = await client.patch(
        f"/v1/incidents/{incident_id}",
        json={"sub_event_type": "Peaceful protest", "disorder_type": "Demonstrations"},
        headers=headers,
    )
    assert mend.status_code == 200, mend.text
    assert mend.json()["sub_event_type"] == "Peaceful protest"
