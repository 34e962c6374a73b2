"""The ACLED-compatible reads: the shared search with ACLED's rows, pages and lookups.

Pages are `page=N` of `limit` rows in storage order (id), which writes cannot shift: new
incidents come last. Page N starts after the last id of page N-1; those boundaries are kept
per query (an in-process LRU), so reading page 20 after page 19 is one keyset query, not an
OFFSET over 9,500 rows. A page asked for out of the blue walks the ids from the nearest known
boundary once (index only) and remembers every boundary it passes.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from app.acled.columns import COLUMNS, row_columns, row_json
from app.acled.filters import AcledQuery, bad
from app.core.db import Database
from app.core.errors import Unprocessable
from app.search.filters import OutputFormat, SearchFilter, Sort
from app.search.formats import csv_chunk
from app.search.params import build_raw_filter
from app.search.query import build_where, source_sql
from app.search.resolve import resolve_filter
from app.search.service import STREAM_BATCH, build_query

DEFAULT_LIMIT = 5000
MAX_LIMIT = 50_000
MARKS = 20_000

COUNTRIES_BY = {
    "iso": "SELECT iso_a3 FROM countries WHERE iso_n3 = ANY($1::smallint[])",
    "region": (
        "SELECT c.iso_a3 FROM countries c JOIN acled_regions r ON r.code = c.acled_region "
        "WHERE r.code::text = ANY($1::text[]) OR lower(r.name) = ANY($1::text[])"
    ),
}
LAST_UPDATE_SQL = """
SELECT coalesce(floor(extract(epoch FROM now() - changed_at) / 3600), 0)::int
FROM incident_revisions ORDER BY seq DESC LIMIT 1
"""


def fields_of(text: str | None) -> list[str]:
    """`fields=a|b|c` (commas tolerated) as ACLED columns; every column when absent."""
    if not text:
        return list(COLUMNS)
    names = [n.strip() for n in text.replace(",", "|").split("|") if n.strip()]
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise bad("fields", f"no column '{unknown[0]}'", text[:200])
    return list(dict.fromkeys(names))


async def search_filter(conn: asyncpg.Connection, query: AcledQuery) -> SearchFilter:
    try:
        raw = build_raw_filter(query.values)
        f = await resolve_filter(conn, raw)
    except Unprocessable as exc:
        detail = exc.errors[0] if exc.errors else {"field": "query", "message": exc.detail}
        raise bad(detail["field"], detail["message"], detail.get("value")) from exc
    for kind in ("iso", "region"):
        wanted = [v.lower() for k, v in query.countries_by if k == kind]
        if wanted:
            typed: list[Any] = wanted
            if kind == "iso":
                if not all(v.isdigit() for v in wanted):
                    raise bad("iso", "ISO 3166-1 numeric codes", "|".join(wanted))
                typed = [int(v) for v in wanted]
            codes = [r[0] for r in await conn.fetch(COUNTRIES_BY[kind], typed)]
            f.country_codes += codes or ["-"]  # nothing matches an unknown iso/region
    f.conditions = query.conditions
    f.described = query.described
    return f


def fingerprint(query: AcledQuery, names: list[str], limit: int) -> str:
    basis = (
        sorted(query.values.items()),
        sorted(query.described.items()),
        query.countries_by,
        names,
        limit,
    )
    return hashlib.sha256(repr(basis).encode()).hexdigest()[:24]


class PageMarks:
    """Where each page of a query starts: (query, page) -> the last id of the page before."""

    def __init__(self, size: int = MARKS) -> None:
        self.size = size
        self.marks: OrderedDict[tuple[str, int], int] = OrderedDict()

    def get(self, key: str, page: int) -> int | None:
        mark = self.marks.get((key, page))
        if mark is not None:
            self.marks.move_to_end((key, page))
        return mark

    def nearest(self, key: str, page: int) -> tuple[int, int] | None:
        """The highest known page at or before `page`, and its mark."""
        best = max((p for (k, p) in self.marks if k == key and p <= page), default=None)
        return None if best is None else (best, self.marks[(key, best)])

    def put(self, key: str, page: int, last_id: int) -> None:
        self.marks[(key, page)] = last_id
        self.marks.move_to_end((key, page))
        while len(self.marks) > self.size:
            self.marks.popitem(last=False)


MARKS_CACHE = PageMarks()


async def page_start(
    conn: asyncpg.Connection, f: SearchFilter, key: str, page: int, limit: int
) -> int | None:
    """The last id before `page` (None: the first page, or past the end)."""
    if page == 1:
        return 0
    known = MARKS_CACHE.get(key, page)
    if known is not None:
        return known
    start_page, start_id = MARKS_CACHE.nearest(key, page) or (1, 0)
    where = build_where(f)
    skip = (page - start_page) * limit
    sql = (
        f"SELECT i.id FROM {source_sql(f, where.params)} WHERE {where.sql} "  # noqa: S608
        f"AND i.id > {where.params.add(start_id)} ORDER BY i.id LIMIT {where.params.add(skip)}"
    )
    ids = [r["id"] for r in await conn.fetch(sql, *where.params.values)]
    for n in range(limit, len(ids) + 1, limit):
        MARKS_CACHE.put(key, start_page + n // limit, ids[n - 1])
    return MARKS_CACHE.get(key, page)


def _query(
    f: SearchFilter,
    names: list[str],
    labels: bool,
    csv: bool,
    *,
    after: int | None,
    limit: int | None,
) -> tuple[str, list[Any]]:
    """The rows in storage order: one JSON document each, or text columns for CSV."""
    select = row_columns(names, labels) if csv else f"({row_json(names, labels)})::text AS doc"
    sql, values, _ = build_query(
        f,
        sort=Sort.stored,
        fmt=OutputFormat.json,
        after=None if after is None else {"id": after},
        limit=limit,
        select=select,
    )
    return sql, values


async def read_page(
    conn: asyncpg.Connection,
    f: SearchFilter,
    *,
    names: list[str],
    labels: bool,
    key: str,
    page: int,
    limit: int,
    csv: bool,
) -> list[Any]:
    """One page: JSON texts, or rows of text columns for CSV."""
    after = await page_start(conn, f, key, page, limit)
    if after is None:
        return []
    sql, values = _query(f, names, labels, csv, after=after, limit=limit)
    rows = await conn.fetch(sql, *values)
    if len(rows) == limit:
        MARKS_CACHE.put(key, page + 1, int(rows[-1]["k_id"]))
    return [str(r["doc"]) for r in rows] if not csv else list(rows)


async def stream_rows(
    db: Database, f: SearchFilter, *, names: list[str], labels: bool, csv: bool
) -> AsyncIterator[Any]:
    """Every matching row in storage order, in batches, from a server-side cursor."""
    sql, values = _query(f, names, labels, csv, after=None, limit=None)
    async with db.read() as conn, conn.transaction(readonly=True):
        cursor = await conn.cursor(sql, *values)
        while True:
            batch = await cursor.fetch(STREAM_BATCH)
            if not batch:
                return
            yield batch


def csv_text(rows: list[Any], names: list[str], header: bool) -> str:
    return csv_chunk(rows, len(names), names if header else None)


async def last_update(conn: asyncpg.Connection) -> int:
    """Hours since the newest change (ACLED's `last_update`)."""
    return int(await conn.fetchval(LAST_UPDATE_SQL) or 0)


async def total(conn: asyncpg.Connection, f: SearchFilter) -> int:
    """`total_count` (only when asked for with `with_total=true`: it counts)."""
    where = build_where(f)
    sql = f"SELECT count(*) FROM {source_sql(f, where.params)} WHERE {where.sql}"  # noqa: S608
    return int(await conn.fetchval(sql, *where.params.values))
