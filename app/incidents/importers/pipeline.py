"""Bulk upsert: a batch staged in work tables, then every guarantee of the store applied to the
whole batch at once, each step one statement over the batch:

1. **stage**: raw rows mapped and validated in SQL (`raw`, `transform`); rows SQL does not
   vouch for, and files SQL cannot read, validated by `IncidentIn` in Python (`rows`);
2. **ready**: place fill (once per distinct country/code/admin-1 where the rule cannot need the
   point, else per row; `incident_place_fill`, migration 0008), unknown codes refused, later
   rows of one external_id superseding earlier ones, the incident each row updates and the
   fields it changes;
3. **ids** for the new rows, in row order (what posting them one by one would give);
4. **duplicates**: `incident_duplicate_pair` (migration 0012, the rule single creates use)
   between each new row and the store's live incidents and the batch's earlier new rows, at
   most ten each, found through (event type, latitude band, date) indexes, the batch's new
   rows probed in that order from a narrow copy of them (`PROBE_SQL`);
5. **write**: one INSERT…ON CONFLICT with its revisions (rollups and history follow from the
   statement triggers, or for a rebuilding load the rollups are computed beside it on a
   second connection: `upsert_beside_rollups`); identical rows are not even locked.

Steps 1-4 only read the store; `write` is the only step that changes it. Work tables are
UNLOGGED, built with CREATE TABLE AS (which PostgreSQL runs with parallel workers). Used by
`POST /v1/incidents/bulk` (one transaction per request) and `incidents import` (`job`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.incidents.enrich import place_at, unknown_code, unknown_place
from app.incidents.fields import WRITABLE_COLUMNS
from app.incidents.importers.raw import RawTable, Tables
from app.incidents.importers.rows import (
    JSON_COLUMNS,
    MAX_LISTED,
    STAGE_COLUMNS,
    STAGE_TYPES,
    BulkReport,
    Pending,
    RowProblem,
    stage_tuple,
    validate,
)
from app.places.service import best_place

FALLBACK_PAGE = 20_000  # rows SQL refused, handed to Python at a time
PARALLEL_MIN_ROWS = 20_000  # below this a statement is not split over two connections
WORK_STATISTICS = 10  # statistics target for work tables (300 x 10 rows sampled)

_STAGE_DDL = ", ".join(f"{c} {STAGE_TYPES[c]}" for c in STAGE_COLUMNS)
_EXTRA = "geom geometry, actors text[], digest uuid, bad boolean NOT NULL DEFAULT false"

# Where the fill rule cannot need the point: admin-1 given, and a code given or found from the
# name (see incident_place_fill). Worked out once per distinct key.
_NEEDS_FILL = (
    "(s.country IS NULL OR s.admin1 IS NULL OR s.country_code IS NULL "
    "OR NOT EXISTS (SELECT 1 FROM countries c WHERE c.iso_a3 = s.country_code))"
)
FILLS_SQL = """
CREATE UNLOGGED TABLE {fills} AS
SELECT coalesce(k.country, '') AS k_country, coalesce(k.country_code, '') AS k_code,
       k.admin1 AS k_admin1, x.country, x.country_code, x.admin1, x.unknown_code
FROM (SELECT DISTINCT s.country, s.country_code, s.admin1 FROM {stage} s
      WHERE s.admin1 IS NOT NULL AND {needs}) k
