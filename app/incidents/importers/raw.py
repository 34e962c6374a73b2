"""A file's rows COPYed as raw cells into a temporary table, for the set-based load.

CSV (ACLED's layouts and our own export): PostgreSQL parses the file; one text column per
header column. NDJSON: each line checked to be a JSON object in Python (a few microseconds),
then COPYed as `jsonb`. What SQL cannot read (a malformed CSV, a ragged row, an encoding
error) makes `copy_in` return None: the caller then reads the file the Python way, whose
errors name the line. JSON arrays, GeoJSON and UCDP files always go the Python way.

`RawTable.stage_select` turns a range of raw rows into staging rows (`app.incidents.importers.
transform`), `RawTable.records` gives the rows SQL did not vouch for to the Python path.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import asyncpg
import orjson

from app.incidents.fields import WRITABLE, WRITABLE_COLUMNS
from app.incidents.importers.mappings import ACLED_FALLBACK, detect_csv_layout, from_acled
from app.incidents.importers.readers import INVALID_JSON, OUTPUT_ONLY, Record, ndjson_lines
from app.incidents.importers.rows import STAGE_TYPES
from app.incidents.importers.transform import WS, Cell, V, literal, rules, typed

CHUNK_BYTES = 1 << 20
# Part of every row digest: change it when the mapping or validation of raw cells changes, so
# that rows imported before are validated again instead of being skipped as unchanged.
DIGEST_VERSION = "2"


@dataclass(frozen=True)
class Tables:
    """The work tables of one load: UNLOGGED tables (PostgreSQL reads them with parallel
    workers, which it cannot do for temporary tables) named after the loading session, so
    loads do not collide; `drop` removes them, and a load removes those of sessions that are
    gone (a killed load)."""

    prefix: str

    @property
    def raw(self) -> str:
        return f"{self.prefix}_raw"

    @property
    def keep(self) -> str:
        return f"{self.prefix}_keep"

    @property
    def stage(self) -> str:
        return f"{self.prefix}_stage"

    @property
    def fills(self) -> str:
        return f"{self.prefix}_fills"

    @property
    def ready(self) -> str:
        return f"{self.prefix}_ready"

    @property
    def ids(self) -> str:
        return f"{self.prefix}_ids"

    @property
    def probe(self) -> str:
        return f"{self.prefix}_probe"

    @property
    def pairs(self) -> str:
        return f"{self.prefix}_pairs"

    @property
    def dups(self) -> str:
        return f"{self.prefix}_dups"

    @property
    def month_deltas(self) -> str:
        return f"{self.prefix}_month_deltas"

    @property
    def tile_deltas(self) -> str:
        return f"{self.prefix}_tile_deltas"

    @property
    def grid_deltas(self) -> str:
        return f"{self.prefix}_grid_deltas"

    def all(self) -> list[str]:
        return [
            self.raw,
            self.keep,
            self.stage,
            self.fills,
            self.ready,
            self.ids,
            self.probe,
            self.pairs,
            self.dups,
            self.month_deltas,
            self.tile_deltas,
            self.grid_deltas,
        ]

    async def drop(self, conn: asyncpg.Connection) -> None:
        await conn.execute("DROP TABLE IF EXISTS " + ", ".join(self.all()))


ORPHANS_SQL = r"""
SELECT c.relname FROM pg_class c
WHERE c.relkind = 'r' AND c.relpersistence = 'u' AND c.relname ~ '^import_load_[0-9]+_'
  AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                  WHERE c.relname LIKE 'import_load_' || a.pid || '\_%')
"""


async def work_tables(conn: asyncpg.Connection) -> Tables:
    """This session's work tables (none exist yet); those of dead sessions are dropped."""
    for row in await conn.fetch(ORPHANS_SQL):
        await conn.execute(f'DROP TABLE IF EXISTS "{row["relname"]}"')
    tables = Tables(f"import_load_{int(await conn.fetchval('SELECT pg_backend_pid()'))}")
    await tables.drop(conn)
    return tables


# Layouts whose mapping SQL reproduces (the field registry's ACLED/own column names).
SQL_LAYOUTS = {"acled", "incidents"}
_WRITABLE_KEYS = "ARRAY[" + ", ".join(literal(f.name) for f in WRITABLE) + "]::text[]"
_OUTPUT_ONLY = "ARRAY[" + ", ".join(literal(k) for k in sorted(OUTPUT_ONLY)) + "]::text[]"


