"""Matching in the database: a subscription hears of exactly what a search with its filter
finds, for bulk writes as for single ones, set-based, through the subscriptions' GiST index."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from app.alerts.matching import (
    FILTERED_BY_MINIMUM,
    FILTERED_BY_VALUE,
    MINIMUM_ATTRIBUTES,
    VALUE_ATTRIBUTES,
)
from app.core.geojson import KHANAQIN_POLYGON
from tests.alerts.receiver import Receiver, eventually
from tests.test_cli import run_cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

FILTERS: list[dict[str, Any]] = [
    {},
    {"near": "34.348,45.391", "radius_km": 25},
    {"near": "34.348,45.391", "radius_km": 60, "event_type": "Battles", "min_fatalities": 3},
    {"bbox": "44.5,33.5,46.0,35.0"},
    {"bbox": "170,-10,-170,10"},  # across the antimeridian: nothing here
    {"geometry": KHANAQIN_POLYGON},
    {"within": "Diyala"},
    {"event_type": "Battles,Explosions/Remote violence"},
    {"sub_event_type": "Armed clash"},
    {"disorder_type": "Political violence"},
    {"admin1": "diyala"},
    {"admin2": "KHANAQIN"},
    {"country": "SY"},
    {"country": "Iraq", "min_fatalities": 5},
    {"actor": "Daesh"},
    {"q": "village"},
    {"start": "2024-02-01", "end": "2024-02-20"},
]
ADMIN = [("Diyala", "Khanaqin"), ("Baghdad", "Karkh"), ("Ninawa", "Mosul")]


def rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        admin1, admin2 = rng.choice(ADMIN)
        syria = rng.random() < 0.25
        event_type, sub_event = rng.choice(
            [
                ("Battles", "Armed clash"),
                ("Explosions/Remote violence", "Air/drone strike"),
                ("Violence against civilians", "Attack"),
            ]
        )
        out.append(
            {
                "external_id": f"match-{seed}-{k}",
                "event_date": f"2024-02-{rng.randint(1, 28):02d}",
                "event_type": event_type,
                "sub_event_type": sub_event,
                "actor1": rng.choice(["Islamic State (Iraq)", "Military Forces of Iraq", None]),
                "fatalities": rng.randint(0, 8),
                "country": "Syria" if syria else "Iraq",
                "admin1": admin1,
                "admin2": admin2,
                "location": "somewhere",
                "latitude": round(rng.uniform(33.0, 36.0), 4),
                "longitude": round(rng.uniform(38.0 if syria else 43.5, 46.0), 4),
                "notes": rng.choice(["Clashes near the village.", "A strike on a road."]),
                "source": "test",
            }
        )
    return out


async def search_ids(api: httpx.AsyncClient, f: dict[str, Any]) -> set[str]:
    if "geometry" in f:
        resp = await api.post("/v1/incidents/search", json=f, params={"limit": 10000})
    else:
        resp = await api.get("/v1/incidents", params={**f, "limit": 10000})
    assert resp.status_code == 200, resp.text
    return {i["id"] for i in resp.json()["items"]}


async def heard(db: asyncpg.Connection, sid: str, op: str) -> set[str]:
    """What the subscription has deliveries for, once the worker has expanded the writes'
    matches."""
    await eventually(lambda: db.fetchval("SELECT NOT EXISTS (SELECT 1 FROM alert_matches)"))
    found = await db.fetch(
        "SELECT r.incident_id::text AS id FROM alert_deliveries d "
        "JOIN incident_revisions r ON r.seq = d.revision_seq "
        "WHERE d.subscription_id = $1 AND r.op = $2",
        sid,
        op,
    )
    return {r["id"] for r in found}


async def bulk(api: httpx.AsyncClient, writer: dict[str, str], body: list[dict[str, Any]]) -> None:
    resp = await api.post(
        "/v1/incidents/bulk",
        content=b"\n".join(orjson.dumps(r) for r in body),
        headers={**writer, "Content-Type": "application/x-ndjson"},
    )
    assert resp.status_code == 200, resp.text


async def test_a_bulk_write_is_heard_exactly_as_a_search_finds_it(
    api: httpx.AsyncClient,
    subscriber: dict[str, str],
    writer: dict[str, str],
    receiver: Receiver,
    db: asyncpg.Connection,
    clean_incidents: None,
    boundaries: dict[str, float],
) -> None:
    subs = []
    for f in FILTERS:
        resp = await api.post(
            "/v1/subscriptions",
            json={"name": str(f)[:100], "filter": f, "webhook_url": receiver.url("/matching")},
            headers=subscriber,
        )
        assert resp.status_code == 201, (f, resp.text)
        subs.append((f, resp.json()["id"]))
    batch = rows(400, seed=1)
    await bulk(api, writer, batch)
    for f, sid in subs:
        expected = await search_ids(api, f)
        assert await heard(db, sid, "create") == expected, f
    assert len(await search_ids(api, {"near": "34.348,45.391", "radius_km": 25})) > 5
    assert len(await search_ids(api, {"actor": "Daesh"})) > 50

    # Everything moves far west: spatial subscriptions hear of each incident they had
    # (matched before the change), the others of every change that still matches.
    before = {sid: await search_ids(api, f) for f, sid in subs}
    moved = [{**r, "latitude": 10.0, "longitude": 10.0, "country": None} for r in batch]
    await bulk(api, writer, moved)
    for f, sid in subs:
        after = await search_ids(api, f)
        assert await heard(db, sid, "update") == before[sid] | after, f
    # And the worker delivered every one of these events, signed.
    total = await db.fetchval("SELECT count(*) FROM alert_deliveries")
    await eventually(lambda: len(receiver.at("/matching")) >= total, within=60)


def test_every_filterable_field_can_be_subscribed_to() -> None:
    assert set(FILTERED_BY_VALUE) == set(VALUE_ATTRIBUTES)
    assert set(FILTERED_BY_MINIMUM) == set(MINIMUM_ATTRIBUTES)


async def test_matching_probes_the_subscriptions_index(
    api: httpx.AsyncClient, subscriber: dict[str, str], receiver: Receiver, db: asyncpg.Connection
) -> None:
    """The outbox trigger's join, over a relation of changed rows like its transition table,
    is a GiST probe per changed point, not a scan of every subscription."""
    rng = random.Random(7)
    for k in range(300):
        f = {"near": f"{rng.uniform(30, 37):.3f},{rng.uniform(38, 48):.3f}", "radius_km": 20}
        resp = await api.post(
            "/v1/subscriptions",
            json={"name": f"town {k}", "filter": f, "webhook_url": receiver.url("/plan")},
            headers=subscriber,
        )
        assert resp.status_code == 201
    await db.execute("ANALYZE alert_subscriptions")
    async with db.transaction():
        await db.execute(
            "CREATE TEMP TABLE changed ON COMMIT DROP AS SELECT "
            "ST_SetSRID(ST_MakePoint(45 + g / 1000.0, 34), 4326) AS geom "
            "FROM generate_series(1, 500) g"
        )
        await db.execute("ANALYZE changed")
        plan = "\n".join(
            r[0]
            for r in await db.fetch(
                "EXPLAIN SELECT s.id FROM changed st JOIN alert_subscriptions s "
                "ON s.status = 'active' AND (s.match).box && st.geom"
            )
        )
    assert "alert_subscriptions_box" in plan, plan


async def test_a_command_line_import_is_heard(
    database_url: str,
    api: httpx.AsyncClient,
    subscriber: dict[str, str],
    receiver: Receiver,
    db: asyncpg.Connection,
    clean_incidents: None,
) -> None:
    """`incidents import` (the big-batch path: indexes rebuilt, rollups computed beside the
    write) queues its changes like every other write."""
    resp = await api.post(
        "/v1/subscriptions",
        json={"name": "all", "filter": {}, "webhook_url": receiver.url("/imported")},
        headers=subscriber,
    )
    sid = resp.json()["id"]
    done = run_cli(database_url, "import", str(FIXTURES / "acled_current.csv"), "--quiet")
    assert done.returncode == 0, done.stderr
    stored = await db.fetchval("SELECT count(*) FROM incidents")
    assert stored > 0 and await heard(db, sid, "create") == {
        str(r["id"]) for r in await db.fetch("SELECT id FROM incidents")
    }
    await eventually(lambda: len(receiver.at("/imported")) == stored)