CROSS JOIN LATERAL incident_place_fill(k.country, k.country_code, k.admin1, NULL, NULL) x
WHERE k.country_code IS NOT NULL OR x.country_code IS NOT NULL
"""

_JSONB = {c: f"{c}::jsonb" for c in JSON_COLUMNS}
_FILLED = ("country", "country_code", "admin1")
_CHANGED = (
    "array_remove(ARRAY["
    + ", ".join(
        f"CASE WHEN i.{c} IS DISTINCT FROM f.{_JSONB.get(c, c)} THEN '{c}' END"
        for c in WRITABLE_COLUMNS
    )
    + ", CASE WHEN ST_Y(i.geom) IS DISTINCT FROM f.lat THEN 'latitude' END"
    + ", CASE WHEN ST_X(i.geom) IS DISTINCT FROM f.lon THEN 'longitude' END"
    + ", CASE WHEN i.deleted_at IS NOT NULL THEN 'deleted_at' END], NULL)"
)
_READY_COLUMNS = ", ".join(
    f"CASE WHEN k.k_admin1 IS NOT NULL THEN k.{c} WHEN p.filled THEN p.{c} ELSE s.{c} END AS {c}"
    if c in _FILLED
    else f"s.{c}"
    for c in STAGE_COLUMNS
)
READY_SQL = (
    "SELECT f.*, i.id AS existing_id, "
    "CASE WHEN i.id IS NOT NULL THEN " + _CHANGED + " END AS changed, "
    "incident_lat_cell(f.geom) AS cell FROM ("
    "SELECT " + _READY_COLUMNS + ", s.geom, s.actors, s.digest, "
    "coalesce(k.unknown_code, p.unknown_code, false) AS unknown_code "
    "FROM {stage} s "
    "LEFT JOIN {fills} k ON coalesce(s.country, '') = k.k_country "
    "AND coalesce(s.country_code, '') = k.k_code AND s.admin1 = k.k_admin1 "
    "LEFT JOIN LATERAL (SELECT x.*, true AS filled FROM incident_place_fill("
    "s.country, s.country_code, s.admin1, s.lon, s.lat) x "
    "WHERE k.k_admin1 IS NULL AND " + _NEEDS_FILL + ") p ON true "
    # Two rows of the batch with one external_id: the later one wins.
    "WHERE NOT EXISTS (SELECT 1 FROM {stage} l WHERE l.external_id = s.external_id "
    "AND l.row_no > s.row_no) AND s.row_no {rows} OFFSET 0) f "
    "LEFT JOIN incidents i ON i.external_id = f.external_id"
)

UNKNOWN_CODES_SQL = "DELETE FROM {ready} WHERE unknown_code RETURNING row_no, line_no, country_code"

IDS_SQL = (
    "CREATE UNLOGGED TABLE {ids} AS SELECT o.row_no, "
    "nextval(pg_get_serial_sequence('incidents', 'id')) AS id "
    "FROM (SELECT row_no FROM {ready} WHERE existing_id IS NULL ORDER BY row_no OFFSET 0) o"
)

_PAIR = (
    "incident_duplicate_pair(s.geom, s.event_type, s.event_date, s.external_id, s.actors, "
    "{b}.geom, {b}.event_type, {b}.event_date, {b}.external_id, {actors})"
)
# The three latitude bands a match can be in, each probed through the index with equality on
# (event type, band) and the date range. The band comes from a LATERAL row behind OFFSET 0 (not
# flattened): otherwise the planner scans every band of the type and filters, 100x slower.
# (Tried: a join on nine (type, band, day) keys per row. With the work table's statistics right
# the planner merge-joins it against the whole store in index order, 2x slower than these
# probes; with them wrong it probes nine times instead of three, no faster.)
_CELLS = "unnest(ARRAY[s.cell - 1, s.cell, s.cell + 1]) AS c(cell) CROSS JOIN LATERAL"
_DATES = "BETWEEN s.event_date - 1 AND s.event_date + 1"
# The earliest ten matches in the store, as a single create lists them (store ids are below the
# batch's), then any ten earlier rows of the batch: LIMIT without ORDER BY stops at the tenth,
# where sorting would compare every pair of a batch of identical rows (quadratic).
# No `geom && box` condition on the store side: with it the planner probes the GiST (point,
# date) index instead, 3x slower where incidents cluster (the pair rule checks the distance).
# The box's longitude window is checked on the index entries (migration 0015): only the
# candidates inside it are fetched from the table (3x faster than fetching the whole band).
STORE_CANDIDATES = (
    f"(SELECT NULL::bigint AS other_row, m.id AS store_id FROM {_CELLS} "
    "(SELECT i.id FROM incidents i WHERE incident_lat_cell(i.geom) = c.cell "
    f"AND i.event_type = s.event_type AND i.event_date {_DATES} AND i.deleted_at IS NULL "
    "AND ST_X(i.geom) BETWEEN ST_XMin(incident_duplicate_box(s.geom)) "
    "AND ST_XMax(incident_duplicate_box(s.geom)) AND "
    + _PAIR.format(
        b="i",
        actors="incident_duplicate_actors(i.actor1, i.assoc_actor_1, i.actor2, i.assoc_actor_2)",
    )
    + " OFFSET 0) m ORDER BY m.id LIMIT 10)"
)
BATCH_CANDIDATES = (
    f"(SELECT m.row_no AS other_row, NULL::bigint AS store_id FROM {_CELLS} "
    "(SELECT e.row_no FROM {probe} e WHERE e.cell = c.cell "
    f"AND e.event_type = s.event_type AND e.event_date {_DATES} AND e.row_no < s.row_no "
    "AND e.geom && incident_duplicate_box(s.geom) AND "
    + _PAIR.format(b="e", actors="e.actors")
    + " OFFSET 0) m LIMIT 10)"
)
# The new rows with actors (the only ones the rule can pair), only the columns it reads,
# written in the order of the index it is probed through, and probed in that order: each
# probe finds the pages the previous one read (4x faster than probing the wide `ready` table
# in row order). `seq` numbers that order, so the join splits into halves of it.
PROBE_SQL = (
    "CREATE UNLOGGED TABLE {probe} AS SELECT row_number() OVER w AS seq, row_no, event_type, "
    "cell, event_date, external_id, actors, geom FROM {ready} "
    "WHERE existing_id IS NULL AND cardinality(actors) > 0 "
    "WINDOW w AS (ORDER BY event_type, cell, event_date, row_no) ORDER BY seq"
)
PAIRS_INDEX_SQL = "CREATE INDEX ON {probe} (event_type, cell, event_date)"
PAIRS_SQL = (
    "SELECT s.row_no, m.other_row, m.store_id "
    "FROM {probe} s CROSS JOIN LATERAL ({candidates}) m WHERE s.seq {rows}"
)
DUPS_SQL = (
    "CREATE UNLOGGED TABLE {dups} AS SELECT p.row_no, "
    "(array_agg(coalesce(n.id, p.store_id) ORDER BY coalesce(n.id, p.store_id)))[1:10] AS ids "
    "FROM {pairs} p LEFT JOIN {ids} n ON n.row_no = p.other_row GROUP BY p.row_no"
)

_SELECT = ", ".join("r." + _JSONB.get(c, c) for c in WRITABLE_COLUMNS)
_SET = ", ".join(f"{c} = EXCLUDED.{c}" for c in WRITABLE_COLUMNS)
_OLD = ", ".join(f"i.{c}" for c in WRITABLE_COLUMNS)
_NEW = ", ".join(f"EXCLUDED.{c}" for c in WRITABLE_COLUMNS)

# The rows of `ready` (as `r`) the write writes: new ones and those that change the store.
_WRITTEN = "(r.existing_id IS NULL OR r.changed <> '{{}}')"

# One statement: insert new rows (with the ids given above), update changed ones (a re-posted
# deleted incident comes back), leave identical ones alone; every row written gets its
# revision.
UPSERT_SQL = (
    "WITH up AS (INSERT INTO incidents AS i (id, "
    + ", ".join(WRITABLE_COLUMNS)
    + ", geom, possible_duplicates, source_digest, source_version) OVERRIDING SYSTEM VALUE "
    "SELECT coalesce(n.id, r.existing_id), " + _SELECT + ", r.geom, coalesce(d.ids, '{{}}'), "
    "r.digest, 1 FROM {ready} r "
    "LEFT JOIN {ids} n ON n.row_no = r.row_no LEFT JOIN {dups} d ON d.row_no = r.row_no "
    "WHERE " + _WRITTEN + " ORDER BY r.row_no "
    "ON CONFLICT (external_id) DO UPDATE SET " + _SET + ", geom = EXCLUDED.geom, "
    "version = i.version + 1, updated_at = greatest(now(), i.updated_at), deleted_at = NULL, "
    "source_digest = EXCLUDED.source_digest, source_version = i.version + 1 "
    "WHERE (" + _OLD + ", ST_X(i.geom), ST_Y(i.geom), i.deleted_at IS NOT NULL) "
    "IS DISTINCT FROM (" + _NEW + ", ST_X(EXCLUDED.geom), ST_Y(EXCLUDED.geom), false) "
    "RETURNING i.id, i.version, i.external_id, (i.xmax = 0) AS inserted), "
    "rev AS (INSERT INTO incident_revisions (incident_id, version, op, changed_by, "
    "changed_fields) SELECT u.id, u.version, CASE WHEN u.inserted THEN 'create' "
    "ELSE 'update' END, $1, CASE WHEN u.inserted THEN '{{}}'::text[] "
    "ELSE coalesce(r.changed, '{{}}') END "
    "FROM up u LEFT JOIN {ready} r ON NOT u.inserted AND r.external_id = u.external_id) "
    "SELECT count(*) FILTER (WHERE inserted) AS inserted, "
    "count(*) FILTER (WHERE NOT inserted) AS updated FROM up"
)

TO_WRITE_SQL = "SELECT count(*) FROM {ready} r WHERE " + _WRITTEN

# Rollups beside a big write (migration 0014): the rollup triggers are disabled inside the
# write's transaction, and a second connection computes their deltas meanwhile, with the same
# statements, from the batch (+1) and the live incidents it replaces (-1, found again by
# external_id: what the upsert will find, since the trigger change holds the lock that keeps
# other writers out until commit).
ROLLUP_TRIGGERS = (
    "incidents_rollups_insert",
    "incidents_rollups_update",
    "incidents_grid_insert",
    "incidents_grid_update",
)
# `{cols}`: the rollups' columns, as the database lists them (`incident_rollup_columns()`).
DELTAS_SRC = (
    "SELECT {cols}, 1 AS sign FROM {ready} r WHERE " + _WRITTEN + " UNION ALL "
    "SELECT {old_cols}, -1 FROM {ready} r JOIN incidents i ON i.external_id = r.external_id "
    "WHERE i.deleted_at IS NULL AND " + _WRITTEN
)
FLAGGED_SQL = (
    "SELECT d.row_no, r.external_id, d.ids FROM {dups} d JOIN {ready} r USING (row_no) "
    f"ORDER BY d.row_no LIMIT {MAX_LISTED}"
)


def sql(template: str, tables: Tables, **extra: str) -> str:
    """A statement over this load's work tables (their names are generated, never input)."""
    return template.format(
        raw=tables.raw,
        stage=tables.stage,
        fills=tables.fills,
        ready=tables.ready,
        ids=tables.ids,
        probe=tables.probe,
        pairs=tables.pairs,
        dups=tables.dups,
        needs=_NEEDS_FILL,
        **extra,
    )


