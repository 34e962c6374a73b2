"""Inputs found by fuzzing: NUL characters and integers beyond 64 bits are 4xx problems."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import incident


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