class _Counting:
    """A binary file read in chunks, counting its newlines on the way (for line numbers)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.newlines = 0

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.newlines += data.count(b"\n")
        return data


def read_header(stream: IO[bytes]) -> list[str] | None:
    """The CSV header as the Python reader sees it (lower-cased, stripped), or None."""
    start = stream.tell()
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
    try:
        return [h.strip().lower() for h in next(csv.reader(text))]
    except (StopIteration, UnicodeDecodeError, csv.Error):
        return None
    finally:
        text.detach()
        stream.seek(start)


@dataclass
class RawTable:
    tables: Tables
    format: str  # csv | ndjson
    rows: int = 0  # rows as the Python reader numbers them
    layout: str = "ndjson"
    header: list[str] = field(default_factory=list)
    offset: int = 0  # CSV: raw rows skipped before row 1 (an HXL hashtag row)
    plain_lines: bool = True  # CSV: no cell holds a newline (line = raw row + 1)
    rejected: list[Record] = field(default_factory=list)  # NDJSON lines that are not objects

    # --- staging SQL -------------------------------------------------------------------------

    def _cells(self) -> tuple[list[str], dict[str, Cell]]:
        """The first query level (raw cells, stripped) and each writable field's cell."""
        cells: dict[str, Cell] = {}
        select: list[str] = []
        if self.format == "csv":
            where = {name: i for i, name in enumerate(self.header, start=1)}
            for f in WRITABLE:
                sources = [where[c] for c in (f.csv_name, ACLED_FALLBACK.get(f.name)) if c in where]
                if not sources:
                    cells[f.name] = Cell("NULL::text")
                    continue
                parts = ", ".join(f"nullif(btrim(r.c{i}, {WS}), '')" for i in sources)
                select.append(f"coalesce({parts}) AS x_{f.name}")
                cells[f.name] = Cell(f"x_{f.name}")
        else:
            for f in WRITABLE:
                select.append(f"r.doc -> {literal(f.name)} AS j_{f.name}")
                select.append(
                    f"(CASE WHEN jsonb_typeof(r.doc -> {literal(f.name)}) = 'string' "
                    f"THEN btrim(r.doc ->> {literal(f.name)}, {WS}) END) AS s_{f.name}"
                )
                cells[f.name] = Cell(f"s_{f.name}", json=f"j_{f.name}")
            # Unknown members are refused by the model (and `geometry` is its business).
            select.append(
                f"r.doc IS NOT NULL AND (r.doc - {_OUTPUT_ONLY}) - {_WRITABLE_KEYS} = '{{}}' "
                "AS keys_ok"
            )
        return select, cells

    def key_sql(self) -> str:
        """The external id of raw row `r`, as staging reads it."""
        select, cells = self._cells()
        name = cells["external_id"].text
        for item in select:
            if item.endswith(f" AS {name}"):
                return "(" + item[: -len(f" AS {name}")] + ")"
        return "NULL::text"

    def digest_sql(self) -> str:
        """A digest of raw row `r` with the header and the mapping's version (uuid)."""
        if self.format == "csv":
            cells = ", ".join(f"r.c{i}" for i in range(1, len(self.header) + 1))
            text = f"ROW({cells})::text"
            header = literal(DIGEST_VERSION + "|csv|" + ",".join(self.header) + "|")
        else:
            text = "coalesce(r.doc::text, r.line)"
            header = literal(DIGEST_VERSION + "|ndjson|")
        return f"md5({header} || {text})::uuid"

    def stage_select(self, where: str = "") -> str:
        """The staging rows (STAGE_TYPES, then the point, the actors for the duplicate rule,
        and `bad` unless SQL vouches for the row) of the raw rows `where` selects."""
        select, cells = self._cells()
        fields = {f.name: typed(f, cells[f.name]) for f in WRITABLE}
        level2 = [f"{t.value} AS {name}" for name, t in fields.items()]
        oks = " AND ".join(
            f"coalesce({t.ok.replace(V, name)}, false)" for name, t in fields.items()
        )
        changed, rules_ok = rules(lambda name: name)
        keys = "keys_ok AND " if self.format == "ndjson" else ""
        columns = [f"({changed.get(c, c)})::{STAGE_TYPES[c]} AS {c}" for c in WRITABLE_COLUMNS]
        point = "ST_SetSRID(ST_MakePoint(longitude, latitude), 4326)"
        actors = "incident_duplicate_actors(actor1, assoc_actor_1, actor2, assoc_actor_2)"
        row = f"r.row_no - {int(self.offset)}" if self.format == "csv" else "r.row_no"
        if self.format == "ndjson":
            line = "r.line_no"
        else:
            line = "r.row_no + 1" if self.plain_lines else "NULL::int"
        return (
            "SELECT row_no::bigint AS row_no, line_no::int AS line_no, "
            + ", ".join(columns)
            + f", longitude::float8 AS lon, latitude::float8 AS lat, {point} AS geom, "
            + f"{actors} AS actors, digest, "
            + f"NOT coalesce({keys}{oks} AND {rules_ok}, false) AS bad FROM ("
            + "SELECT x.*, "
            + ", ".join(level2)
            + " FROM ("
            + f"SELECT {row} AS row_no, {line} AS line_no, {self.digest_sql()} AS digest, "
            + ", ".join(select)
            + f" FROM {self.tables.raw} r {where} OFFSET 0) x OFFSET 0) t"
        )

    # --- the Python path's rows ---------------------------------------------------------------

    async def records(self, conn: asyncpg.Connection, row_nos: list[int]) -> list[Record]:
        """The raw rows numbered `row_nos`, as the Python reader would have yielded them."""
        if not row_nos:
            return []
        raw = [n + self.offset for n in row_nos]
        if self.format == "ndjson":
            rows = await conn.fetch(
                f"SELECT row_no, line_no, doc::text AS doc, line FROM {self.tables.raw} "
                "WHERE row_no = ANY($1::bigint[]) ORDER BY row_no",
                raw,
            )
            out = []
            for r in rows:
                obj = orjson.loads(r["doc"] if r["doc"] is not None else r["line"])
                data = {k: v for k, v in obj.items() if k not in OUTPUT_ONLY}
                out.append(Record(r["row_no"], r["line_no"], data))
            return out
        columns = ", ".join(f"c{i}" for i in range(1, len(self.header) + 1))
        rows = await conn.fetch(
            f"SELECT row_no, {columns} FROM {self.tables.raw} "
            "WHERE row_no = ANY($1::bigint[]) ORDER BY row_no",
            raw,
        )
        lines = await self.lines(conn, raw)
        out = []
        for r in rows:
            values = {h: r[f"c{i}"] or "" for i, h in enumerate(self.header, start=1)}
            out.append(
                Record(r["row_no"] - self.offset, lines.get(r["row_no"]), from_acled(values))
            )
        return out

    async def lines(self, conn: asyncpg.Connection, raw_rows: list[int]) -> dict[int, int]:
        """Line numbers of raw CSV rows: row + 1, plus the newlines inside earlier rows' cells."""
        if self.plain_lines:
            return {n: n + 1 for n in raw_rows}
        newlines = " + ".join(
            f"coalesce(length(c{i}) - length(replace(c{i}, E'\\n', '')), 0)"
            for i in range(1, len(self.header) + 1)
        )
        rows = await conn.fetch(
            f"SELECT row_no, row_no + 1 + coalesce(sum({newlines}) OVER (ORDER BY row_no "
            f"ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS line FROM {self.tables.raw} "
            "WHERE row_no <= (SELECT max(n) FROM unnest($1::bigint[]) n)",
            raw_rows,
        )
        wanted = set(raw_rows)
        return {r["row_no"]: int(r["line"]) for r in rows if r["row_no"] in wanted}