async def new_stage(conn: asyncpg.Connection, tables: Tables) -> None:
    """An empty staging table (for batches staged in Python only)."""
    await conn.execute(f"DROP TABLE IF EXISTS {tables.stage}")
    await conn.execute(f"CREATE UNLOGGED TABLE {tables.stage} ({_STAGE_DDL}, {_EXTRA})")


async def resolve_locations(
    conn: asyncpg.Connection, pending: list[Pending], report: BulkReport
) -> list[tuple[Any, ...]]:
    """Rows with a place name and no coordinates, placed through the gazetteer (each distinct
    name looked up once)."""
    rows = []
    cache: dict[tuple[str, str | None], dict[str, Any] | None] = {}
    for item in pending:
        incident = item.incident
        key = (incident.location or "", incident.country_code)
        if key not in cache:
            cache[key] = await best_place(conn, name=key[0], country=key[1])
        place = cache[key]
        if place is None:
            report.add_error(RowProblem(item.row, item.line, [unknown_place(key[0])]))
            continue
        place_at(incident, place)
        rows.append(stage_tuple(item.row, item.line, incident))
    return rows


async def stage_python(
    conn: asyncpg.Connection, tables: Tables, rows: list[tuple[Any, ...]]
) -> None:
    """COPY rows validated in Python (STAGE_COLUMNS tuples) into the staging table."""
    if rows:
        await conn.copy_records_to_table(tables.stage, records=rows, columns=STAGE_COLUMNS)
        await conn.execute(
            f"UPDATE {tables.stage} SET geom = ST_SetSRID(ST_MakePoint(lon, lat), 4326), "
            "actors = incident_duplicate_actors(actor1, assoc_actor_1, actor2, assoc_actor_2) "
            "WHERE geom IS NULL"
        )


