"""OGC API - Features at /ogc: the requirements a client or a conformance suite checks offline
(landing links, conformance classes, collection, items, next links, bad parameters), CQL2
filters against the same search on /v1, and Part 4 edits in the shapes QGIS sends them."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import insert_incidents

pytestmark = pytest.mark.usefixtures("clean_incidents")

ITEMS = "/ogc/collections/incidents/items"
GEOJSON = "application/geo+json"
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def rows(n: int = 60) -> list[dict[str, Any]]:
    """Incidents around Khanaqin and Baghdad, spread over 2019-2021, varied types."""
    out = []
    types = [
        ("Battles", "Armed clash"),
        ("Violence against civilians", "Attack"),
        ("Explosions/Remote violence", "Air/drone strike"),
        ("Protests", "Peaceful protest"),
    ]
    for k in range(n):
        event_type, sub = types[k % 4]
        near_khanaqin = k % 3 != 0
        out.append(
            {
                "event_date": dt.date(2019, 1, 1) + dt.timedelta(days=k * 17),
                "event_type": event_type,
                "sub_event_type": sub,
                "actor1": "Islamic State (Iraq)" if k % 5 == 0 else "Military Forces of Iraq",
                "fatalities": k % 7,
                "admin1": "Diyala" if near_khanaqin else "Baghdad",
                "location": f"Place {k}",
                "latitude": (34.35 if near_khanaqin else 33.31) + (k % 10) * 0.01,
                "longitude": (45.39 if near_khanaqin else 44.37) + (k % 6) * 0.01,
                "notes": "an attack on a checkpoint" if k % 4 == 1 else "clashes reported",
                "external_id": f"OGC{k}",
            }
        )
    return out


@pytest.fixture
async def loaded(db: asyncpg.Connection) -> list[int]:
    ids = await insert_incidents(db, rows())
    await db.execute("SELECT incident_rollups_compact()")
    return ids


async def all_pages(client: httpx.AsyncClient, url: str) -> list[dict[str, Any]]:
    features: list[dict[str, Any]] = []
    while url:
        resp = await client.get(url)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"].startswith(GEOJSON)
        page = resp.json()
        assert page["numberReturned"] == len(page["features"])
        features += page["features"]
        nxt = [link for link in page["links"] if link["rel"] == "next"]
        assert all(link["type"] == GEOJSON for link in nxt)
        url = nxt[0]["href"].removeprefix("http://test") if nxt else ""
    return features


async def v1_ids(client: httpx.AsyncClient, **params: Any) -> list[str]:
    resp = await client.get("/v1/incidents", params={"limit": 10000, **params})
    assert resp.status_code == 200, resp.text
    return [i["id"] for i in resp.json()["items"]]


async def test_landing_page_and_conformance(client: httpx.AsyncClient) -> None:
    resp = await client.get("/ogc")
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    links = {link["rel"]: link for link in resp.json()["links"]}
    assert {"self", "service-desc", "service-doc", "conformance", "data"} <= set(links)
    assert links["service-desc"]["type"] == "application/vnd.oai.openapi+json;version=3.0"
    assert links["service-doc"]["type"] == "text/html"
    assert links["data"]["href"] == "http://test/ogc/collections"  # absolute, as clients need
    assert all(link["href"].startswith("http://test/") for link in links.values())
    api = await client.get(links["service-desc"]["href"])
    assert api.headers["content-type"] == "application/vnd.oai.openapi+json;version=3.0"
    doc = api.json()
    assert doc["openapi"].startswith("3.0") and doc["servers"][0]["url"] == "http://test/ogc"
    limit = doc["components"]["parameters"]["limit"]["schema"]
    assert (limit["default"], limit["maximum"], limit["minimum"]) == (100, 10000, 1)
    items = doc["paths"]["/collections/incidents/items"]["get"]["parameters"]
    names = {p["$ref"].rsplit("/", 1)[1] for p in items}
    assert {"bbox", "datetime", "limit", "filter", "filter-lang", "near", "actor"} <= names
    simple = doc["components"]["parameters"]["source_scale"]
    assert (simple["in"], simple["style"], simple["explode"]) == ("query", "form", False)
    assert simple["schema"]["type"] == "string"
    conformance = (await client.get(links["conformance"]["href"])).json()["conformsTo"]
    for cls in (
        "ogcapi-features-1/1.0/conf/core",
        "ogcapi-features-1/1.0/conf/geojson",
        "ogcapi-features-1/1.0/conf/oas30",
        "ogcapi-features-1/1.0/conf/html",
        "ogcapi-features-3/1.0/conf/filter",
        "ogcapi-features-3/1.0/conf/features-filter",
        "ogcapi-features-3/1.0/conf/queryables",
        "cql2/1.0/conf/basic-cql2",
        "cql2/1.0/conf/cql2-text",
        "cql2/1.0/conf/cql2-json",
        "cql2/1.0/conf/basic-spatial-functions",
        "cql2/1.0/conf/case-insensitive-comparison",
        "ogcapi-features-4/1.0/conf/create-replace-delete",
        "ogcapi-features-4/1.0/conf/update",
    ):
        assert f"http://www.opengis.net/spec/{cls}" in conformance, cls


async def test_collection_and_queryables(client: httpx.AsyncClient, loaded: list[int]) -> None:
    listed = (await client.get("/ogc/collections")).json()["collections"]
    assert [c["id"] for c in listed] == ["incidents"]
    collection = (await client.get("/ogc/collections/incidents")).json()
    assert collection["itemType"] == "feature" and collection["crs"] == [CRS84]
    for key in ("id", "title", "itemType", "extent"):
        assert collection[key] == listed[0][key]
    ((x0, y0, x1, y1),) = collection["extent"]["spatial"]["bbox"]
    for row in rows():
        assert x0 <= row["longitude"] <= x1 and y0 <= row["latitude"] <= y1
    ((start, end),) = collection["extent"]["temporal"]["interval"]
    assert start.startswith("2019-01-01") and end.startswith(
        (dt.date(2019, 1, 1) + dt.timedelta(days=59 * 17)).isoformat()
    )
    rels = {(link["rel"], link["type"]): link for link in collection["links"]}
    assert "?" not in rels[("items", GEOJSON)]["href"] and ("items", "text/html") in rels
    queryables_link = rels[
        ("http://www.opengis.net/def/rel/ogc/1.0/queryables", "application/schema+json")
    ]
    resp = await client.get(queryables_link["href"])
    assert resp.headers["content-type"] == "application/schema+json"
    schema = resp.json()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == queryables_link["href"] and schema["type"] == "object"
    props = schema["properties"]
    assert props["geometry"]["$ref"].startswith("https://geojson.org/schema/")
    assert props["event_date"] == {
        "title": "event_date",
        "type": "string",
        "format": "date",
        "description": props["event_date"]["description"],
    }
    assert props["fatalities"]["type"] == "integer" and props["civilian_targeting"]["type"] == (
        "boolean"
    )
    assert "latitude" not in props and "id" not in props
    assert (await client.get("/ogc/collections/events")).status_code == 404


@pytest.mark.usefixtures("gazetteer")
async def test_items_match_the_v1_search(client: httpx.AsyncClient, loaded: list[int]) -> None:
    features = await all_pages(client, f"{ITEMS}?limit=7")
    assert [f["id"] for f in features] == await v1_ids(client)
    feature = features[0]
    assert feature["type"] == "Feature" and feature["geometry"]["type"] == "Point"
    assert {"id", "latitude", "longitude"}.isdisjoint(feature["properties"])
    one = await client.get(f"{ITEMS}/{feature['id']}")
    assert one.status_code == 200 and one.headers["content-type"] == GEOJSON
    single = one.json()
    assert {link["rel"] for link in single.pop("links")} == {"self", "alternate", "collection"}
    assert single == feature and one.headers["etag"] == '"v1"'
    # bbox, datetime (instant, interval, open), simple queryables, our own parameters.
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"bbox": "45.3,34.3,45.5,34.5"}, {"bbox": "45.3,34.3,45.5,34.5"}),
        ({"bbox": "45.3,34.3,0,45.5,34.5,100"}, {"bbox": "45.3,34.3,45.5,34.5"}),
        ({"datetime": "2019-01-18"}, {"start": "2019-01-18", "end": "2019-01-18"}),
        ({"datetime": "2019-03-01/2020-02-29"}, {"start": "2019-03-01", "end": "2020-02-29"}),
        ({"datetime": "../2019-06-30"}, {"end": "2019-06-30"}),
        ({"datetime": "2020-06-01T10:00:00Z/.."}, {"start": "2020-06-01"}),
        ({"datetime": "0000-01-01T00:00:00Z/9999-12-31T00:00:00Z"}, {}),  # QGIS's open bounds
        ({"event_type": "Battles"}, {"event_type": "Battles"}),
        ({"near": "Khanaqin", "radius_km": "5"}, {"near": "Khanaqin", "radius_km": 5}),
        ({"actor": "ISIS"}, {"actor": "ISIS"}),
        ({"admin1": "diyala", "q": "checkpoint"}, {"admin1": "diyala", "q": "checkpoint"}),
    ]
    for ogc_params, v1_params in cases:
        query = "&".join(f"{k}={v}" for k, v in ogc_params.items())
        got = [f["id"] for f in await all_pages(client, f"{ITEMS}?limit=9&{query}")]
        assert got == await v1_ids(client, **v1_params), ogc_params
        assert got, ogc_params
    # numberMatched: exact from the rollup when it answers the filter, otherwise absent.
    whole = (await client.get(f"{ITEMS}?limit=1")).json()
    assert whole["numberMatched"] == len(rows()) and whole["numberReturned"] == 1
    typed = (await client.get(f"{ITEMS}?limit=1&event_type=Battles&datetime=2019-01-05/..")).json()
    assert typed["numberMatched"] == len(
        await v1_ids(client, event_type="Battles", start="2019-01-05")
    )
    boxed = (await client.get(f"{ITEMS}?limit=1&bbox=45.3,34.3,45.5,34.5")).json()
    assert "numberMatched" not in boxed
    assert boxed["timeStamp"].endswith("Z")


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("bbox=1,2,3,4,5", "bbox"),
        ("bbox=a,b,c,d", "bbox"),
        ("bbox=10,20,5,95", "bbox"),
        ("datetime=2020-13-01", "datetime"),
        ("datetime=2020-01-05/2020-01-01", "datetime"),
        ("datetime=yesterday", "datetime"),
        ("limit=0", "limit"),
        ("limit=10001", "limit"),
        ("limit=ten", "limit"),
        ("bbox-crs=http://www.opengis.net/def/crs/EPSG/0/4326&bbox=1,2,3,4", "bbox-crs"),
        ("crs=http://www.opengis.net/def/crs/EPSG/0/3857", "crs"),
        ("filter-lang=cql-text&filter=a=1", "filter-lang"),
        ("filter=event_type%20=", "filter"),
        ("filter=nope%20=%201", "filter"),
        ("filter=fatalities%20=%20'many'", "filter"),
        ("filter=event_type%20%3E%205", "filter"),
        ("fatalities=many", "fatalities"),
        ("foo=1", "foo"),
        ("f=xml", "f"),
        ("event_type=Parade", "event_type"),
        ("limit=5&limit=6", "limit"),
    ],
)
async def test_bad_parameters_are_400_naming_them(
    client: httpx.AsyncClient, query: str, parameter: str
) -> None:
    resp = await client.get(f"{ITEMS}?{query}")
    assert resp.status_code == 400, (query, resp.text)
    assert resp.headers["content-type"] == "application/problem+json"
    problem = resp.json()
    assert problem["errors"][0]["field"] == parameter, problem
    assert (await client.get("/ogc/conformance?foo=1")).status_code == 400


def cql2_text(expression: str) -> str:
    return f"{ITEMS}?limit=1000&filter={httpx.QueryParams({'x': expression})['x']}"


async def matching(client: httpx.AsyncClient, url: str, **params: Any) -> list[str]:
    resp = await client.get(url, params=params)
    assert resp.status_code == 200, resp.text
    return sorted(f["id"] for f in resp.json()["features"])


async def test_cql2_filters_match_a_direct_query(
    client: httpx.AsyncClient, db: asyncpg.Connection, loaded: list[int]
) -> None:
    cases = {
        "event_type = 'Battles' AND fatalities > 2": "event_type = 'Battles' AND fatalities > 2",
        "fatalities >= 3 OR event_type <> 'Protests'": (
            "fatalities >= 3 OR event_type <> 'Protests'"
        ),
        "NOT (fatalities = 0)": "NOT (fatalities = 0)",
        "location LIKE 'Place 1%'": "location LIKE 'Place 1%'",
        "CASEI(admin1) = casei('DIYALA')": "lower(admin1) = 'diyala'",
        "CASEI(notes) LIKE CASEI('%CHECKPOINT%')": "notes ILIKE '%checkpoint%'",
        "fatalities BETWEEN 2 AND 4": "fatalities BETWEEN 2 AND 4",
        "event_type IN ('Riots', 'Protests')": "event_type IN ('Riots', 'Protests')",
        "event_date_end IS NULL AND admin2 IS NULL": "true",
        "civilian_targeting = false": "NOT civilian_targeting",
        "event_date > DATE('2020-06-01')": "event_date > '2020-06-01'",
        "T_BEFORE(event_date, DATE('2019-06-01'))": "event_date < '2019-06-01'",
        "T_AFTER(event_date, TIMESTAMP('2020-12-01T00:00:00Z'))": "event_date > '2020-12-01'",
        "T_INTERSECTS(event_date, INTERVAL('2019-05-01', '2019-08-31'))": (
            "event_date BETWEEN '2019-05-01' AND '2019-08-31'"
        ),
        "T_INTERSECTS(event_date, INTERVAL('..', '2019-03-01'))": "event_date <= '2019-03-01'",
        "S_INTERSECTS(geometry, BBOX(45.3, 34.3, 45.45, 34.45))": (
            "geom && ST_MakeEnvelope(45.3, 34.3, 45.45, 34.45, 4326)"
        ),
        "S_WITHIN(geometry, POLYGON((44 33, 45 33, 45 34, 44 34, 44 33)))": (
            "ST_Within(geom, ST_GeomFromText('POLYGON((44 33, 45 33, 45 34, 44 34, 44 33))', 4326))"
        ),
        "S_INTERSECTS(geometry, POINT(45.39 34.35))": (
            "ST_Intersects(geom, ST_SetSRID(ST_MakePoint(45.39, 34.35), 4326))"
        ),
        "ACCENTI(admin1) = ACCENTI('Diyālá')": "admin1 = 'Diyala'",
    }
    for expression, sql in cases.items():
        expected = sorted(
            str(r["id"])
            for r in await db.fetch(
                f"SELECT id FROM incidents WHERE deleted_at IS NULL AND ({sql})"
            )
        )
        got = await matching(client, ITEMS, limit=1000, filter=expression)
        assert got == expected, expression
        assert expected or expression.startswith("S_INTERSECTS(geometry, POINT"), expression
    # cql2-json: the same tree, and combined with the other parameters (AND).
    tree = {
        "op": "and",
        "args": [
            {"op": "=", "args": [{"property": "event_type"}, "Battles"]},
            {
                "op": "s_intersects",
                "args": [{"property": "geometry"}, {"bbox": [45.3, 34.3, 45.5, 34.5]}],
            },
        ],
    }
    got = await matching(
        client, ITEMS, limit=1000, filter=json.dumps(tree), **{"filter-lang": "cql2-json"}
    )
    assert got == await matching(
        client, ITEMS, limit=1000, event_type="Battles", bbox="45.3,34.3,45.5,34.5"
    )
    assert got
    both = await matching(
        client, ITEMS, limit=1000, filter="fatalities > 3", datetime="2019-01-01/2019-12-31"
    )
    direct = sorted(
        str(r["id"])
        for r in await db.fetch(
            "SELECT id FROM incidents WHERE fatalities > 3 AND event_date <= '2019-12-31'"
        )
    )
    assert both == direct
    # Paging a filtered search: next links carry the filter, pages never overlap.
    paged = await all_pages(client, cql2_text("fatalities > 1").replace("limit=1000", "limit=4"))
    assert sorted(f["id"] for f in paged) == await matching(
        client, ITEMS, limit=1000, filter="fatalities > 1"
    )
    syntax = await client.get(ITEMS, params={"filter": "event_type = 'Battles' AND"})
    assert syntax.status_code == 400 and "1:" in syntax.json()["detail"]  # line:column
    mismatch = await client.get(ITEMS, params={"filter": "event_date > 5"})
    assert mismatch.status_code == 400 and "type mismatch" in mismatch.json()["detail"]


def qgis_style_feature(**properties: Any) -> dict[str, Any]:
    """What QGIS posts: every field of the layer (read-only ones and nulls included)."""
    fields = {
        "external_id": None,
        "event_date": "2021-05-02",
        "event_date_end": None,
        "time_precision": None,
        "disorder_type": None,
        "event_type": "Battles",
        "sub_event_type": "Armed clash",
        "actor1": "Military Forces of Iraq",
        "assoc_actor_1": None,
        "actor2": None,
        "assoc_actor_2": None,
        "civilian_targeting": None,
        "country_code": None,
        "country": "Iraq",
        "admin1": "Diyala",
        "admin2": None,
        "admin3": None,
        "location": "Jalawla",
        "geo_precision": 2,
        "source": "Rudaw",
        "source_scale": None,
        "sources": None,
        "notes": None,
        "fatalities": 3,
        "fatalities_low": None,
        "fatalities_high": None,
        "tags": None,
        "created_at": None,
        "updated_at": None,
        "version": None,
        "possible_duplicates": None,
    }
    fields.update(properties)
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [45.16, 34.27]},
        "properties": fields,
    }


@pytest.mark.usefixtures("gazetteer")
async def test_create_replace_update_delete(
    client: httpx.AsyncClient, writer: dict[str, str], read_key: str
) -> None:
    reader = {"Authorization": f"Bearer {read_key}"}
    # OPTIONS says what the caller's key may do (QGIS decides editability from Allow).
    assert (await client.options(ITEMS)).headers["allow"] == "GET, HEAD, OPTIONS"
    assert (await client.options(ITEMS, headers=reader)).headers["allow"] == "GET, HEAD, OPTIONS"
    assert (await client.options(ITEMS, headers=writer)).headers["allow"] == (
        "GET, HEAD, OPTIONS, POST"
    )
    allow = (await client.options(f"{ITEMS}/unknown_id", headers=writer)).headers["allow"]
    assert allow == "GET, HEAD, OPTIONS, PUT, PATCH, DELETE"
    geo = {**writer, "Content-Type": GEOJSON}
    created = await client.post(ITEMS, content=json.dumps(qgis_style_feature()), headers=geo)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert location.startswith("http://test/ogc/collections/incidents/items/")
    feature_id = location.rsplit("/items/", 1)[1]
    body = created.json()
    assert body["id"] == feature_id and body["properties"]["fatalities"] == 3
    assert body["properties"]["tags"] == [] and body["properties"]["time_precision"] == 1
    assert body["properties"]["country_code"] == "IRQ"  # filled in as on /v1
    assert (await client.post(ITEMS, json=qgis_style_feature())).status_code == 401
    assert (await client.post(ITEMS, json=qgis_style_feature(), headers=reader)).status_code == 403
    # PUT: the whole Feature (QGIS sends the id as a string); absent fields go back to defaults.
    replaced = qgis_style_feature(fatalities=5, notes="revised", source=None)
    replaced["id"] = feature_id
    put = await client.put(f"{ITEMS}/{feature_id}", content=json.dumps(replaced), headers=geo)
    assert put.status_code == 200, put.text
    assert put.json()["properties"]["fatalities"] == 5
    assert put.json()["properties"]["source"] is None and put.headers["etag"] == '"v2"'
    # PATCH: a JSON merge patch; a moved point; a stale If-Match is a 412.
    merge = {**writer, "Content-Type": "application/merge-patch+json"}
    patched = await client.patch(
        f"{ITEMS}/{feature_id}",
        content=json.dumps({"properties": {"fatalities": 6, "notes": None}}),
        headers={**merge, "If-Match": '"v2"'},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["properties"]["fatalities"] == 6
    assert patched.json()["properties"]["notes"] is None
    moved = await client.patch(
        f"{ITEMS}/{feature_id}",
        content=json.dumps({"geometry": {"type": "Point", "coordinates": [45.2, 34.3]}}),
        headers=merge,
    )
    assert moved.json()["geometry"]["coordinates"] == [45.2, 34.3]
    stale = await client.patch(
        f"{ITEMS}/{feature_id}",
        json={"properties": {"fatalities": 1}},
        headers={**writer, "If-Match": '"v1"'},
    )
    assert stale.status_code == 412
    bad = await client.patch(
        f"{ITEMS}/{feature_id}", json={"properties": {"fatalities": -1}}, headers=writer
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "properties.fatalities"
    unknown = await client.post(ITEMS, json=qgis_style_feature(weapon="rifle"), headers=writer)
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["field"] == "properties.weapon"
    not_feature = await client.post(ITEMS, json={"op": "=", "args": []}, headers=writer)
    assert not_feature.status_code == 400
    # History and the change feed saw every edit; DELETE keeps it in history.
    revisions = (await client.get(f"/v1/incidents/{feature_id}/revisions")).json()["items"]
    assert [r["op"] for r in revisions] == ["create", "update", "update", "update"]
    assert (await client.delete(f"{ITEMS}/{feature_id}", headers=writer)).status_code == 204
    assert (await client.get(f"{ITEMS}/{feature_id}")).status_code == 404
    assert (await client.delete(f"{ITEMS}/{feature_id}", headers=writer)).status_code == 404
    feed = (await client.get("/v1/changes", params={"limit": 10000})).json()["items"]
    mine = [c["op"] for c in feed if c["id"] == feature_id]
    assert mine == ["create", "update", "update", "update", "delete"]


async def test_html_pages(client: httpx.AsyncClient, loaded: list[int]) -> None:
    browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for url in ("/ogc", "/ogc/collections/incidents", f"{ITEMS}?limit=5", "/ogc/conformance"):
        resp = await client.get(url, headers=browser)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
        assert (
            "<h1>" in resp.text and "script-src 'self'" in resp.headers["content-security-policy"]
        )
    page = await client.get(f"{ITEMS}?limit=5&f=html")
    assert "/map/assets/maplibre-gl.js" in page.text and '"FeatureCollection"' in page.text
    assert (await client.get(f"{ITEMS}?limit=5", headers={"Accept": "*/*"})).headers[
        "content-type"
    ] == GEOJSON
    script = await client.get("/ogc/assets/features.js")
    assert script.status_code == 200 and "maplibregl" in script.text
