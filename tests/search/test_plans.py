"""Query plans are pinned: radius, bbox, area and nearest searches use the GiST index (or the
date index for newest-first scans), never a sequential scan, and stay that way over 10 runs
of a prepared statement (PostgreSQL's switch to generic plans after 5 is the trap)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import asyncpg
import pytest

from app.core.config import Settings
from app.core.db import server_settings
from app.search.filters import OutputFormat, Sort
from app.search.params import build_raw_filter
from app.search.resolve import resolve_filter
from app.search.service import build_query
from tests.conftest import truncate_incidents

pytestmark = pytest.mark.usefixtures("gazetteer", "boundaries")

N = 120_000


@pytest.fixture(scope="module")
async def populated(database_url: str) -> None:
    conn = await asyncpg.connect(database_url, server_settings={"statement_timeout": "0"})
    try:
        await truncate_incidents(conn)
        # Clustered like conflict data: dense around a few hotspots in Iraq and Syria, sparse
        # elsewhere.
        await conn.execute(
            f"""
            INSERT INTO incidents (event_date, event_type, fatalities, admin1, country_code,
                                   actor1, notes, geom)
            SELECT date '2018-01-01' + (random() * 2500)::int,
                   (ARRAY['Battles','Explosions/Remote violence','Violence against civilians',
                          'Protests'])[1 + (n % 4)],
                   (random() * 10)::int,
                   (ARRAY['Diyala','Baghdad','Nineveh','Aleppo'])[1 + (n % 4)], 'IRQ',
                   (ARRAY['Islamic State (Iraq)','Civilians (Iraq)','Military Forces of Iraq'])
                       [1 + (n % 3)],
                   'generated incident ' || n,
                   ST_SetSRID(ST_MakePoint(c.lon + (random() - 0.5) * c.spread,
                                           c.lat + (random() - 0.5) * c.spread), 4326)
            FROM generate_series(1, {N}) n
            CROSS JOIN LATERAL (
                SELECT * FROM (VALUES (45.39, 34.35, 1.0), (44.36, 33.31, 1.5),
                                      (43.13, 36.34, 2.0), (37.16, 36.20, 2.0),
                                      (42.0, 33.0, 12.0)) v(lon, lat, spread)
                OFFSET (n % 5) LIMIT 1
            ) c
            """
        )
        # Many provinces of a few hundred incidents each (so a name the statistics do not
        # list is estimated at hundreds of rows), and a rare province and district: their
        # filters must find them through their indexes, not by walking the dates.
        await conn.execute(
            "INSERT INTO incidents (event_date, event_type, fatalities, admin1, country_code, "
            "geom) SELECT date '2018-01-01' + n % 2500, 'Protests', 0, 'Province ' || n % 150, "
            "'IRQ', ST_SetSRID(ST_MakePoint(44 + (n % 100) / 50.0, 33), 4326) "
            "FROM generate_series(1, 30000) n"
        )
        await conn.execute(
            "INSERT INTO incidents (event_date, event_type, fatalities, admin1, admin2, "
            "country_code, geom) SELECT date '2020-01-01' + n, 'Battles', 1, 'Halabja', "
            "'Sirwan', 'IRQ', ST_SetSRID(ST_MakePoint(45.98, 35.18), 4326) "
            "FROM generate_series(1, 30) n"
        )
        await conn.execute(
            "ANALYZE incidents, incident_rollup_month, incident_grid_cells, incident_tile_cells"
        )
        yield
        await truncate_incidents(conn)
    finally:
        await conn.close()


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    out = [plan]
    for child in plan.get("Plans", []):
        out += nodes(child)
    return out


async def plans_for(
    database_url: str, params: dict[str, Any], sort: Sort = Sort.newest, limit: int = 100
) -> list[list[dict[str, Any]]]:
    settings = Settings(database_url=database_url)
    conn = await asyncpg.connect(database_url, server_settings=server_settings(settings))
    try:
        raw = build_raw_filter(params)
        f = await resolve_filter(conn, raw, nearest=sort is Sort.distance)
        if f.near is not None and f.radius_m is None:
            f.radius_m = 50_000  # the first ring of a nearest-k search
        sql, values, _ = build_query(f, sort=sort, fmt=OutputFormat.json, after=None, limit=limit)
        return await explain_ten_times(conn, sql, values)
    finally:
        await conn.close()


async def explain_ten_times(
    conn: asyncpg.Connection, sql: str, values: list[Any]
) -> list[list[dict[str, Any]]]:
    await conn.execute(f"PREPARE q AS {sql}")
    # EXPLAIN EXECUTE takes literals; the server quotes them (test code only).
    literals = [await literal(conn, v) for v in values]
    out = []
    for _ in range(10):
        args = f"({', '.join(literals)})" if literals else ""
        doc = await conn.fetchval(f"EXPLAIN (FORMAT JSON) EXECUTE q{args}")
        out.append(nodes(json.loads(doc)[0]["Plan"]))
    await conn.execute("DEALLOCATE q")
    return out


def summary(plan: list[dict[str, Any]]) -> list[str]:
    return [
        f"{n['Node Type']} {n.get('Index Name') or n.get('Relation Name') or ''} "
        f"rows={n.get('Plan Rows')} cost={n.get('Total Cost')}"
        for n in plan
    ]


async def literal(conn: asyncpg.Connection, value: Any) -> str:
    if isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, dt.date):
        return f"'{value.isoformat()}'::date"
    if isinstance(value, bytes):
        return f"'\\x{value.hex()}'::bytea"
    if isinstance(value, list):
        return str(await conn.fetchval("SELECT quote_literal($1::text[])", value)) + "::text[]"
    return str(await conn.fetchval("SELECT quote_literal($1::text)", str(value)))


def index_names(plan: list[dict[str, Any]]) -> set[str]:
    return {n["Index Name"] for n in plan if "Index Name" in n}


def seq_scans(plan: list[dict[str, Any]]) -> list[str]:
    return [n.get("Relation Name", "") for n in plan if n["Node Type"] == "Seq Scan"]


@pytest.mark.parametrize(
    ("params", "sort", "expected"),
    [
        (
            {"near": "34.348,45.391", "radius_km": 25, "start": "2024-01-01", "end": "2024-12-31"},
            Sort.newest,
            {"incidents_geom_gist", "incidents_date_id"},
        ),
        (
            {"near": "Khanaqin", "radius_km": 25},
            Sort.newest,
            {"incidents_geom_gist", "incidents_date_id"},
        ),
        (
            {"bbox": "44.5,33.5,46.0,35.0"},
            Sort.newest,
            {"incidents_geom_gist", "incidents_date_id"},
        ),
        (
            {"bbox": "35,29,50,38", "start": "2024-06-01", "end": "2024-06-30"},
            Sort.newest,
            {"incidents_geom_gist", "incidents_date_id"},
        ),
        ({"bbox": "179,-10,-179,10"}, Sort.newest, {"incidents_geom_gist", "incidents_date_id"}),
        ({"near": "34.348,45.391"}, Sort.distance, {"incidents_geom_gist"}),
        ({"within": "Diyala"}, Sort.newest, {"incidents_geom_gist", "incidents_date_id"}),
    ],
)
async def test_spatial_searches_use_an_index_every_time(
    populated: None, database_url: str, params: dict[str, Any], sort: Sort, expected: set[str]
) -> None:
    for plan in await plans_for(database_url, params, sort=sort):
        assert "incidents" not in seq_scans(plan), summary(plan)
        assert index_names(plan) & expected, summary(plan)


@pytest.mark.parametrize(
    ("params", "index"),
    [({"admin1": "halabja"}, "incidents_admin1"), ({"admin2": "Sirwan"}, "incidents_admin2")],
)
async def test_rare_names_are_found_through_their_index(
    populated: None, database_url: str, params: dict[str, Any], index: str
) -> None:
    """Names are normalised by an IMMUTABLE function of the parameter, so the planner sees
    the values (custom plans and generic alike pick the name's index for a rare one)."""
    for plan in await plans_for(database_url, params):
        assert index in index_names(plan), summary(plan)


async def test_radius_query_is_bounded_by_the_gist_index(
    populated: None, database_url: str
) -> None:
    """A sparse radius far from the hotspots must not walk the whole date index."""
    for plan in await plans_for(database_url, {"near": "30.5,47.8", "radius_km": 10}):
        assert "incidents_geom_gist" in index_names(plan), plan


class CaptureSQL:
    """Stands in for the connection to catch the statement the stats service sends."""

    def __init__(self) -> None:
        self.sql = ""
        self.values: list[Any] = []

    async def fetchval(self, sql: str, *values: Any) -> str:
        self.sql, self.values = sql, list(values)
        return "[]"


async def test_dashboards_read_rollups_and_indexes_every_time(
    populated: None, database_url: str
) -> None:
    """Stats by month and unfiltered cluster tiles never touch the incidents table; the grid
    reads incidents only through the GiST index (hexagons cut by the bbox's edge)."""
    from app.core.geo import Envelope
    from app.search.filters import RawFilter, SearchFilter
    from app.stats import grid
    from app.stats import service as stats_service
    from app.tiles import service as tiles_service

    spy = CaptureSQL()
    f = await resolve_stats_filter(
        database_url,
        {"admin1": "Diyala", "start": dt.date(2019, 1, 1), "end": dt.date(2023, 12, 31)},
    )
    await stats_service.stats(spy, f, ["month"])  # type: ignore[arg-type]
    box = Envelope(38.5, 29.0, 48.5, 37.5)
    grid_filter = SearchFilter(
        raw=RawFilter(
            bbox=(38.5, 29.0, 48.5, 37.5), start=dt.date(2023, 1, 1), end=dt.date(2023, 12, 31)
        ),
        envelopes=[box],
    )
    cases = {
        "stats": (spy.sql, spy.values),
        "grid": grid.grid_query(grid_filter, 25_000),
        "tile": tiles_service.tile_query(SearchFilter(raw=RawFilter()), 8, 160, 101),
    }
    settings = Settings(database_url=database_url)
    conn = await asyncpg.connect(database_url, server_settings=server_settings(settings))
    try:
        for name, (sql, values) in cases.items():
            for plan in await explain_ten_times(conn, sql, values):
                relations = {n.get("Relation Name") for n in plan}
                assert "incidents" not in seq_scans(plan), (name, summary(plan))
                if name == "grid":
                    assert "incident_grid_cells" in relations, summary(plan)
                    if "incidents" in relations:
                        assert "incidents_geom_gist" in index_names(plan), summary(plan)
                else:
                    assert "incidents" not in relations, (name, summary(plan))
    finally:
        await conn.close()


async def resolve_stats_filter(database_url: str, params: dict[str, Any]) -> Any:
    conn = await asyncpg.connect(database_url)
    try:
        return await resolve_filter(conn, build_raw_filter(params))
    finally:
        await conn.close()
