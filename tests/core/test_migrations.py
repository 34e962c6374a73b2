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