def _rows(first: int, last: int, offset: int = 0) -> str:
    return f"BETWEEN {int(first + offset)} AND {int(last + offset)}"


async def split(
    conn: asyncpg.Connection,
    helper: asyncpg.Connection | None,
    table: str,
    select: Callable[[str], str],
    first: int,
    last: int,
) -> None:
    """CREATE UNLOGGED TABLE `table` AS `select(range)` over rows `first`..`last`; with a
    `helper` connection (the work tables committed, outside a transaction) the range is
    halved and both halves run at once, one per connection (two cores; PostgreSQL's own
    parallel query does not take these statements)."""
    if helper is None or last - first < PARALLEL_MIN_ROWS:
        await conn.execute(f"CREATE UNLOGGED TABLE {table} AS {select(_rows(first, last))}")
        return
    middle = (first + last) // 2
    await conn.execute(
        f"CREATE UNLOGGED TABLE {table} AS {select(_rows(first, middle))} WITH NO DATA"
    )
    await asyncio.gather(
        conn.execute(f"INSERT INTO {table} {select(_rows(first, middle))}"),
        helper.execute(f"INSERT INTO {table} {select(_rows(middle + 1, last))}"),
    )


async def split_over(
    conn: asyncpg.Connection,
    helper: asyncpg.Connection | None,
    table: str,
    select: Callable[[str], str],
    source: str,
    column: str = "row_no",
) -> None:
    """`split` over the rows of the work table `source`, from its first `column` to its
    last."""
    span = await conn.fetchrow(f"SELECT min({column}) AS a, max({column}) AS b FROM {source}")
    await split(conn, helper, table, select, int(span["a"] or 0), int(span["b"] or 0))


