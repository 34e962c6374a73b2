"""POST /v1/incidents/bulk: every format, upsert on external_id, errors, atomicity, limits."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.conftest import incident

pytestmark = pytest.mark.usefixtures("gazetteer", "boundaries", "clean_incidents")
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


async def post(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    body: bytes | str,
    content_type: str,
    **params: object,
) -> httpx.Response:
    data = body.encode() if isinstance(body, str) else body
    return await client.post(
        "/v1/incidents/bulk",
        content=data,
        params=params,
        headers={**headers, "Content-Type": content_type},
    )


async def by_external_id(client: httpx.AsyncClient, external_id: str) -> dict:
    resp = await client.get("/v1/incidents", params={"limit": 10000})
    found = [i for i in resp.json()["items"] if i["external_id"] == external_id]
    assert len(found) == 1, external_id
    return found[0]


async def test_acled_current_csv_with_bom_and_multiline_notes(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    body = (FIXTURES / "acled_current.csv").read_bytes()
    assert body.startswith(b"\xef\xbb\xbf")
    resp = await post(client, writer, body, "text/csv")
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert (report["layout"], report["inserted"], report["failed"]) == ("acled", 3, 0)
    dara = await by_external_id(client, "IRQ12001")
    assert dara["fatalities"] == 7 and dara["civilian_targeting"] is True
    assert "\nand a member" in dara["notes"] and '"quoted"' in dara["notes"]
    assert dara["country_code"] == "IRQ" and dara["tags"] == ["crowd size=no report"]
    clash = await by_external_id(client, "IRQ12003")
    assert (
        clash["civilian_targeting"] is False
        and clash["assoc_actor_1"] == "Popular Mobilization Forces"
    )


async def test_same_file_twice_changes_nothing(
    client: httpx.AsyncClient, writer: dict[str, str], db: asyncpg.Connection
) -> None:
    body = (FIXTURES / "acled_current.csv").read_bytes()
    await post(client, writer, body, "text/csv")
    revisions = await db.fetchval("SELECT count(*) FROM incident_revisions")
    again = (await post(client, writer, body, "text/csv")).json()
    assert (again["inserted"], again["updated"], again["unchanged"]) == (0, 0, 3)
    assert await db.fetchval("SELECT count(*) FROM incident_revisions") == revisions
    assert await db.fetchval("SELECT max(version) FROM incidents") == 1
    changed = body.replace(b"Clashes near Jalawla.,3", b"Clashes near Jalawla.,4")
    third = (await post(client, writer, changed, "text/csv")).json()
    assert (third["inserted"], third["updated"], third["unchanged"]) == (0, 1, 2)
    clash = await by_external_id(client, "IRQ12003")
    assert clash["fatalities"] == 4 and clash["version"] == 2
    history = (await client.get(f"/v1/incidents/{clash['id']}/revisions")).json()["items"]
    assert history[-1]["changed_fields"] == ["fatalities"]
    assert history[-1]["changed_by"] == "ingest"


async def test_acled_legacy_layout(client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    resp = await post(client, writer, (FIXTURES / "acled_legacy.csv").read_bytes(), "text/csv")
    assert resp.json()["inserted"] == 2, resp.text
    ied = await by_external_id(client, "IRQ9001")
    assert ied["event_date"] == "2020-02-29" and ied["country_code"] == "IRQ"
    assert ied["sub_event_type"] == "Remote explosive/landmine/IED"
    assert (await by_external_id(client, "IRQ9002"))["event_date"] == "2020-06-13"


async def test_ucdp_ged_with_hxl_row(client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    resp = await post(client, writer, (FIXTURES / "ucdp_ged.csv").read_bytes(), "text/csv")
    report = resp.json()
    assert (report["layout"], report["received"], report["inserted"]) == ("ucdp", 2, 2), report
    dara = await by_external_id(client, "344000")
    assert dara["event_type"] == "Violence against civilians" and dara["civilian_targeting"]
    assert (dara["actor1"], dara["actor2"]) == ("IS", "Civilians")
    assert (dara["fatalities"], dara["fatalities_low"], dara["fatalities_high"]) == (7, 7, 9)
    assert (dara["event_date"], dara["event_date_end"]) == ("2020-06-13", "2020-06-14")
    assert dara["geo_precision"] == 2 and dara["admin1"] == "Diyala province"
    # where_prec 2 (within 25 km) and 4 (the province): UNCERTAINTY_KM_BY_WHERE_PREC.
    assert dara["uncertainty_km"] == 25.0
    clash = await by_external_id(client, "344001")
    assert clash["event_type"] == "Battles" and clash["sub_event_type"] == "Armed clash"
    assert clash["time_precision"] == 3 and clash["geo_precision"] == 3
    assert clash["uncertainty_km"] == 150.0


async def test_json_ndjson_geojson(client: httpx.AsyncClient, writer: dict[str, str]) -> None:
    items = [incident(external_id=f"J{n}", fatalities=n) for n in range(3)]
    resp = await post(client, writer, json.dumps(items), "application/json")
    assert (resp.json()["format"], resp.json()["inserted"]) == ("json", 3)
    ndjson = "\n".join(json.dumps(incident(external_id=f"N{n}")) for n in range(2)) + "\n"
    resp = await post(client, writer, ndjson, "application/x-ndjson")
    assert (resp.json()["format"], resp.json()["inserted"]) == ("ndjson", 2)
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [45.39, 34.35]},
            "properties": {
                k: v
                for k, v in incident(external_id=f"G{n}").items()
                if k not in ("latitude", "longitude")
            },
        }
        for n in range(2)
    ]
    fc = {"type": "FeatureCollection", "features": features, "name": "after the features"}
    resp = await post(client, writer, json.dumps(fc), "application/geo+json")
    assert (resp.json()["format"], resp.json()["inserted"]) == ("geojson", 2), resp.text
    assert (await by_external_id(client, "G1"))["longitude"] == 45.39
    # An export can be posted back as it is.
    export = await client.get("/v1/incidents", params={"format": "ndjson"})
    again = await post(client, writer, export.text, "application/x-ndjson")
    assert again.json()["failed"] == 0 and again.json()["inserted"] == 0


async def test_bad_rows_are_listed_and_good_rows_land(
    client: httpx.AsyncClient, writer: dict[str, str], db: asyncpg.Connection
) -> None:
    items = [
        incident(external_id="ok1"),
        incident(external_id="bad1", latitude=95),
        incident(external_id="ok2"),
        incident(external_id="bad2", event_type="Nope", fatalities=-3),
        "not an object",
    ]
    resp = await post(client, writer, json.dumps(items), "application/json")
    report = resp.json()
    assert (report["inserted"], report["failed"]) == (2, 3)
    listed = {e["row"]: {x["field"] for x in e["errors"]} for e in report["errors"]}
    assert listed == {2: {"latitude"}, 4: {"event_type", "fatalities"}, 5: {"row"}}
    assert await db.fetchval("SELECT count(*) FROM incidents") == 2


async def test_csv_errors_name_row_and_line(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    body = (FIXTURES / "acled_current.csv").read_text(encoding="utf-8-sig")
    lines = body.split("\n")
    # Row 3 (the third record, after a two-line record) gets an impossible date.
    lines[4] = lines[4].replace("2020-08-27", "2020-02-31")
    resp = await post(client, writer, "\n".join(lines), "text/csv")
    error = resp.json()["errors"][0]
    assert (error["row"], error["line"]) == (3, 5)
    assert error["errors"][0]["field"] == "event_date"


async def test_atomic_rejects_everything(
    client: httpx.AsyncClient, writer: dict[str, str], db: asyncpg.Connection
) -> None:
    items = [incident(external_id="a1"), incident(external_id="a2", latitude=-91)]
    resp = await post(client, writer, json.dumps(items), "application/json", atomic="true")
    assert resp.status_code == 422
    assert resp.headers["content-type"] == "application/problem+json"
    assert "row 2" in resp.json()["errors"][0]["field"]
    assert await db.fetchval("SELECT count(*) FROM incidents") == 0
    ok = await post(client, writer, json.dumps(items[:1]), "application/json", atomic="true")
    assert ok.json()["inserted"] == 1


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'[{"event_date": "2020-01-01", ', "application/json"),
        (b"name,age\nx,1\n", "text/csv"),
        (b"", "text/csv"),
        (b'{"type": "FeatureCollection"}', "application/geo+json"),
        (b"\xff\xfe\x00bad", "text/csv"),
    ],
)
async def test_unreadable_bodies_are_400(
    client: httpx.AsyncClient,
    writer: dict[str, str],
    db: asyncpg.Connection,
    body: bytes,
    content_type: str,
) -> None:
    resp = await post(client, writer, body, content_type)
    assert resp.status_code == 400, resp.text
    assert resp.json()["errors"][0]["field"] == "body"
    assert await db.fetchval("SELECT count(*) FROM incidents") == 0


async def test_bulk_over_the_limit_is_413(
    client: httpx.AsyncClient, writer: dict[str, str], db: asyncpg.Connection
) -> None:
    row = json.dumps(incident(notes="x" * 1000)) + "\n"
    body = row * (5 * 1024 * 1024 // len(row))  # the test limit is 4 MB
    resp = await post(client, writer, body, "application/x-ndjson")
    assert resp.status_code == 413

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(50):
            yield b"x" * 100_000

    streamed = await client.post(
        "/v1/incidents/bulk", content=chunks(), headers={**writer, "Content-Type": "text/csv"}
    )
    assert streamed.status_code == 413
    assert await db.fetchval("SELECT count(*) FROM incidents") == 0


async def test_possible_duplicates_are_flagged_not_merged(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    first = await client.post("/v1/incidents", json=incident(external_id="D1"), headers=writer)
    near = incident(
        external_id="D2",
        latitude=34.42,
        longitude=45.34,  # ~0.8 km away
        event_date="2020-06-14",
        actor1="islamic state (iraq)",
    )
    far = incident(external_id="D3", latitude=34.6, longitude=45.34)
    other_type = incident(external_id="D4", event_type="Battles", sub_event_type="Armed clash")
    resp = await post(client, writer, json.dumps([near, far, other_type]), "application/json")
    report = resp.json()
    assert report["inserted"] == 3
    assert report["possible_duplicates"] == [
        {"row": 1, "external_id": "D2", "possible_duplicates": [first.json()["id"]]}
    ]
    assert (await by_external_id(client, "D2"))["possible_duplicates"] == [first.json()["id"]]
    assert (await by_external_id(client, "D3"))["possible_duplicates"] == []
    single = await client.post("/v1/incidents", json=incident(external_id="D5"), headers=writer)
    assert first.json()["id"] in single.json()["possible_duplicates"]


async def test_read_key_cannot_bulk(client: httpx.AsyncClient, read_key: str) -> None:
    resp = await post(client, {"Authorization": f"Bearer {read_key}"}, "[]", "application/json")
    assert resp.status_code == 403


async def test_nested_features_keys_are_data(
    client: httpx.AsyncClient, writer: dict[str, str]
) -> None:
    """Only the FeatureCollection's own `features` is the array of rows: a `features` key
    earlier in the document (in a foreign member, or inside a feature) is data."""
    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [45.39, 34.35]},
        "properties": {
            **{
                k: v
                for k, v in incident(external_id="NEST1").items()
                if k not in ("latitude", "longitude")
            },
            "tags": ["features"],
        },
    }
    fc = {
        "type": "FeatureCollection",
        "metadata": {"features": [{"type": "Feature", "properties": {"event_type": "nope"}}]},
        "features": [feature],
    }
    resp = await post(client, writer, json.dumps(fc), "application/geo+json")
    assert resp.status_code == 200, resp.text
    assert (resp.json()["received"], resp.json()["inserted"], resp.json()["failed"]) == (1, 1, 0)
    assert (await by_external_id(client, "NEST1"))["tags"] == ["features"]
    no_array = {"type": "FeatureCollection", "metadata": {"features": []}}
    resp = await post(client, writer, json.dumps(no_array), "application/geo+json")
    assert resp.status_code == 400 and "features" in resp.json()["detail"]


# Incidents missing what enrichment fills in: the point alone; a country name; an alpha-2
# code; a country other than the point's (admin-1 must not come from the point's country).
ENRICHED = [
    {"latitude": 34.35, "longitude": 45.39},
    {"latitude": 34.35, "longitude": 45.39, "country": "Iraq"},
    {"latitude": 36.2, "longitude": 37.15, "country_code": "SY"},
    {"latitude": 34.35, "longitude": 45.39, "country": "Syria"},
    {"latitude": 34.35, "longitude": 45.39, "country_code": "IRN", "admin2": "Qasr-e Shirin"},
]


async def test_single_and_bulk_writes_fill_in_the_same_fields(
    client: httpx.AsyncClient, writer: dict[str, str], db: asyncpg.Connection
) -> None:
    base = {"event_date": "2021-03-04", "event_type": "Battles", "actor1": "Test actor"}
    for n, extra in enumerate(ENRICHED):
        single = await client.post(
            "/v1/incidents", json={**base, **extra, "external_id": f"ENR-S{n}"}, headers=writer
        )
        assert single.status_code == 201, single.text
    ndjson = "".join(
        json.dumps({**base, **extra, "external_id": f"ENR-B{n}"}) + "\n"
        for n, extra in enumerate(ENRICHED)
    )
    resp = await post(client, writer, ndjson, "application/x-ndjson")
    assert resp.json()["inserted"] == len(ENRICHED), resp.text
    columns = "country, country_code, admin1, admin2, geo_precision, disorder_type"
    for n in range(len(ENRICHED)):
        rows = await db.fetch(
            f"SELECT external_id, {columns} FROM incidents WHERE external_id = ANY($1) "
            "ORDER BY external_id",
            [f"ENR-B{n}", f"ENR-S{n}"],
        )
        bulk_row, single_row = (dict(r) for r in rows)
        bulk_row.pop("external_id"), single_row.pop("external_id")
        assert bulk_row == single_row, (ENRICHED[n], bulk_row, single_row)
    filled = {
        r["external_id"]: dict(r)
        for r in await db.fetch(
            f"SELECT external_id, {columns} FROM incidents WHERE external_id LIKE 'ENR-S%'"
        )
    }
    assert (filled["ENR-S0"]["country_code"], filled["ENR-S0"]["admin1"]) == ("IRQ", "Diyala")
    assert filled["ENR-S2"]["country_code"] == "SYR" and filled["ENR-S2"]["country"]
    assert filled["ENR-S3"]["admin1"] is None  # Diyala is not in Syria
    bad = await client.post(
        "/v1/incidents", json={**base, **ENRICHED[0], "country_code": "QQ"}, headers=writer
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "country_code"
    resp = await post(
        client,
        writer,
        json.dumps({**base, **ENRICHED[0], "country_code": "QQ"}) + "\n",
        "application/x-ndjson",
    )
    assert resp.json()["failed"] == 1
    assert resp.json()["errors"][0]["errors"][0]["field"] == "country_code"
