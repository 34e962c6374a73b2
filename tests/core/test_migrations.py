"""Migrations go all the way down and back up on a real PostGIS database."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from app.cli import _alembic_config
from tests.conftest import recreate_database, url_for_db

NAME = "incidents_test_migrations"


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


@pytest.mark.asyncio(loop_scope="session")
async def test_downgrade_to_base_and_upgrade_again() -> None:
    from alembic import command

    await recreate_database(NAME)
    url = url_for_db(NAME)
    config = _alembic_config(url)
    await asyncio.to_thread(command.upgrade, config, "head")
    assert {"incidents", "incident_revisions", "api_keys"} <= await _tables(url)
    await asyncio.to_thread(command.downgrade, config, "base")
    assert await _tables(url) <= {"alembic_version", "spatial_ref_sys"}
    await asyncio.to_thread(command.upgrade, config, "head")
    assert {"incidents", "incident_revisions", "api_keys"} <= await _tables(url)
    conn = await asyncpg.connect(url_for_db("postgres"))
    await conn.execute(f'DROP DATABASE IF EXISTS "{NAME}" WITH (FORCE)')
    await conn.close()


async def _columns(conn: asyncpg.Connection, table: str) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute "
        "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        table,
    )
    return [(r["attname"], r["type"]) for r in rows]


@pytest.mark.asyncio(loop_scope="session")
async def test_history_migration_keeps_every_version() -> None:
    """0011 turns the revisions' stored JSON into history rows and back, losslessly: the JSON
    each revision shows after the upgrade is the JSON it stored before; the downgrade puts it
    back. And `incident_history` has exactly the columns of `incidents` (plus `valid`)."""
    from alembic import command

    from app.incidents.sql import incident_json, version_sql

    # The incident JSON of that time: without the fields later migrations added.
    INCIDENT_JSON = incident_json(exclude=("uncertainty_km",))
    VERSION_JSON = version_sql(f"({INCIDENT_JSON})::jsonb")

    name = NAME + "_history"
    await recreate_database(name)
    url = url_for_db(name)
    config = _alembic_config(url)
    await asyncio.to_thread(command.upgrade, config, "0010")
    conn = await asyncpg.connect(url)
    try:
        # Three versions the 0010 way: each revision stores the incident's JSON.
        incident_id = await conn.fetchval(
            "INSERT INTO incidents (external_id, event_date, event_type, actor1, notes, "
            "fatalities, geom, sources, tags, possible_duplicates, updated_at) "
            "VALUES ('m-1', '2024-01-05', 'Battles', 'Militia', 'first', 2, "
            'ST_SetSRID(ST_MakePoint(45.38, 34.34), 4326), \'[{"name": "Rudaw"}]\', '
            "'{a,b}', '{7}', '2024-01-06T00:00:00Z') RETURNING id"
        )
        store = (
            "INSERT INTO incident_revisions (incident_id, version, op, changed_fields, "
            f"changed_at, data) SELECT i.id, i.version, $2, '{{}}', i.updated_at, "
            f"({INCIDENT_JSON})::jsonb FROM incidents i WHERE i.id = $1"
        )
        await conn.execute(store, incident_id, "create")
        await conn.execute(
            "UPDATE incidents SET notes = 'second', fatalities = 3, version = 2, "
            "updated_at = '2024-02-01T00:00:00Z' WHERE id = $1",
            incident_id,
        )
        await conn.execute(store, incident_id, "update")
        await conn.execute(
            "UPDATE incidents SET deleted_at = '2024-03-01T00:00:00Z', version = 3, "
            "updated_at = '2024-03-01T00:00:00Z' WHERE id = $1",
            incident_id,
        )
        await conn.execute(store, incident_id, "delete")
        before = await conn.fetch(
            "SELECT version, data FROM incident_revisions WHERE incident_id = $1 ORDER BY 1",
            incident_id,
        )
        await conn.close()

        await asyncio.to_thread(command.upgrade, config, "0011")
        conn = await asyncpg.connect(url)
        incidents = await _columns(conn, "incidents")
        history = await _columns(conn, "incident_history")
        assert history == [*incidents, ("valid", "tstzrange")]
        rows = await conn.fetch(
            "SELECT version, lower(valid)::text AS since, upper(valid)::text AS until "
            "FROM incident_history WHERE id = $1 ORDER BY version",
            incident_id,
        )
        assert [(r["version"], r["since"], r["until"]) for r in rows] == [
            (1, "2024-01-06 00:00:00+00", "2024-02-01 00:00:00+00"),
            (2, "2024-02-01 00:00:00+00", "2024-03-01 00:00:00+00"),
        ]
        after = await conn.fetch(
            f"SELECT r.version, {VERSION_JSON} AS data FROM incident_revisions r "
            "WHERE r.incident_id = $1 ORDER BY 1",
            incident_id,
        )
        assert [(r["version"], r["data"]) for r in after] == [
            (r["version"], r["data"]) for r in before
        ]
        # The trigger keeps writing history: one more change, one more superseded version.
        await conn.execute(
            "UPDATE incidents SET notes = 'fourth', version = 4, deleted_at = NULL, "
            "updated_at = '2024-04-01T00:00:00Z' WHERE id = $1",
            incident_id,
        )
        assert (
            await conn.fetchval(
                "SELECT upper(valid)::text FROM incident_history WHERE id = $1 AND version = 3",
                incident_id,
            )
            == "2024-04-01 00:00:00+00"
        )
        await conn.close()

        await asyncio.to_thread(command.downgrade, config, "0010")
        conn = await asyncpg.connect(url)
        restored = await conn.fetch(
            "SELECT version, data FROM incident_revisions WHERE incident_id = $1 ORDER BY 1",
            incident_id,
        )
        assert [(r["version"], r["data"]) for r in restored] == [
            (r["version"], r["data"]) for r in before
        ]
    finally:
        await conn.close()
        admin = await asyncpg.connect(url_for_db("postgres"))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
