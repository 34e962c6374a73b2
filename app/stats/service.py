"""Aggregates for dashboards, computed in PostgreSQL over the shared search filter.

- `stats`: counts and fatalities grouped by one or two dimensions, time buckets zero-filled.
- `grid`: equal-area hexagons (EPSG:6933, metres) with counts, as GeoJSON.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from app.core.errors import Unprocessable, field_error
from app.search.filters import SearchFilter
from app.search.query import Params, attribute_clauses, build_where, source_sql
from app.search.rollups import MONTHLY, split_months

TIME_DIMS = {"day": "day", "week": "week", "month": "month", "year": "year"}
COLUMN_DIMS = {
    "event_type": "i.event_type",
    "sub_event_type": "i.sub_event_type",
    "disorder_type": "i.disorder_type",
    "country": "i.country",
    "admin1": "i.admin1",
    "admin2": "i.admin2",
    "actor": "act.actor",
}
DIMENSIONS = (*COLUMN_DIMS, *TIME_DIMS)
LABEL_FORMAT = {"day": "YYYY-MM-DD", "week": "YYYY-MM-DD", "month": "YYYY-MM", "year": "YYYY"}
STEP = {"day": "1 day", "week": "1 week", "month": "1 month", "year": "1 year"}
MAX_BUCKETS = 20_000
MAX_ROWS = 100_000

# Each incident counted once per distinct actor (ACLED's four actor fields).
ACTOR_JOIN = (
    " CROSS JOIN LATERAL (SELECT DISTINCT a AS actor FROM unnest(ARRAY[i.actor1, "
    "i.assoc_actor_1, i.actor2, i.assoc_actor_2]) a WHERE a IS NOT NULL) act"
)


def parse_group_by(raw: str) -> list[str]:
    dims = [d.strip() for d in raw.split(",") if d.strip()]
    if not 1 <= len(dims) <= 2 or len(set(dims)) != len(dims):
        raise Unprocessable(
            "group_by: one or two distinct dimensions",
            errors=[field_error("group_by", "give one or two dimensions", raw)],
        )
    for dim in dims:
        if dim not in DIMENSIONS:
            raise Unprocessable(
                f"group_by: unknown dimension '{dim}'; one of {', '.join(DIMENSIONS)}",
                errors=[field_error("group_by", "unknown dimension", dim)],
            )
    if sum(d in TIME_DIMS for d in dims) > 1:
        raise Unprocessable(
            "group_by: at most one time dimension",
            errors=[field_error("group_by", "two time dimensions", raw)],
        )
    return dims


def _bucket_count(start: dt.date, end: dt.date, unit: str) -> int:
    days = (end - start).days + 1
    return {
        "day": days,
        "week": days // 7 + 2,
        "month": days // 28 + 2,
        "year": end.year - start.year + 1,
    }[unit]


async def stats(conn: asyncpg.Connection, f: SearchFilter, dims: list[str]) -> str:
    """The items array as JSON text."""
    p = Params()
    time_dim = next((d for d in dims if d in TIME_DIMS), None)
    other = [d for d in dims if d not in TIME_DIMS]
    agg_sql = _rollup_agg_sql(f, dims, p) or _base_agg_sql(f, dims, p)
    rows_sql = "SELECT * FROM agg"
    extra_ctes = ""
    if time_dim:
        start, end = f.raw.start, f.raw.end
        if start is None or end is None:
            bp = Params()
            where = build_where(f, bp).sql
            bounds = await conn.fetchrow(
                f"SELECT min(i.event_date) AS lo, max(i.event_date) AS hi "
                f"FROM {source_sql(f, bp)} WHERE {where}",
                *bp.values,
            )
            start = start or bounds["lo"]
            end = end or bounds["hi"]
        if start is not None and end is not None:
            if _bucket_count(start, end, time_dim) > MAX_BUCKETS:
                raise Unprocessable(
                    f"group_by: more than {MAX_BUCKETS} {time_dim} buckets between {start} "
                    f"and {end}; narrow start/end or use a coarser unit",
                    errors=[field_error("group_by", "too many time buckets", time_dim)],
                )
            keys = ", ".join(other)
            keys_cte = (
                f"keys AS (SELECT DISTINCT {keys} FROM agg)" if other else "keys AS (SELECT 1)"
            )
            on = " AND ".join(
                [f"a.{time_dim} = b.bucket"] + [f"a.{d} IS NOT DISTINCT FROM k.{d}" for d in other]
            )
            other_cols = "".join(f", k.{d}" for d in other)
            extra_ctes = (
                f", {keys_cte}, buckets AS (SELECT generate_series(date_trunc('{time_dim}', "
                f"{p.add(start)}::date), {p.add(end)}::date, interval '{STEP[time_dim]}')::date "
                "AS bucket)"
            )
            rows_sql = (
                f"SELECT b.bucket AS {time_dim}{other_cols}, "
                "coalesce(a.incidents, 0) AS incidents, coalesce(a.fatalities, 0) AS fatalities "
                f"FROM buckets b CROSS JOIN keys k LEFT JOIN agg a ON {on}"
            )
    order = []
    if time_dim:
        order.append(f"{time_dim} ASC")
    order.append("incidents DESC")
    order += [f"{d} ASC" for d in other]
    fields = []
    for d in dims:
        if d in TIME_DIMS:
            fields.append(f"'{d}', to_char(r.{d}, '{LABEL_FORMAT[d]}')")
        else:
            fields.append(f"'{d}', r.{d}")
    fields += ["'incidents', r.incidents", "'fatalities', r.fatalities"]
    sql = (
        f"WITH agg AS ({agg_sql}){extra_ctes}, rows AS ({rows_sql} ORDER BY {', '.join(order)} "
        f"LIMIT {MAX_ROWS}) SELECT coalesce(json_agg(json_build_object({', '.join(fields)})), "
        "'[]')::text FROM rows r"
    )
    return str(await conn.fetchval(sql, *p.values))


def _base_agg_sql(f: SearchFilter, dims: list[str], p: Params) -> str:
    """Counts per group straight from the incidents matching the filter."""
    exprs = {d: COLUMN_DIMS[d] for d in dims if d not in TIME_DIMS}
    for d in dims:
        if d in TIME_DIMS:
            exprs[d] = f"date_trunc('{d}', i.event_date)::date"
    join = ACTOR_JOIN if "actor" in dims else ""
    select = ", ".join(f"{exprs[d]} AS {d}" for d in dims)
    group = ", ".join(str(n + 1) for n in range(len(dims)))
    where = build_where(f, p).sql
    source = source_sql(f, p)
    return (
        f"SELECT {select}, count(*) AS incidents, coalesce(sum(i.fatalities), 0) AS fatalities "
        f"FROM {source}{join} WHERE {where} GROUP BY {group}"
    )


# Filters and dimensions the monthly rollup carries: anything else (a place, an area, actors,
# text, a fatality floor, day or week buckets) is counted from the incidents themselves.
ROLLUP_DIMS = {
    "month",
    "year",
    "event_type",
    "sub_event_type",
    "disorder_type",
    "country",
    "admin1",
    "admin2",
}


def rollup_applies(f: SearchFilter, dims: list[str]) -> bool:
    return set(dims) <= ROLLUP_DIMS and MONTHLY.serves(f)


def _rollup_agg_sql(f: SearchFilter, dims: list[str], p: Params) -> str | None:
    """Whole months from `incident_rollup_month`, partial months at either end from incidents.

    Same groups and sums as `_base_agg_sql` (tests compare the two on the same data).
    """
    if not rollup_applies(f, dims):
        return None
    split = split_months(f.raw.start, f.raw.end)
    if split is None:
        return None  # not one whole month: the incidents are few, count them directly
    lo, hi, edges = split
    exprs = {
        d: "r.event_type" if d == "event_type" else f"NULLIF(r.{d}, '')"
        for d in dims
        if d not in TIME_DIMS
    }
    if "month" in dims:
        exprs["month"] = "r.month"
    if "year" in dims:
        exprs["year"] = "date_trunc('year', r.month)::date"
    clauses = attribute_clauses(f, p, "r", blank_is_null=True)
    if lo is not None:
        clauses.append(f"r.month >= {p.add(lo)}")
    if hi is not None:
        clauses.append(f"r.month < {p.add(hi)}")
    select = ", ".join(f"{exprs[d]} AS {d}" for d in dims)
    parts = [
        f"SELECT {select}, r.incidents, r.fatalities FROM incident_rollup_month r"
        + (f" WHERE {' AND '.join(clauses)}" if clauses else "")
    ]
    for edge_start, edge_end in edges:
        parts.append(_base_agg_sql(f.between(edge_start, edge_end), dims, p))
    cols = ", ".join(dims)
    return (
        f"SELECT {cols}, sum(incidents) AS incidents, sum(fatalities) AS fatalities "
        f"FROM ({' UNION ALL '.join(parts)}) u GROUP BY {cols} HAVING sum(incidents) > 0"
    )