# Raw rows a previous import wrote and nothing changed since: same external id (once in the
# file), same digest, the incident live and still at the version that import wrote. The rows
# to keep are copied to a new raw table (few, on a re-run) rather than the others deleted.
KEEP_SQL = """
CREATE UNLOGGED TABLE {keep} AS
SELECT r.* FROM {raw} r
WHERE NOT EXISTS (
        SELECT 1 FROM incidents i
        WHERE i.external_id = {key} AND i.source_digest = {digest}
          AND i.source_version = i.version AND i.deleted_at IS NULL)
   OR {key} IN (SELECT {key} FROM {raw} r GROUP BY 1 HAVING count(*) > 1)
"""


async def skip_unchanged(conn: asyncpg.Connection, raw: RawTable, report: BulkReport) -> int:
    """Takes out of the raw table the rows that would be unchanged (`KEEP_SQL`) and counts them
    as such, so they are neither validated nor compared. CSV files with multi-line cells keep
    every row (their line numbers are counted from the raw rows)."""
    if raw.format == "csv" and not raw.plain_lines:
        return 0
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM incidents)"):
        return 0  # an empty store: nothing can be unchanged
    tables = raw.tables
    with report.timed("skip unchanged (digest)"):
        before = int(await conn.fetchval(f"SELECT count(*) FROM {tables.raw}"))
        await conn.execute(f"DROP TABLE IF EXISTS {tables.keep}")
        status = await conn.execute(
            KEEP_SQL.format(
                keep=tables.keep, raw=tables.raw, key=raw.key_sql(), digest=raw.digest_sql()
            )
        )
        kept = int(status.split()[-1])
        if kept < before:
            await conn.execute(f"DROP TABLE {tables.raw}")
            await conn.execute(f"ALTER TABLE {tables.keep} RENAME TO {tables.raw}")
            await conn.execute(f"CREATE INDEX ON {tables.raw} (row_no)")
        else:
            await conn.execute(f"DROP TABLE {tables.keep}")
    report.unchanged += before - kept
    return before - kept


