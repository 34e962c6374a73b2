"""Incident search: one keyset-paged query, the k nearest, or a stream of everything."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.core.db import Database
from app.search.filters import OutputFormat, RawFilter, SearchFilter, Sort
from app.search.formats import csv_chunk, csv_select_sql, feature_doc_sql, incident_doc_sql
from app.search.query import Order, as_of_arms, build_where, keyset_clause, order_for

# Nearest-first without a radius: search growing circles until `limit` incidents are inside
# one (the k nearest overall are then all inside it), so distances stay geodesic and exact.
KNN_RADII_M = (1_000.0, 5_000.0, 25_000.0, 100_000.0, 500_000.0, 2_000_000.0, 20_040_000.0)
STREAM_BATCH = 2000


def filter_fingerprint(raw: RawFilter, sort: Sort) -> str:
    """Ties a cursor to the query it came from: reusing it with other filters is a 400."""
    return hashlib.sha256(repr((raw, sort.value)).encode()).hexdigest()[:16]


@dataclass
class Page:
    rows: list[asyncpg.Record]
    more: bool
    order: Order
    searched_radius_m: float | None = None


# Builds one row's JSON document from the distance expression (None without `near`).
DocSQL = Callable[[str | None], str]


def _select_sql(
    fmt: OutputFormat, distance_sql: str | None, doc: DocSQL | None, select: str | None
) -> str:
    if select is not None:
        return select
    if fmt is OutputFormat.csv and doc is None:
        return csv_select_sql(distance_sql)
    if doc is None:
        doc = feature_doc_sql if fmt is OutputFormat.geojson else incident_doc_sql
    return f"({doc(distance_sql)})::text AS doc"


def build_query(
    f: SearchFilter,
    *,
    sort: Sort,
    fmt: OutputFormat,
    after: dict[str, Any] | None,
    limit: int | None,
    doc: DocSQL | None = None,
    select: str | None = None,
) -> tuple[str, list[Any], Order]:
    """The page's SQL; `doc` replaces the format's document (e.g. OGC API features), or
    `select` the whole select list (e.g. the ACLED API's CSV columns)."""
    where = build_where(f)
    order = order_for(sort, where.distance_sql)
    clauses = list(where.clauses)
    if after is not None:
        clauses.append(keyset_clause(order, after, where.params, where.distance_sql))
    keys = "i.id AS k_id, i.event_date AS k_event_date, i.fatalities AS k_fatalities"
    if where.distance_sql is not None:
        keys += f", {where.distance_sql} AS k_distance"
    columns = f"{_select_sql(fmt, where.distance_sql, doc, select)}, {keys}"
    cap = f" LIMIT {where.params.add(limit)}" if limit is not None else ""
    if f.raw.as_of is None:
        sql = (
            f"SELECT {columns} FROM incidents i WHERE {' AND '.join(clauses)} "  # noqa: S608 (placeholders only)
            f"ORDER BY {order.order_by}{cap}"
        )
        return sql, where.params.values, order
    # As of an instant: the page of each half of the store, merged.
    arms = []
    for relation, condition in as_of_arms(f, where.params):
        arm = f"SELECT {columns} FROM {relation} WHERE {' AND '.join([*clauses, condition])}"  # noqa: S608
        if cap:
            arm += f" ORDER BY {order.order_by}{cap}"
        arms.append(f"({arm})")
    sql = f"{' UNION ALL '.join(arms)} ORDER BY {order.by_keys}{cap}"
    return sql, where.params.values, order


async def fetch_page(
    conn: asyncpg.Connection,
    f: SearchFilter,
    *,
    sort: Sort,
    fmt: OutputFormat,
    after: dict[str, Any] | None,
    limit: int,
    doc: DocSQL | None = None,
) -> Page:
    if f.nearest_first():
        return await _nearest(conn, f, fmt=fmt, limit=limit, doc=doc)
    sql, params, order = build_query(f, sort=sort, fmt=fmt, after=after, limit=limit + 1, doc=doc)
    rows = await conn.fetch(sql, *params)
    return Page(rows=rows[:limit], more=len(rows) > limit, order=order)


async def _nearest(
    conn: asyncpg.Connection,
    f: SearchFilter,
    *,
    fmt: OutputFormat,
    limit: int,
    doc: DocSQL | None = None,
) -> Page:
    rows: list[asyncpg.Record] = []
    order: Order | None = None
    radius = KNN_RADII_M[-1]
    for radius in KNN_RADII_M:
        f.radius_m = radius
        sql, params, order = build_query(
            f, sort=Sort.distance, fmt=fmt, after=None, limit=limit, doc=doc
        )
        rows = await conn.fetch(sql, *params)
        if len(rows) >= limit:
            break
    f.radius_m = None
    assert order is not None
    return Page(rows=rows, more=False, order=order, searched_radius_m=radius)


def cursor_payload(page: Page, raw: RawFilter, sort: Sort) -> dict[str, Any] | None:
    if not page.more or not page.rows:
        return None
    last = page.rows[-1]
    payload: dict[str, Any] = {
        "f": filter_fingerprint(raw, sort),
        "id": int(last["k_id"]),
        "event_date": last["k_event_date"].isoformat(),
        "fatalities": int(last["k_fatalities"]),
    }
    if "k_distance" in last.keys():
        payload["distance"] = float(last["k_distance"])
    return payload


async def stream(
    db: Database, f: SearchFilter, *, sort: Sort, fmt: OutputFormat, header: list[str] | None
) -> AsyncIterator[str]:
    """Every matching incident, in constant memory: a server-side cursor read in batches."""
    sql, params, _ = build_query(f, sort=sort, fmt=fmt, after=None, limit=None)
    width = len(header) if header else 0
    async with db.read() as conn:
        async with conn.transaction(readonly=True):
            if header is not None:
                yield csv_chunk([], width, header)
            cursor = await conn.cursor(sql, *params)
            while True:
                batch = await cursor.fetch(STREAM_BATCH)
                if not batch:
                    break
                if fmt is OutputFormat.csv:
                    yield csv_chunk(batch, width)
                else:
                    yield "".join(str(r["doc"]) + "\n" for r in batch)
