"""`as_of`: every read answers as the store stood at an instant.

A scripted history (create, patch twice, move, delete, re-create by upsert) is asked about at
every instant between its steps, through every read surface (list, polygon search, get-one,
stats, grid, tiles, OGC API items and item, the ACLED API, `incidents export --as-of`); each
answer must be the state the script says. Cursors stay tied to their instant while writes go
on."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import mapbox_vector_tile
import pytest

from tests.conftest import incident
from tests.ingest.test_import_cli import cli
from tests.stats.test_dashboards import tile_for

pytestmark = pytest.mark.usefixtures("gazetteer", "clean_incidents")
KHANAQIN = (34.3482, 45.39065)
FAR = (33.30, 44.40)  # Baghdad, ~140 km away
TILE = tile_for(*KHANAQIN, 9)
SQUARE = {  # a polygon around Khanaqin
    "type": "Polygon",
    "coordinates": [[[45.2, 34.2], [45.6, 34.2], [45.6, 34.5], [45.2, 34.5], [45.2, 34.2]]],
}


@dataclass
class State:
    """What the store holds at an instant: external_id -> (fatalities, latitude, notes)."""

    at: dt.datetime
    live: dict[str, tuple[int, float, str]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)

    def near_khanaqin(self) -> set[str]:
        return {k for k, (_, lat, _) in self.live.items() if abs(lat - KHANAQIN[0]) < 0.5}


async def _now(db: asyncpg.Connection) -> dt.datetime:
    return await db.fetchval("SELECT clock_timestamp()")  # type: ignore[no-any-return]


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


async def _script(
    client: httpx.AsyncClient, db: asyncpg.Connection, writer: dict[str, str]
) -> tuple[list[State], dict[str, int]]:
    """Runs the history and returns the state after each step, with the instant after it."""
    states = [State(at=await _now(db))]  # before the first write: nothing

    def step(**changes: Any) -> State:
        prev = states[-1]
        return State(at=prev.at, live=dict(prev.live), deleted=set(prev.deleted), **changes)

    ids: dict[str, int] = {}
    for ext, fat in (("A", 1), ("B", 2)):
        body = incident(
            external_id=ext, fatalities=fat, latitude=KHANAQIN[0], longitude=KHANAQIN[1]
        )
        body["notes"] = "first"
        resp = await client.post("/v1/incidents", json=body, headers=writer)
        assert resp.status_code == 201, resp.text
        ids[ext] = int(resp.json()["id"])
    s = step()
    s.live.update({"A": (1, KHANAQIN[0], "first"), "B": (2, KHANAQIN[0], "first")})
    s.at = await _now(db)
    states.append(s)

    path = f"/v1/incidents/{ids['A']}"
    for changes, value in (
        ({"fatalities": 5}, (5, KHANAQIN[0], "first")),
        ({"notes": "second"}, (5, KHANAQIN[0], "second")),
        ({"latitude": FAR[0], "longitude": FAR[1]}, (5, FAR[0], "second")),
    ):
        resp = await client.patch(path, json=changes, headers=writer)
        assert resp.status_code == 200, resp.text
        s = step()
        s.live["A"] = value
        s.at = await _now(db)
        states.append(s)

    resp = await client.delete(path, headers=writer)
    assert resp.status_code == 204
    s = step()
    del s.live["A"]
    s.deleted.add("A")
    s.at = await _now(db)
    states.append(s)

    again = incident(external_id="A", fatalities=7, latitude=KHANAQIN[0], longitude=KHANAQIN[1])
    again["notes"] = "again"
    resp = await client.post(
        "/v1/incidents/bulk",
        content=json.dumps(again) + "\n",
        headers={**writer, "Content-Type": "application/x-ndjson"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["updated"] == 1, resp.json()  # the same incident, come back
    s = step()
    s.live["A"] = (7, KHANAQIN[0], "again")
    s.deleted.discard("A")
    s.at = await _now(db)
    states.append(s)
    return states, ids


def _items(resp: httpx.Response) -> dict[str, tuple[int, float, str]]:
    assert resp.status_code == 200, resp.text
    return {
        i["external_id"]: (i["fatalities"], round(i["latitude"], 4), i["notes"])
        for i in resp.json()["items"]
    }


def _rounded(live: dict[str, tuple[int, float, str]]) -> dict[str, tuple[int, float, str]]:
    return {k: (f, round(lat, 4), n) for k, (f, lat, n) in live.items()}


async def test_scripted_history_at_every_instant(
    client: httpx.AsyncClient, db: asyncpg.Connection, writer: dict[str, str], database_url: str
) -> None:
    states, ids = await _script(client, db, writer)
    for n, state in enumerate(states):
        at = _iso(state.at)
        want = _rounded(state.live)
        label = f"step {n} ({at})"

        # The list, with every format's JSON shape, and a radius search.
        resp = await client.get("/v1/incidents", params={"as_of": at})
        assert _items(resp) == want, label
        assert resp.json()["meta"]["as_of"] == state.at.astimezone(dt.UTC).isoformat()
        near = await client.get(
            "/v1/incidents", params={"as_of": at, "near": "Khanaqin", "radius_km": 25}
        )
        assert set(_items(near)) == state.near_khanaqin(), label
        geo = await client.get("/v1/incidents", params={"as_of": at, "format": "geojson"})
        assert {f["properties"]["external_id"] for f in geo.json()["features"]} == set(want)

        # The polygon search (the instant in the body).
        resp = await client.post("/v1/incidents/search", json={"geometry": SQUARE, "as_of": at})
        assert set(_items(resp)) == state.near_khanaqin(), label

        # One incident: that version, 404 before it existed, 410 once deleted.
        for ext, incident_id in ids.items():
            one = await client.get(f"/v1/incidents/{incident_id}", params={"as_of": at})
            if ext in state.live:
                assert one.status_code == 200, (label, one.text)
                doc = one.json()
                assert (doc["fatalities"], round(doc["latitude"], 4), doc["notes"]) == want[ext]
            elif ext in state.deleted:
                assert one.status_code == 410, (label, one.text)
                assert one.headers["content-type"].startswith("application/problem+json")
                assert one.json()["deleted_at"]
            else:
                assert one.status_code == 404, (label, one.text)

        # Stats and the grid count the incidents then (no rollup keeps the past).
        stats = await client.get("/v1/stats", params={"as_of": at, "group_by": "event_type"})
        assert stats.status_code == 200, stats.text
        assert sum(r["incidents"] for r in stats.json()["items"]) == len(want), label
        assert sum(r["fatalities"] for r in stats.json()["items"]) == sum(
            v[0] for v in want.values()
        )
        assert stats.json()["meta"]["as_of"] is not None
        grid = await client.get(
            "/v1/stats/grid", params={"as_of": at, "cell_km": 25, "bbox": "35,29,50,38"}
        )
        assert grid.status_code == 200, grid.text
        assert sum(c["properties"]["incidents"] for c in grid.json()["features"]) == len(want)

        # A vector tile (zoom 9 around Khanaqin): one feature per incident there.
        tile = await client.get(f"/v1/tiles/9/{TILE[0]}/{TILE[1]}.mvt", params={"as_of": at})
        assert tile.status_code == 200
        layer = mapbox_vector_tile.decode(tile.content).get("incidents", {"features": []})
        by_id = {str(v): k for k, v in ids.items()}
        assert {by_id[f["properties"]["id"]] for f in layer["features"]} == (
            state.near_khanaqin()
        ), label

        # OGC API - Features: items and one item.
        ogc = await client.get("/ogc/collections/incidents/items", params={"as_of": at})
        assert ogc.status_code == 200, ogc.text
        assert {f["properties"]["external_id"] for f in ogc.json()["features"]} == set(want)
        assert ogc.json()["as_of"] == state.at.astimezone(dt.UTC).isoformat()
        item = await client.get(
            f"/ogc/collections/incidents/items/{ids['A']}", params={"as_of": at}
        )
        expected_status = 200 if "A" in state.live else 410 if "A" in state.deleted else 404
        assert item.status_code == expected_status, (label, item.text)

        # The ACLED-compatible API.
        acled = await client.get("/api/acled/read", params={"as_of": at, "limit": 100})
        assert acled.status_code == 200, acled.text
        rows = acled.json()["data"]
        assert acled.json()["as_of"] == state.at.astimezone(dt.UTC).isoformat()
        assert {(r["event_id_cnty"], int(r["fatalities"])) for r in rows} == {
            (k, v[0]) for k, v in want.items()
        }, label

    # The command line, at the instant after the move (A far away, with its patched notes).
    moved = states[4]
    out = cli(database_url, "export", "--format", "csv", "--as-of", _iso(moved.at))
    assert out.returncode == 0, out.stderr
    exported = {r["event_id_cnty"]: r for r in csv.DictReader(io.StringIO(out.stdout))}
    assert set(exported) == set(moved.live)
    assert round(float(exported["A"]["latitude"]), 4) == round(FAR[0], 4)
    assert exported["A"]["notes"] == "second"


async def test_as_of_is_checked(client: httpx.AsyncClient) -> None:
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    for params in ({"as_of": future}, {"as_of": "2025-03-01T00:00:00"}, {"as_of": "yesterday"}):
        resp = await client.get("/v1/incidents", params=params)
        assert resp.status_code == 422, (params, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert "as_of" in resp.text
    assert (await client.get("/v1/incidents/1", params={"as_of": future})).status_code == 422
    ogc = await client.get("/ogc/collections/incidents/items", params={"as_of": future})
    assert ogc.status_code == 400 and "as_of" in ogc.text  # OGC API's own error code
    item = await client.get("/ogc/collections/incidents/items/1", params={"as_of": "nope"})
    assert item.status_code == 400 and "as_of" in item.text
    # Before the first write: an empty answer, not an error.
    resp = await client.get("/v1/incidents", params={"as_of": "1990-01-01T00:00:00Z"})
    assert resp.status_code == 200 and resp.json()["items"] == []
    # Alerts follow the store from now on.
    stream = await client.get("/v1/stream", params={"as_of": "2025-01-01T00:00:00Z"})
    assert stream.status_code == 422 and "as_of" in stream.text


async def test_cursors_stay_at_their_instant_while_writes_go_on(
    client: httpx.AsyncClient, db: asyncpg.Connection, writer: dict[str, str]
) -> None:
    created = []
    for n in range(24):
        body = incident(external_id=f"P{n:02d}", fatalities=n, event_date=f"2024-02-{n + 1:02d}")
        resp = await client.post("/v1/incidents", json=body, headers=writer)
        assert resp.status_code == 201, resp.text
        created.append(int(resp.json()["id"]))
    at = _iso(await _now(db))
    expected = {f"P{n:02d}": n for n in range(24)}

    seen: dict[str, int] = {}
    params: dict[str, Any] = {"as_of": at, "limit": 5, "sort": "-event_date"}
    page = 0
    while True:
        resp = await client.get("/v1/incidents", params=params)
        assert resp.status_code == 200, resp.text
        for item in resp.json()["items"]:
            assert item["external_id"] not in seen, "a row came twice"
            seen[item["external_id"]] = item["fatalities"]
        # Between pages: new incidents (on the dates still to come), patches, deletes.
        await client.post(
            "/v1/incidents",
            json=incident(external_id=f"Q{page}", event_date="2024-02-01"),
            headers=writer,
        )
        victim = created[page]
        await client.patch(f"/v1/incidents/{victim}", json={"fatalities": 999}, headers=writer)
        await client.delete(f"/v1/incidents/{created[-1 - page]}", headers=writer)
        page += 1
        cursor = resp.json()["next_cursor"]
        if cursor is None:
            break
        params["cursor"] = cursor
        # The cursor is tied to its instant: without it (or at another) it is refused.
        other = await client.get("/v1/incidents", params={"limit": 5, "cursor": cursor})
        assert other.status_code == 400, other.text
    assert seen == expected
    # Every order pages the same instant, in its order (the halves' pages merged by keys).
    orders = {
        "-fatalities": sorted(expected, key=lambda k: -expected[k]),
        "event_date": sorted(expected),  # P00 is the earliest date
        "-event_date": sorted(expected, reverse=True),
        "id": sorted(expected),  # created in that order
        "distance": None,  # every one at the same point: ties broken by id
    }
    for sort, want in orders.items():
        params = {"as_of": at, "limit": 4, "sort": sort}
        if sort == "distance":
            params |= {"near": "34.3482,45.39065", "radius_km": 50}
        got: list[str] = []
        while True:
            resp = await client.get("/v1/incidents", params=params)
            assert resp.status_code == 200, (sort, resp.text)
            got += [i["external_id"] for i in resp.json()["items"]]
            if not resp.json()["next_cursor"]:
                break
            params["cursor"] = resp.json()["next_cursor"]
        if want is None:
            assert set(got) == set(expected) and len(got) == len(expected), sort
        else:
            assert got == want, sort
    # And now the live store differs.
    live = await client.get("/v1/incidents", params={"limit": 1000})
    assert {i["external_id"] for i in live.json()["items"]} != set(expected)


async def test_as_of_plans_use_the_history_indexes(db: asyncpg.Connection) -> None:
    """Radius and get-one questions about the past read indexes on both tables (20,000
    incidents written in January 2024, each changed since: the past is in the history)."""
    from app.search.filters import OutputFormat, RawFilter, Sort
    from app.search.resolve import resolve_filter
    from app.search.service import build_query

    await db.execute(
        """
        INSERT INTO incidents (event_date, event_type, fatalities, geom, created_at, updated_at)
        SELECT date '2020-01-01' + (n % 1500), 'Battles', n % 7,
               ST_SetSRID(ST_MakePoint(38 + (n % 997) * 0.01, 30 + (n % 701) * 0.01), 4326),
               timestamptz '2024-01-01' + n * interval '1 minute',
               timestamptz '2024-01-01' + n * interval '1 minute'
        FROM generate_series(1, 20000) n
        """
    )
    await db.execute(
        "UPDATE incidents SET fatalities = fatalities + 1, version = version + 1, "
        "updated_at = now()"
    )
    await db.execute("ANALYZE incidents")
    await db.execute("ANALYZE incident_history")
    at = dt.datetime(2024, 1, 8, tzinfo=dt.UTC)
    f = await resolve_filter(db, RawFilter(near="34.3482,45.39065", radius_km=25, as_of=at))
    sql, values, _ = build_query(f, sort=Sort.newest, fmt=OutputFormat.json, after=None, limit=100)
    plan = "\n".join(r[0] for r in await db.fetch(f"EXPLAIN {sql}", *values))
    # Each half is its own page query: the history by its (geom, valid) index, the current
    # rows (all written since that instant) by updated_at; the two pages merged.
    assert "incident_history_geom_valid" in plan, plan
    assert "incidents_updated_at" in plan or "incidents_geom_gist" in plan, plan
    assert "Merge Append" in plan and "Seq Scan" not in plan, plan
    one = "\n".join(
        r[0]
        for r in await db.fetch(
            "EXPLAIN SELECT * FROM incidents_as_of($2::timestamptz) i WHERE i.id = $1", 1, at
        )
    )
    assert "incident_history_pkey" in one and "Seq Scan" not in one, one