async def stage_raw(
    conn: asyncpg.Connection,
    raw: RawTable,
    first: int,
    last: int,
    report: BulkReport,
    helper: asyncpg.Connection | None = None,
) -> None:
    """Stages raw rows `first`..`last` (a new staging table): SQL maps and validates them, the
    Python path takes every row SQL does not vouch for."""
    tables = raw.tables
    with report.timed("stage in SQL"):
        await conn.execute(f"DROP TABLE IF EXISTS {tables.stage}")
        if first > 1 or last < raw.rows or helper is not None:
            await split(
                conn,
                helper,
                tables.stage,
                lambda rows: raw.stage_select(f"WHERE r.row_no {rows}"),
                first + raw.offset,
                last + raw.offset,
            )
        else:
            await conn.execute(f"CREATE UNLOGGED TABLE {tables.stage} AS {raw.stage_select()}")
    report.received += last - first + 1
    report.last_row = max(report.last_row, last)
    with report.timed("rows SQL left to Python"):
        refused = [
            r["row_no"]
            for r in await conn.fetch(f"DELETE FROM {tables.stage} WHERE bad RETURNING row_no")
        ]
        rejected = [r for r in raw.rejected if first <= r.row <= last]
        for page in range(0, max(len(refused), 1), FALLBACK_PAGE):
            records = await raw.records(conn, refused[page : page + FALLBACK_PAGE])
            if page == 0:
                records = sorted(records + rejected, key=lambda r: r.row)
            rows: list[tuple[Any, ...]] = []
            pending: list[Pending] = []
            for record in records:
                incident, problem = validate(record)
                if problem is not None:
                    report.add_error(problem)
                elif incident is not None and incident.latitude is None:
                    pending.append(Pending(record.row, record.line, incident))
                elif incident is not None:
                    rows.append(stage_tuple(record.row, record.line, incident))
            rows += await resolve_locations(conn, pending, report)
            await stage_python(conn, tables, rows)


@dataclass
class Prepared:
    staged: int  # rows of the batch that were valid (superseded ones included)
    flagged: int
    listed: list[dict[str, Any]]
    to_write: int = 0  # new rows and rows that change what is stored


async def prepare(
    conn: asyncpg.Connection,
    tables: Tables,
    report: BulkReport,
    helper: asyncpg.Connection | None = None,
) -> Prepared:
    """Steps 2-4 over the staged batch. Reads the store (with its indexes) and writes only
    work tables (the duplicate join split over `helper` too, when given)."""

    async def step(name: str, template: str, **extra: str) -> None:
        with report.timed(name):
            await conn.execute(sql(template, tables, **extra))

    for table in (tables.fills, tables.ready, tables.ids, tables.probe, tables.pairs, tables.dups):
        await conn.execute(f"DROP TABLE IF EXISTS {table}")
    # The work tables' statistics only steer join methods: a 3,000-row sample will do.
    await conn.execute(f"SET default_statistics_target = {WORK_STATISTICS}")
    await step("analyze", "ANALYZE {stage} (row_no, external_id, country, country_code, admin1)")
    staged = int(await conn.fetchval(f"SELECT count(*) FROM {tables.stage}"))
    await step("place fill", FILLS_SQL)
    with report.timed("ready: fill, match the store"):
        await split_over(
            conn, helper, tables.ready, lambda rows: sql(READY_SQL, tables, rows=rows), tables.stage
        )
    for bad in await conn.fetch(sql(UNKNOWN_CODES_SQL, tables)):
        staged -= 1
        report.add_error(
            RowProblem(bad["row_no"], bad["line_no"], [unknown_code(bad["country_code"])])
        )

    async def pairs_index() -> None:
        for template in (
            PROBE_SQL,
            PAIRS_INDEX_SQL,
            "ANALYZE {probe}",
            "ANALYZE {ready} (row_no, external_id)",
        ):
            await conn.execute(sql(template, tables))
        await conn.execute("RESET default_statistics_target")

    # The ids on the helper, beside the table and index the duplicate join probes.
    with report.timed("new ids, duplicate probe table"):
        if helper is None:
            await conn.execute(sql(IDS_SQL, tables))
            await pairs_index()
        else:
            await asyncio.gather(helper.execute(sql(IDS_SQL, tables)), pairs_index())
    store = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM incidents WHERE deleted_at IS NULL)")
    batch = sql(BATCH_CANDIDATES, tables)
    candidates = f"{STORE_CANDIDATES} UNION ALL {batch}" if store else batch
    with report.timed("duplicates"):
        await split_over(
            conn,
            helper,
            tables.pairs,
            lambda rows: sql(PAIRS_SQL, tables, candidates=candidates, rows=rows),
            tables.probe,
            "seq",
        )
    await step("duplicates", DUPS_SQL)
    flagged = int(await conn.fetchval(f"SELECT count(*) FROM {tables.dups}"))
    listed = [
        {
            "row": r["row_no"],
            "external_id": r["external_id"],
            "possible_duplicates": [str(i) for i in r["ids"]],
        }
        for r in await conn.fetch(sql(FLAGGED_SQL, tables))
    ]
    to_write = int(await conn.fetchval(sql(TO_WRITE_SQL, tables)))
    return Prepared(staged, flagged, listed, to_write)


