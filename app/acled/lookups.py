"""ACLED's lookup endpoints and deleted events, over the live incidents.

`deleted/read`: soft-deleted incidents (their last state), the sync counterpart of
`acled/read?timestamp=`. `country/read` and `region/read` count from the monthly rollup and take
each country's first and last day from the country index; `actor/read` and `actortype/read`
count the incidents themselves (every actor field, ACLED's actor-type codes). Rows are strings,
as in ACLED's responses.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import asyncpg

from app.acled.columns import INTER1, INTER2
from app.acled.filters import OPERATORS, bad
from app.incidents.fields import INTER_LABELS
from app.search.query import Params

COLUMNS = {
    "deleted": ["event_id_cnty", "deleted_timestamp"],
    "actor": ["actor_name", "first_event_date", "last_event_date", "event_count"],
    "country": ["country", "iso", "iso3", "first_event_date", "last_event_date", "event_count"],
    "actortype": [
        "actor_type_id",
        "actor_type_name",
        "first_event_date",
        "last_event_date",
        "event_count",
    ],
    "region": ["region", "region_name", "first_event_date", "last_event_date", "event_count"],
}
DOCS = {
    "deleted": "Soft-deleted incidents: `deleted_timestamp` (Unix seconds or a date; `>=` by "
    "default, or `deleted_timestamp_where`) and `event_id_cnty` filters, in id order.",
    "actor": "Every actor of the live incidents (any of the four actor fields). Filters: "
    "`actor_name` (`=` case-insensitive, or `actor_name_where=LIKE`), `first_event_date`, "
    "`last_event_date`, `event_count` with `_where` operators.",
    "country": "Countries with incidents. Filters: `country`, `iso`, `iso3`, and the dates and "
    "count as on actor/read.",
    "actortype": "ACLED's actor types (1 State forces ... 8 External/Other forces) of the live "
    "incidents' actors (stored codes, or derived from the actors' names).",
    "region": "ACLED's regions with incidents (`region` is the code, `region_name` the name).",
}

_SOURCES = {
    "actor": """
        SELECT a.actor AS actor_name, min(i.event_date) AS first_event_date,
               max(i.event_date) AS last_event_date, count(*) AS event_count
        FROM incidents i
        CROSS JOIN LATERAL (SELECT DISTINCT x AS actor FROM unnest(ARRAY[i.actor1,
            i.assoc_actor_1, i.actor2, i.assoc_actor_2]) x WHERE x IS NOT NULL) a
        WHERE i.deleted_at IS NULL GROUP BY a.actor
    """,
    "country": """
        SELECT c.name AS country, c.iso_n3 AS iso, c.iso_a3 AS iso3,
               (SELECT min(i.event_date) FROM incidents i
                WHERE i.country_code = c.iso_a3 AND i.deleted_at IS NULL) AS first_event_date,
               (SELECT max(i.event_date) FROM incidents i
                WHERE i.country_code = c.iso_a3 AND i.deleted_at IS NULL) AS last_event_date,
               r.n::bigint AS event_count
        FROM (SELECT country_code, sum(incidents) AS n FROM incident_rollup_month
              WHERE country_code <> '' GROUP BY country_code HAVING sum(incidents) > 0) r
        JOIN countries c ON c.iso_a3 = r.country_code
    """,
    "actortype": f"""
        SELECT t.code AS actor_type_id, min(i.event_date) AS first_event_date,
               max(i.event_date) AS last_event_date, count(*) AS event_count
        FROM incidents i
        CROSS JOIN LATERAL (SELECT DISTINCT x AS code FROM unnest(ARRAY[{INTER1}, {INTER2}]) x
                            WHERE x > 0) t
        WHERE i.deleted_at IS NULL GROUP BY t.code
    """,
    "region": """
        SELECT g.code AS region, g.name AS region_name, min(m.first_day) AS first_event_date,
               max(m.last_day) AS last_event_date, sum(r.n)::bigint AS event_count
        FROM (SELECT country_code, sum(incidents) AS n FROM incident_rollup_month
              WHERE country_code <> '' GROUP BY country_code HAVING sum(incidents) > 0) r
        JOIN countries c ON c.iso_a3 = r.country_code
        JOIN acled_regions g ON g.code = c.acled_region
        CROSS JOIN LATERAL (
            SELECT min(i.event_date) AS first_day, max(i.event_date) AS last_day
            FROM incidents i WHERE i.country_code = c.iso_a3 AND i.deleted_at IS NULL) m
        GROUP BY g.code, g.name
    """,
}
# The key each lookup is ordered and paged by.
_KEYS = {
    "actor": "actor_name",
    "country": "country",
    "actortype": "actor_type_id",
    "region": "region",
}
_TYPES = {
    "actor_name": "text",
    "country": "text",
    "iso3": "text",
    "region_name": "text",
    "actor_type_name": "text",
    "iso": "int",
    "region": "int",
    "actor_type_id": "int",
    "event_count": "int",
    "first_event_date": "date",
    "last_event_date": "date",
}


def _conditions(query: Mapping[str, str], names: list[str], p: Params) -> list[str]:
    clauses = []
    for name in names:
        text = query.get(name, "").strip()
        if not text or name == "actor_type_name":
            continue
        op = query.get(f"{name}_where", "=").strip().upper()
        if op not in OPERATORS:
            raise bad(f"{name}_where", f"one of {', '.join(OPERATORS)}", op)
        kind = _TYPES[name]
        items = [v.strip() for v in text.split("|")]
        try:
            typed: list[Any] = [
                int(v) if kind == "int" else dt.date.fromisoformat(v) if kind == "date" else v
                for v in items
            ]
        except ValueError as exc:
            raise bad(name, f"not a valid {kind}", text[:100]) from exc

        add = p.add
        column = f"s.{name}"
        if op == "LIKE":
            clauses.append(
                "("
                + " OR ".join(f"{column}::text ILIKE '%' || {add(v)} || '%'" for v in items)
                + ")"
            )
        elif op == "BETWEEN":
            if len(typed) != 2:
                raise bad(name, "BETWEEN takes low|high", text[:100])
            clauses.append(f"{column} BETWEEN {add(typed[0])} AND {add(typed[1])}")
        elif kind == "text" and op == "=":
            clauses.append(
                "(" + " OR ".join(f"lower({column}) = lower({add(v)})" for v in typed) + ")"
            )
        else:
            clauses.append("(" + " OR ".join(f"{column} {op} {add(v)}" for v in typed) + ")")
    return clauses


def _strings(row: asyncpg.Record) -> dict[str, str]:
    return {
        k: "" if v is None else v.isoformat() if isinstance(v, dt.date) else str(v)
        for k, v in row.items()
    }


async def lookup(
    conn: asyncpg.Connection, kind: str, query: Mapping[str, str], *, limit: int, page: int
) -> list[dict[str, str]]:
    if kind == "deleted":
        return await deleted(conn, query, limit=limit, page=page)
    p = Params()
    clauses = _conditions(query, COLUMNS[kind], p)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    source, order = _SOURCES[kind], _KEYS[kind]
    last, skip = p.add(limit or None), p.add((page - 1) * (limit or 0))
    sql = f"SELECT * FROM ({source}) s {where} ORDER BY s.{order} LIMIT {last} OFFSET {skip}"
    rows = [_strings(r) for r in await conn.fetch(sql, *p.values)]
    if kind == "actortype":
        for row in rows:
            row["actor_type_name"] = INTER_LABELS.get(int(row["actor_type_id"]), "")
        wanted = query.get("actor_type_name", "").strip().lower()
        if wanted:
            rows = [r for r in rows if r["actor_type_name"].lower() in wanted.split("|")]
    return [{name: row.get(name, "") for name in COLUMNS[kind]} for row in rows]


DELETED_SQL = """
SELECT coalesce(i.external_id, i.id::text) AS event_id_cnty,
       extract(epoch FROM i.deleted_at)::bigint::text AS deleted_timestamp, i.id