async def copy_in(
    conn: asyncpg.Connection, tables: Tables, stream: IO[bytes], fmt: str
) -> RawTable | None:
    """COPY the file into `tables.raw`; None when SQL cannot read it (the Python path will)."""
    await conn.execute(f"DROP TABLE IF EXISTS {tables.raw}")
    if fmt == "csv":
        table = await _copy_csv(conn, tables, stream)
    elif fmt == "ndjson":
        table = await _copy_ndjson(conn, tables, stream)
    else:
        return None
    if table is not None:
        await conn.execute(f"CREATE INDEX ON {tables.raw} (row_no)")
        await conn.execute("SET default_statistics_target = 10")
        await conn.execute(f"ANALYZE {tables.raw} (row_no)")
        await conn.execute("RESET default_statistics_target")
    return table


async def _copy_csv(conn: asyncpg.Connection, tables: Tables, stream: IO[bytes]) -> RawTable | None:
    start = stream.tell()
    header = read_header(stream)
    if not header:
        return None
    layout = detect_csv_layout(header)
    if layout not in SQL_LAYOUTS:
        return None
    columns = [f"c{i}" for i in range(1, len(header) + 1)]
    await conn.execute(
        f"CREATE UNLOGGED TABLE {tables.raw} (row_no bigint GENERATED ALWAYS AS IDENTITY, "
        + ", ".join(f"{c} text" for c in columns)
        + ")"
    )
    counting = _Counting(stream)
    try:
        async with conn.transaction():  # a savepoint when inside a transaction
            await conn.copy_to_table(
                tables.raw,
                source=counting,
                columns=columns,
                format="csv",
                header=True,
                encoding="utf8",
            )
    except (asyncpg.PostgresError, UnicodeDecodeError):
        stream.seek(start)
        await conn.execute(f"DROP TABLE IF EXISTS {tables.raw}")
        return None
    stream.seek(start)
    raw_rows = int(await conn.fetchval(f"SELECT count(*) FROM {tables.raw}"))
    table = RawTable(tables, "csv", layout=layout, header=header)
    # Line count: the header, each row, maybe no newline after the last one.
    table.plain_lines = counting.newlines in (raw_rows, raw_rows + 1)
    first = await conn.fetchrow(f"SELECT * FROM {tables.raw} WHERE row_no = 1")
    if first is not None:
        values = [first[c] or "" for c in columns]
        if all(v.strip().startswith("#") for v in values if v.strip()):
            table.offset = 1  # an HXL hashtag row under the header (HDX exports)
    table.rows = raw_rows - table.offset
    return table