async def rollup_deltas(helper: asyncpg.Connection, tables: Tables) -> list[tuple[str, str]]:
    """The rollup triggers' deltas for the batch, into work tables (`DELTAS_SRC`); the pairs
    (rollup table, work table) to append."""
    pairs = [
        ("incident_rollup_month", tables.month_deltas),
        ("incident_tile_cells", tables.tile_deltas),
        ("incident_grid_cells", tables.grid_deltas),
    ]
    for target, work in pairs:
        await helper.execute(f"DROP TABLE IF EXISTS {work}")
        await helper.execute(f"CREATE UNLOGGED TABLE {work} (LIKE {target} INCLUDING DEFAULTS)")
    names = str(await helper.fetchval("SELECT incident_rollup_columns()")).split(", ")
    src = sql(
        DELTAS_SRC,
        tables,
        cols=", ".join("r." + n for n in names),
        old_cols=", ".join("i." + n for n in names),
    )
    for statement, args in (
        ("SELECT incident_rollups_sql($1, $2, $3)", (tables.month_deltas, tables.tile_deltas)),
        ("SELECT incident_grid_sql($1, $2)", (tables.grid_deltas,)),
    ):
        await helper.execute(await helper.fetchval(statement, src, *args))
    return pairs


async def upsert_beside_rollups(
    conn: asyncpg.Connection, helper: asyncpg.Connection, tables: Tables, changed_by: str
) -> asyncpg.Record:
    """`UPSERT_SQL` with the rollup triggers off and their deltas computed on `helper` at the
    same time (two cores), then appended. In the caller's transaction."""
    for trigger in ROLLUP_TRIGGERS:
        await conn.execute(f"ALTER TABLE incidents DISABLE TRIGGER {trigger}")
    deltas = asyncio.ensure_future(rollup_deltas(helper, tables))
    try:
        result = await conn.fetchrow(sql(UPSERT_SQL, tables), changed_by)
    finally:
        pairs = await deltas
    for target, work in pairs:
        await conn.execute(f"INSERT INTO {target} SELECT * FROM {work}")
    for trigger in ROLLUP_TRIGGERS:
        await conn.execute(f"ALTER TABLE incidents ENABLE TRIGGER {trigger}")
    return result


async def write(
    conn: asyncpg.Connection,
    tables: Tables,
    prepared: Prepared,
    *,
    changed_by: str,
    report: BulkReport,
    rollups_on: asyncpg.Connection | None = None,
) -> None:
    """Step 5: the prepared batch into the store, with its revisions. In a transaction. With
    `rollups_on` (a second connection), the rollups are computed there beside the upsert,
    other writers waiting for the commit (`upsert_beside_rollups`)."""
    with report.timed("upsert + revisions + rollups"):
        if rollups_on is None:
            result = await conn.fetchrow(sql(UPSERT_SQL, tables), changed_by)
        else:
            result = await upsert_beside_rollups(conn, rollups_on, tables, changed_by)
    report.inserted += int(result["inserted"])
    report.updated += int(result["updated"])
    report.unchanged += prepared.staged - int(result["inserted"]) - int(result["updated"])
    report.duplicates_flagged += prepared.flagged
    room = max(MAX_LISTED - len(report.duplicates), 0)
    report.duplicates.extend(prepared.listed[:room])


async def upsert_rows(
    conn: asyncpg.Connection,
    tables: Tables,
    rows: list[tuple[Any, ...]],
    *,
    changed_by: str,
    report: BulkReport,
) -> None:
    """Stages `rows` (validated in Python), prepares and writes them. In a transaction."""
    if not rows:
        return
    await new_stage(conn, tables)
    await stage_python(conn, tables, rows)
    prepared = await prepare(conn, tables, report)
    await write(conn, tables, prepared, changed_by=changed_by, report=report)