FROM incidents i
WHERE i.deleted_at IS NOT NULL AND {where}
ORDER BY i.id LIMIT {last} OFFSET {skip}
"""


async def deleted(
    conn: asyncpg.Connection, query: Mapping[str, str], *, limit: int, page: int
) -> list[dict[str, str]]:
    """Deleted incidents in id order. Deleted rows are few (and indexed): a plain offset."""
    p = Params()
    last, skip = p.add(limit or None), p.add((page - 1) * (limit or 0))
    clauses = ["true"]
    text = query.get("deleted_timestamp", "").strip()
    if text:
        op = query.get("deleted_timestamp_where", ">=").strip().upper()
        items = [v.strip() for v in text.split("|")]
        try:
            moments = [
                int(v)
                if v.isdigit()
                else int(
                    dt.datetime.combine(dt.date.fromisoformat(v), dt.time(), dt.UTC).timestamp()
                )
                for v in items
            ]
        except ValueError as exc:
            raise bad("deleted_timestamp", "Unix seconds or a date", text[:100]) from exc
        if op == "BETWEEN" and len(moments) == 2:
            low, high = p.add(moments[0]), p.add(moments[1])
            clauses.append(f"i.deleted_at BETWEEN to_timestamp({low}) AND to_timestamp({high})")
        elif op in ("=", ">", "<", ">=", "<="):
            clauses.append(f"i.deleted_at {op} to_timestamp({p.add(moments[0])})")
        else:
            raise bad("deleted_timestamp_where", "=, >, <, >=, <= or BETWEEN", op)
    ids = query.get("event_id_cnty", "").strip()
    if ids:
        wanted = p.add([v.strip() for v in ids.split("|")])
        clauses.append(f"coalesce(i.external_id, i.id::text) = ANY({wanted}::text[])")
    sql = DELETED_SQL.format(where=" AND ".join(clauses), last=last, skip=skip)
    rows = await conn.fetch(sql, *p.values)
    return [
        {"event_id_cnty": r["event_id_cnty"], "deleted_timestamp": r["deleted_timestamp"]}
        for r in rows
    ]
