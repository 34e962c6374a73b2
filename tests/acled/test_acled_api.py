"""The ACLED-compatible API at /api: ACLED's PyPI client unchanged (`ACLED_API_HOST`), the URL
shapes of ACLED's documentation, an ACLED export read back as it went in, and the key kept out
of the logs."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.conftest import PEPPER, ROOT, free_port, insert_incidents, truncate_incidents

pytestmark = pytest.mark.usefixtures("gazetteer")
FIXTURES = ROOT / "tests" / "fixtures"


def rows(n: int = 120) -> list[dict[str, Any]]:
    actors = [
        "Military Forces of Iraq (2020-)",
        "Islamic State (Iraq)",
        "Civilians (Iraq)",
        "Protesters (Iraq)",
    ]
    return [
        {
            "event_date": dt.date(2020, 1, 1) + dt.timedelta(days=k * 5),
            "event_type": "Battles" if k % 3 else "Protests",
            "sub_event_type": "Armed clash" if k % 3 else "Peaceful protest",
            "actor1": actors[k % 4],
            "actor2": actors[(k + 1) % 4] if k % 2 else None,
            "fatalities": k % 6,
            "country": "Iraq" if k % 5 else "Syria",
            "country_code": "IRQ" if k % 5 else "SYR",
            "admin1": "Diyala" if k % 2 else "Baghdad",
            "location": f"Place {k}",
            "latitude": 34.0 + (k % 10) * 0.05,
            "longitude": 45.0 + (k % 7) * 0.05,
            "notes": "an attack on a checkpoint" if k % 4 == 0 else "clashes",
            "external_id": f"ACL{k:04d}",
        }
        for k in range(n)
    ]


@pytest.fixture(scope="module")
async def acled_data(db: asyncpg.Connection) -> list[int]:
    await truncate_incidents(db)
    ids = await insert_incidents(db, rows())
    await db.execute("UPDATE incidents SET deleted_at = now() WHERE id = ANY($1)", ids[-3:])
    await db.execute("SELECT incident_rollups_compact()")
    return ids


def v1(base: str, **params: Any) -> list[dict[str, Any]]:
    resp = httpx.get(f"{base}/v1/incidents", params={"limit": 10000, **params}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


CLIENT = textwrap.dedent(
    """
    import json, os, sys, warnings
    warnings.simplefilter("ignore")
    from acled import AcledClient
    from acled.exceptions import AcledMissingAuthError, ApiError

    client = AcledClient()
    out = {}

    def ids(events):
        return sorted(e["event_id_cnty"] for e in events)

    out["battles_iraq"] = ids(client.get_data(country="Iraq", event_type="Battles", limit=5000))
    sample = client.get_data(country="Iraq", limit=1)[0]
    out["sample_types"] = {k: type(v).__name__ for k, v in sample.items()}
    out["range"] = ids(client.get_data(
        event_date="2020-02-01|2020-06-30", query_params={"event_date_where": "BETWEEN"},
        limit=5000))
    out["deadly"] = ids(client.get_data(
        fatalities=3, query_params={"fatalities_where": ">="}, limit=5000))
    out["like"] = ids(client.get_data(
        notes="CHECKPOINT", query_params={"notes_where": "LIKE"}, limit=5000))
    pages, page = [], 1
    while True:
        got = client.get_data(limit=25, page=page)
        if not got:
            break
        pages.append(ids(got))
        page += 1
    out["pages"] = pages
    out["fields"] = client.get_data(fields="event_id_cnty|event_date|fatalities", limit=2)
    out["year"] = ids(client.get_data(year=2021, limit=5000))
    out["deleted"] = client.get_deleted_data(limit=100)
    out["actors"] = client.get_actor_data(limit=100)
    out["countries"] = client.get_country_data(limit=100)
    out["regions"] = client.get_region_data(limit=100)
    try:
        AcledClient(api_key="ci_nope_notakey-notakey-notakey", email="x@y.z").get_data(limit=1)
        out["bad_key"] = "no error"
    except Exception as exc:
        out["bad_key"] = type(exc).__name__
    print(json.dumps(out, default=str))
    """
)


def test_the_acled_client_reads_our_incidents(
    live_server: str, read_key: str, acled_data: list[int]
) -> None:
    env = {
        **os.environ,
        "ACLED_API_HOST": f"{live_server}/api",
        "ACLED_API_KEY": read_key,
        "ACLED_EMAIL": "analyst@example.org",
    }
    for name in ("ACLED_PASSWORD", "ACLED_USERNAME"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", CLIENT], capture_output=True, text=True, timeout=180, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    live = v1(live_server)

    def ids(items: list[dict[str, Any]]) -> list[str]:
        return sorted(i["external_id"] for i in items)

    assert out["battles_iraq"] == ids(v1(live_server, country="Iraq", event_type="Battles"))
    assert out["battles_iraq"]
    types = out["sample_types"]
    assert types["event_date"] == "date" and types["fatalities"] == "int"
    assert types["latitude"] == "float" and types["timestamp"] == "datetime"
    assert out["range"] == ids(v1(live_server, start="2020-02-01", end="2020-06-30"))
    assert out["deadly"] == ids(v1(live_server, min_fatalities=3))
    assert out["like"] == ids(v1(live_server, q="checkpoint"))
    flat = [i for page in out["pages"] for i in page]
    assert sorted(flat) == ids(live) and len(flat) == len(set(flat))
    assert len(out["pages"]) == -(-len(live) // 25)
    assert out["fields"][0].keys() == {"event_id_cnty", "event_date", "fatalities"}
    assert out["year"] == ids(v1(live_server, start="2021-01-01", end="2021-12-31"))
    assert sorted(d["event_id_cnty"] for d in out["deleted"]) == ["ACL0117", "ACL0118", "ACL0119"]
    assert all(int(d["deleted_timestamp"]) > 1_700_000_000 for d in out["deleted"])
    actors = {a["actor_name"]: a["event_count"] for a in out["actors"]}
    assert actors["Islamic State (Iraq)"] == sum(
        "Islamic State (Iraq)" in (i["actor1"], i["actor2"]) for i in live
    )
    countries = {c["iso3"]: c for c in out["countries"]}
    assert countries["IRQ"]["event_count"] == sum(i["country_code"] == "IRQ" for i in live)
    assert countries["IRQ"]["iso"] == 368 and countries["IRQ"]["country"] == "Iraq"
    assert [r["region_name"] for r in out["regions"]] == ["Middle East"]
    assert out["bad_key"] == "ClientError"  # the 401, after its one retry with the same key


def get(base: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{base}{path}", params=params, timeout=30)


def test_url_shapes_from_acleds_documentation(
    live_server: str, read_key: str, write_key: str, acled_data: list[int]
) -> None:
    auth = {"key": read_key, "email": "analyst@example.org"}
    live = v1(live_server)
    # Envelope and value conventions.
    resp = get(live_server, "/api/acled/read", country="Iraq", limit=3, **auth)
    body = resp.json()
    assert resp.status_code == 200 and body["success"] is True and body["status"] == 200
    assert {"last_update", "count", "messages", "data", "filename"} <= set(body)
    assert body["count"] == len(body["data"]) == 3
    row = body["data"][0]
    assert list(row) == [
        "event_id_cnty",
        "event_date",
        "year",
        "time_precision",
        "disorder_type",
        "event_type",
        "sub_event_type",
        "actor1",
        "assoc_actor_1",
        "inter1",
        "actor2",
        "assoc_actor_2",
        "inter2",
        "interaction",
        "civilian_targeting",
        "iso",
        "region",
        "country",
        "admin1",
        "admin2",
        "admin3",
        "location",
        "latitude",
        "longitude",
        "geo_precision",
        "source",
        "source_scale",
        "notes",
        "fatalities",
        "tags",
        "timestamp",
    ]
    assert all(isinstance(v, str) for v in row.values())
    assert row["iso"] == "368" and row["region"] == "Middle East" and row["admin3"] == ""
    assert row["year"] == row["event_date"][:4]
    # `|` lists, :OR: across fields, BETWEEN on dates, `fields`, CSV (three URL forms).
    either = get(
        live_server,
        "/api/acled/read",
        admin1="Diyala|Baghdad",
        fields="event_id_cnty",
        limit=0,
        **auth,
    ).json()
    assert either["count"] == len(live)
    crossed = get(
        live_server,
        "/api/acled/read",
        **{
            "actor1": "Protesters (Iraq):OR:actor2=Protesters (Iraq)",
            "limit": 0,
            **auth,
        },
    ).json()
    expected = {i["external_id"] for i in live if "Protesters (Iraq)" in (i["actor1"], i["actor2"])}
    assert {r["event_id_cnty"] for r in crossed["data"]} == expected
    same = get(
        live_server, "/api/acled/read", country="Iraq:OR:country=Syria", limit=0, **auth
    ).json()
    assert same["count"] == len(live)
    dated = get(
        live_server,
        "/api/acled/read",
        event_date="2020-01-01|2020-12-31",
        event_date_where="BETWEEN",
        fields="event_id_cnty|event_date|fatalities",
        **auth,
    ).json()
    assert {r["event_id_cnty"] for r in dated["data"]} == {
        i["external_id"] for i in v1(live_server, start="2020-01-01", end="2020-12-31")
    }
    assert set(dated["data"][0]) == {"event_id_cnty", "event_date", "fatalities"}
    for url, params in (
        ("/api/acled/read.csv", {}),
        ("/api/acled/read", {"_format": "csv"}),
        ("/api/acled/read/", {"_format": "csv", "terms": "accept"}),
    ):
        resp = get(live_server, url, country="Syria", limit=0, **params, **auth)
        assert resp.headers["content-type"].startswith("text/csv"), url
        parsed = list(csv.DictReader(io.StringIO(resp.text)))
        assert {r["event_id_cnty"] for r in parsed} == {
            i["external_id"] for i in v1(live_server, country="Syria")
        }, url
    # timestamp: changed since (Unix seconds); inter codes derived from the actors' names.
    since = get(live_server, "/api/acled/read", timestamp=int(time.time()) + 3600, **auth)
    assert since.json()["count"] == 0
    coded = get(
        live_server,
        "/api/acled/read",
        actor1="Military Forces of Iraq (2020-)",
        fields="inter1|inter2|interaction",
        limit=1,
        **auth,
    ).json()["data"][0]
    assert coded["inter1"] == "1" and coded["interaction"].startswith("1")
    # Stable paging: page N is the same while others write (new incidents come last).
    first = get(
        live_server, "/api/acled/read", limit=10, page=3, fields="event_id_cnty", **auth
    ).json()["data"]
    new = {
        "event_date": "2019-06-01",
        "event_type": "Battles",
        "latitude": 34.1,
        "longitude": 45.1,
        "country_code": "IRQ",
    }
    posted = httpx.post(
        f"{live_server}/v1/incidents/bulk",
        content="\n".join(json.dumps({**new, "external_id": f"NEW{n}"}) for n in range(15)),
        headers={"Content-Type": "application/x-ndjson", "Authorization": f"Bearer {write_key}"},
        timeout=30,
    )
    assert posted.json()["inserted"] == 15, posted.text
    again = get(
        live_server, "/api/acled/read", limit=10, page=3, fields="event_id_cnty", **auth
    ).json()["data"]
    assert again == first


@pytest.mark.parametrize(
    ("params", "status", "needle"),
    [
        ({"fatalities": "many"}, 400, "fatalities"),
        ({"event_date": "2020-01-01", "event_date_where": "ABOUT"}, 400, "event_date_where"),
        ({"event_date": "2020-01-01", "event_date_where": "BETWEEN"}, 400, "event_date"),
        ({"colour_where": "="}, 400, "colour_where"),
        ({"fields": "event_id_cnty|colour"}, 400, "fields"),
        ({"limit": "-1"}, 400, "limit"),
        ({"page": "0"}, 400, "page"),
        ({"key": "ci_nope_nope"}, 401, "unknown"),
        ({"iso": "Iraq"}, 400, "iso"),
    ],
)
def test_errors_in_acleds_envelope(
    live_server: str, acled_data: list[int], params: dict[str, str], status: int, needle: str
) -> None:
    resp = get(live_server, "/api/acled/read", **params)
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["success"] is False and body["status"] == status
    assert body["error"][0]["status"] == status and needle in body["error"][0]["message"]


def test_anonymous_reads_follow_the_setting(database_url: str, acled_data: list[int]) -> None:
    from app.main import create_app
    from tests.conftest import make_settings

    closed = create_app(make_settings(database_url, allow_anonymous_read=False))

    async def call() -> tuple[int, dict[str, Any]]:
        async with closed.router.lifespan_context(closed):
            transport = httpx.ASGITransport(app=closed)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                resp = await c.get("/api/acled/read", params={"limit": 1})
                return resp.status_code, resp.json()

    import asyncio

    status, body = asyncio.run(call())
    assert status == 401 and body["error"][0]["status"] == 401


def test_an_acled_export_reads_back_as_it_went_in(
    database_url: str, live_server: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    source = FIXTURES / "acled_current.csv"
    env = {**os.environ, "DATABASE_URL": database_url, "KEY_PEPPER": PEPPER}
    done = subprocess.run(
        [str(Path(sys.executable).with_name("incidents")), "import", str(source), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    original = list(csv.DictReader(io.StringIO(source.read_text(encoding="utf-8-sig"))))
    ids = "|".join(r["event_id_cnty"] for r in original)
    back = get(live_server, "/api/acled/read", event_id_cnty=ids, inter_num=0).json()["data"]
    by_id = {r["event_id_cnty"]: r for r in back}
    assert len(by_id) == len(original)
    for row in original:
        got = by_id[row["event_id_cnty"]]
        for column, value in row.items():
            if column == "timestamp":
                continue  # ours: when it changed here
            assert got[column] == value, (row["event_id_cnty"], column, got[column], value)
    coded = get(
        live_server,
        "/api/acled/read",
        event_id_cnty=ids,
        fields="event_id_cnty|inter1|inter2|interaction",
    ).json()["data"]
    assert {r["interaction"] for r in coded} == {"27", "12"}


def test_keys_in_urls_never_reach_the_logs(database_url: str, read_key: str) -> None:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "KEY_PEPPER": PEPPER,
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:app",
            "--port",
            str(port),
            "--log-level",
            "info",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert get(base, "/api/acled/read", key=read_key, email="a@b.c", limit=1).status_code == 200
        assert get(base, "/api/acled/read", key="ci_wrong_wrong", limit=1).status_code == 401
        metrics = httpx.get(base + "/metrics", timeout=10).text
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert "/api/acled/read?key=[redacted]" in output, output[-2000:]
    assert read_key not in output and "ci_wrong_wrong" not in output
    assert read_key not in metrics and 'route="/api/acled/read"' in metrics
