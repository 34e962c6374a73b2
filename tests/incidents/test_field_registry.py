"""The field registry is the one definition: a field added to it (plus its column) shows up in
the JSON, the history, CSV exports, bulk import and the search filters with no other edit."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import asyncpg
import pytest

from app.cli import run_migrations
from app.incidents.fields import CSV_FIELDS, FIELDS, JSON_FIELDS, WRITABLE_COLUMNS
from app.incidents.importers.rows import STAGE_COLUMNS
from app.incidents.schemas import IncidentIn, IncidentOut, IncidentPatch
from app.incidents.sql import INCIDENT_JSON
from app.search.formats import csv_header
from app.search.params import BY_NAME as PARAMS
from tests.conftest import ROOT, recreate_database, url_for_db

NAME = f"incidents_test_registry_{os.getpid()}"

# Runs in its own interpreter: the registry is extended before the app is imported, as a
# deployment with its own column would do.
SCRIPT = textwrap.dedent(
    """
    import asyncio, csv, io, json, sys
    from typing import Annotated
    from pydantic import Field
    from app.incidents import fields

    fields.extend(
        fields.IncidentField(
            "weapon", fields.Kind.text, "text", "Weapon used",
            write="optional", annotation=Annotated[str, Field(max_length=100)],
            filter=fields.Filter.values, queryable=True,
        )
    )

    import httpx
    from app.auth.service import create_key
    from app.core.config import Settings
    from app.main import create_app

    async def main():
        settings = Settings(database_url=sys.argv[1], key_pepper="p", cursor_secret="c")
        app = create_app(settings)
        out = {}
        async with app.router.lifespan_context(app):
            async with app.state.db.write() as conn:
                key, _ = await create_key(conn, name="t", scopes=["write"], pepper="p")
            auth = {"Authorization": f"Bearer {key}"}
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                base = {"event_date": "2020-06-13", "event_type": "Battles", "latitude": 34.4,
                        "longitude": 45.3, "country_code": "IRQ", "admin1": "Diyala",
                        "country": "Iraq"}
                created = await c.post("/v1/incidents", json={**base, "weapon": "IED"},
                                       headers=auth)
                out["created"] = created.json()
                iid = created.json()["id"]
                patched = await c.patch(f"/v1/incidents/{iid}", json={"weapon": "rifle"},
                                        headers=auth)
                out["patched"] = patched.json()
                out["revisions"] = (await c.get(f"/v1/incidents/{iid}/revisions")).json()
                await c.post("/v1/incidents", json={**base, "weapon": "mortar"}, headers=auth)
                await c.post("/v1/incidents", json=base, headers=auth)
                out["filtered"] = (await c.get("/v1/incidents?weapon=rifle,mortar")).json()
                out["searched"] = (await c.post("/v1/incidents/search",
                                                json={"weapon": "mortar"})).json()
                exported = (await c.get("/v1/incidents?format=csv&weapon=rifle")).text
                out["csv"] = list(csv.DictReader(io.StringIO(exported)))
                ndjson = json.dumps({**base, "external_id": "W-1", "weapon": "drone"}) + "\\n"
                out["bulk_ndjson"] = (await c.post("/v1/incidents/bulk", content=ndjson,
                    headers={**auth, "Content-Type": "application/x-ndjson"})).json()
                # The CSV export goes back in as it came out, weapon included.
                rows = out["csv"]
                rows[0]["event_id_cnty"] = "W-2"
                buffer = io.StringIO()
                writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerow(rows[0])
                out["bulk_csv"] = (await c.post("/v1/incidents/bulk", content=buffer.getvalue(),
                    headers={**auth, "Content-Type": "text/csv"})).json()
                out["bulk_rows"] = (await c.get("/v1/incidents?weapon=drone,rifle")).json()
                out["bad"] = (await c.get("/v1/incidents?weapon=" + "x" * 3000)).status_code
                out["openapi"] = (await c.get("/openapi.json")).json()
        print(json.dumps(out))

    asyncio.run(main())
    """
)


@pytest.fixture(scope="module")
def extended_database() -> str:
    asyncio.run(recreate_database(NAME))
    url = url_for_db(NAME)
    run_migrations("head", database_url=url)

    async def add_column() -> None:
        conn = await asyncpg.connect(url)
        try:
            # A migration adding a field adds it to the history too.
            await conn.execute("ALTER TABLE incidents ADD COLUMN weapon text")
            await conn.execute("ALTER TABLE incident_history ADD COLUMN weapon text")
        finally:
            await conn.close()

    asyncio.run(add_column())
    yield url

    async def drop() -> None:
        conn = await asyncpg.connect(url_for_db("postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


def test_the_derived_views_list_every_field() -> None:
    names = [f.name for f in FIELDS]
    for f in JSON_FIELDS:
        assert f"'{f.name}'" in INCIDENT_JSON
    assert set(WRITABLE_COLUMNS) <= set(IncidentIn.model_fields) & set(IncidentPatch.model_fields)
    assert set(IncidentOut.model_fields) >= {f.name for f in JSON_FIELDS}
    assert set(WRITABLE_COLUMNS) <= set(STAGE_COLUMNS)
    assert csv_header(False) == [f.csv_name for f in CSV_FIELDS]
    assert {"event_type", "admin1", "min_fatalities", "actor", "q", "start"} <= set(PARAMS)
    assert len(names) == len(set(names))


def test_a_new_field_flows_everywhere(extended_database: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, extended_database],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["created"]["weapon"] == "IED"
    assert out["patched"]["weapon"] == "rifle"
    revisions = out["revisions"]["items"]
    assert [r["incident"]["weapon"] for r in revisions] == ["IED", "rifle"]
    assert revisions[1]["changed_fields"] == ["weapon"]
    assert sorted(i["weapon"] for i in out["filtered"]["items"]) == ["mortar", "rifle"]
    assert out["filtered"]["meta"]["filters"]["weapon"] == ["rifle", "mortar"]
    assert [i["weapon"] for i in out["searched"]["items"]] == ["mortar"]
    assert [row["weapon"] for row in out["csv"]] == ["rifle"]
    assert out["bulk_ndjson"]["inserted"] == 1, out["bulk_ndjson"]
    assert out["bulk_csv"]["inserted"] == 1, out["bulk_csv"]
    assert sorted(i["weapon"] for i in out["bulk_rows"]["items"]) == ["drone", "rifle", "rifle"]
    assert out["bad"] == 422
    schemas = out["openapi"]["components"]["schemas"]
    assert "weapon" in schemas["IncidentIn"]["properties"]
    assert "weapon" in schemas["IncidentOut"]["properties"]
    params = {p["name"] for p in out["openapi"]["paths"]["/v1/incidents"]["get"]["parameters"]}
    assert "weapon" in params
