"""Areas (API and CLI import) and incidents filled from the gazetteer and boundaries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import PEPPER, incident

pytestmark = pytest.mark.usefixtures("gazetteer", "boundaries")


async def test_area_crud_and_errors(client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    square = {
        "type": "Polygon",
        "coordinates": [[[10, 10], [11, 10], [11, 11], [10, 11], [10, 10]]],
    }
    resp = await client.post(
        "/v1/areas",
        json={"name": "Test square A", "geometry": square, "properties": {"src": "test"}},
        headers=writer,
    )
    assert resp.status_code == 201, resp.text
    feature = resp.json()
    assert feature["type"] == "Feature" and feature["properties"]["kind"] == "custom"
    assert feature["properties"]["bbox"] == [10, 10, 11, 11]
    got = await client.get(resp.headers["location"])
    assert got.json()["geometry"]["type"] == "MultiPolygon"
    dup = await client.post(
        "/v1/areas", json={"name": "test square a", "geometry": square}, headers=writer
    )
    assert dup.status_code == 409
    listed = await client.get("/v1/areas", params={"name": "square a"})
    assert [a["name"] for a in listed.json()["items"]] == ["Test square A"]
    countries = await client.get("/v1/areas", params={"kind": "country", "limit": 100})
    assert len(countries.json()["items"]) == 100 and countries.json()["next_cursor"]
    iraq = await client.get("/v1/areas", params={"kind": "admin1", "name": "diyala"})
    assert any(a["code"] == "IQ-DI" for a in iraq.json()["items"])
    for body in (
        {"name": "bad", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}},
        {"name": "bad", "geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}},
        {"name": "", "geometry": square},
    ):
        resp = await client.post("/v1/areas", json=body, headers=writer)
        assert resp.status_code == 422, body
    assert (
        await client.post("/v1/areas", json={"name": "x", "geometry": square})
    ).status_code == 401


async def test_areas_import_cli(
    database_url: str, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    path = tmp_path / "disputed.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"NAME_EN": "Disputed strip"},
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [[[44, 34], [45, 34], [45, 35], [44, 35], [44, 34]]],
                        },
                    },
                    {
                        "type": "Feature",
                        "properties": {"NAME_EN": "A point"},
                        "geometry": {"type": "Point", "coordinates": [44, 34]},
                    },
                ],
            }
        )
    )
    env = {**os.environ, "DATABASE_URL": database_url, "KEY_PEPPER": PEPPER}
    for expected in ("1 created, 0 replaced", "0 created, 1 replaced"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "app.cli",
                "areas",
                "import",
                str(path),
                "--name-field",
                "NAME_EN",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert expected in result.stderr
    listed = await client.get("/v1/areas", params={"name": "Disputed strip"})
    assert len(listed.json()["items"]) == 1


async def test_country_and_admin1_filled_from_the_point(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    body = incident(country=None, admin1=None, admin2=None)
    resp = await client.post("/v1/incidents", json=body, headers=writer)
    assert resp.status_code == 201, resp.text
    data = resp.json()
    assert (data["country"], data["country_code"], data["admin1"]) == ("Iraq", "IRQ", "Diyala")
    syria = await client.post(
        "/v1/incidents",
        json=incident(country=None, admin1=None, admin2=None, latitude=36.2, longitude=37.15),
        headers=writer,
    )
    assert syria.json()["country_code"] == "SYR" and syria.json()["admin1"] == "Aleppo"


async def test_country_code_alpha2_and_name(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    resp = await client.post(
        "/v1/incidents", json=incident(country=None, country_code="iq"), headers=writer
    )
    assert resp.json()["country_code"] == "IRQ" and resp.json()["country"] == "Iraq"
    resp = await client.post("/v1/incidents", json=incident(country="Iraq"), headers=writer)
    assert resp.json()["country_code"] == "IRQ"
    bad = await client.post("/v1/incidents", json=incident(country_code="ZZ"), headers=writer)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "country_code"


async def test_location_only_resolves_through_the_gazetteer(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    body = incident(
        latitude=None,
        longitude=None,
        location="Khanaqin",
        admin1=None,
        admin2=None,
        country=None,
        geo_precision=None,
    )
    resp = await client.post("/v1/incidents", json=body, headers=writer)
    assert resp.status_code == 201, resp.text
    data = resp.json()
    assert abs(data["latitude"] - 34.3482) < 0.001 and abs(data["longitude"] - 45.3907) < 0.001
    assert data["geo_precision"] == 1
    assert data["admin1"] == "Diyālá" and data["admin2"] == "Khanaqin District"
    assert data["country_code"] == "IRQ"
    arabic = await client.post("/v1/incidents", json={**body, "location": "خانقين"}, headers=writer)
    assert arabic.json()["latitude"] == data["latitude"]
    unknown = await client.post(
        "/v1/incidents", json={**body, "location": "Qwxzyvillage"}, headers=writer
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "location"