def _ndjson_chunks(stream: IO[bytes], table: RawTable) -> Iterator[bytes]:
    """COPY input (row, line, doc, raw line) in ~1 MiB chunks; lines that are not JSON objects
    are rejected here as the Python reader rejects them."""
    out = bytearray()
    row_no = 0
    for row_no, line_no, line, obj in ndjson_lines(stream):
        if obj is INVALID_JSON:
            table.rejected.append(Record(row_no, line_no, None, "invalid JSON"))
            continue
        if not isinstance(obj, dict):
            table.rejected.append(Record(row_no, line_no, None, "expected a JSON object"))
            continue
        if b"\\u0000" in line:  # jsonb cannot hold NUL: the Python path decides
            out += b"%d\x02%d\x02\x02\x01%s\x01\n" % (row_no, line_no, line)
        else:
            out += b"%d\x02%d\x02\x01%s\x01\x02\n" % (row_no, line_no, line)
        if len(out) >= CHUNK_BYTES:
            yield bytes(out)
            out.clear()
    table.rows = row_no
    if out:
        yield bytes(out)


async def _copy_ndjson(
    conn: asyncpg.Connection, tables: Tables, stream: IO[bytes]
) -> RawTable | None:
    await conn.execute(
        f"CREATE UNLOGGED TABLE {tables.raw} (row_no bigint, line_no int, doc jsonb, line text)"
    )
    table = RawTable(tables, "ndjson")
    start = stream.tell()
    chunks = _ndjson_chunks(stream, table)
    done = object()

    async def source() -> AsyncIterator[bytes]:
        while True:
            chunk: Any = await asyncio.to_thread(next, chunks, done)
            if chunk is done:
                return
            yield chunk

    try:
        async with conn.transaction():  # a savepoint when inside a transaction
            await conn.copy_to_table(
                tables.raw,
                source=source(),
                columns=["row_no", "line_no", "doc", "line"],
                format="csv",
                delimiter="\x02",
                quote="\x01",
                encoding="utf8",
            )
    except asyncpg.PostgresError:  # a value jsonb refuses: the Python path reads the file
        stream.seek(start)
        await conn.execute(f"DROP TABLE IF EXISTS {tables.raw}")
        return None
    stream.seek(start)
    return table
