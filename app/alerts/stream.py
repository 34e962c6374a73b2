"""Live streams: the change feed, filtered per stream, pushed to Server-Sent Events clients.

Each API process runs one `StreamHub`. It keeps the open streams' filters (as `alert_filter`
rows, migration 0016) in a temporary table on a connection of its own, and every
`STREAM_POLL_S` reads the feed past its position once, matching every new revision against
every stream in one statement (`feed_sql`); each stream gets its matches on its queue. The
feed's order and horizon are `/v1/changes`' (revisions of transactions older than every
running one), so an event is never skipped and its position (the `id:` of the event, a
`/v1/changes` cursor) only grows.

A stream that starts with `Last-Event-ID` registers first, then catches up from that position
on a pooled connection until it meets what the hub delivers; it drops queued events at or
before its own position, so it sees each event once, without gaps.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from app.alerts.matching import STATE_ARGS, filter_sql
from app.changes.service import CHANGE_INCIDENT_JSON
from app.core.config import Settings
from app.core.db import Database
from app.core.errors import ServiceUnavailable
from app.search.filters import SearchFilter
from app.search.query import Params

log = logging.getLogger("app.alerts")
BATCH = 1000
QUEUE_SIZE = 10_000
Position = tuple[int, int]  # (transaction id, revision seq)


def feed_sql(streams: str) -> str:
    """Revisions past ($1 txid, $2 seq), at most $3, each with the ids of the `streams`
    (a relation of stream_id, match) it matches and, when it matches any, its incident."""
    return f"""
WITH r AS (
    SELECT r.txid, r.seq, r.incident_id, r.version, r.op FROM incident_revisions r
    WHERE (r.txid, r.seq) > ($1::text::xid8, $2::bigint)
      AND r.txid < pg_snapshot_xmin(pg_current_snapshot())
    ORDER BY r.txid, r.seq LIMIT $3
)
SELECT r.txid::text AS txid, r.seq, r.op, m.streams,
    CASE WHEN m.streams IS NOT NULL THEN ({CHANGE_INCIDENT_JSON})::text END AS doc
FROM r LEFT JOIN LATERAL (
    SELECT array_agg(DISTINCT ls.stream_id) AS streams
    FROM incident_alert_states(r.incident_id, r.version, r.op) st
    JOIN {streams} ls ON (ls.match).box && st.geom AND alert_filter_matches(ls.match, {STATE_ARGS})
) m ON true
ORDER BY r.txid, r.seq
"""  # noqa: S608 (constant SQL; `streams` is one of the two relations below)


HUB_SQL = feed_sql("pg_temp.live_streams")
HEAD_SQL = (
    "SELECT r.txid::text AS txid, r.seq FROM incident_revisions r "
    "WHERE r.txid < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY r.txid DESC, r.seq DESC "
    "LIMIT 1"
)


@dataclass(frozen=True)
class Event:
    position: Position
    op: str
    doc: str


_CLOSED = Event((0, 0), "", "")


@dataclass
class Stream:
    """One client's stream: its filter (as SQL), where it stands, what it has to send."""

    id: int
    filter_expr: str  # its parameters from $2 (the hub's table of filters)
    feed_expr: str  # the same from $4 (after the feed's three)
    filter_params: list[Any]
    position: Position
    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False

    def end(self) -> None:
        """The stream stops after what it has already been given."""
        self.push(_CLOSED)

    def push(self, event: Event) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            # A client this far behind is cut off after what it has been sent; it resumes
            # with Last-Event-ID (and catches up on what was queued).
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(_CLOSED)


def _position(row: asyncpg.Record) -> Position:
    return int(row["txid"]), int(row["seq"])


class StreamHub:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._streams: dict[int, Stream] = {}
        self._ids = itertools.count(1)
        self._position: Position | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._released: set[int] = set()  # closed streams whose filter rows are still there

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    async def _connect(self) -> asyncpg.Connection:
        """The hub's connection, its table of filters filled with the open streams'."""
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        conn = await asyncpg.connect(
            self.settings.plain_database_url,
            timeout=self.settings.db_connect_timeout_s,
            command_timeout=self.settings.db_command_timeout_s,
            server_settings={"application_name": "conflict-incidents-streams", "jit": "off"},
        )
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS live_streams "
            "(stream_id bigint PRIMARY KEY, match alert_filter NOT NULL)"
        )
        await conn.execute("TRUNCATE pg_temp.live_streams")
        for stream in self._streams.values():
            await self._insert(conn, stream)
        if self._position is None:
            head = await conn.fetchrow(HEAD_SQL)
            self._position = _position(head) if head is not None else (0, 0)
        self._conn = conn
        return conn

    @staticmethod
    async def _insert(conn: asyncpg.Connection, stream: Stream) -> None:
        await conn.execute(
            f"INSERT INTO pg_temp.live_streams VALUES ($1, {stream.filter_expr})",  # noqa: S608
            stream.id,
            *stream.filter_params,
        )

    async def open(self, f: SearchFilter, start: Position | None) -> Stream:
        """A registered stream from `start` (None: from now)."""
        if self._closed:
            raise ServiceUnavailable("The server is shutting down.", headers={"Retry-After": "2"})
        if len(self._streams) >= self.settings.max_streams:
            raise ServiceUnavailable(
                f"This server already serves {len(self._streams)} streams (MAX_STREAMS).",
                headers={"Retry-After": "10"},
            )
        p = Params([0])  # $1 is the stream id
        expr = filter_sql(f, p)
        feed_expr = filter_sql(f, Params([0, 0, 0]))
        async with self._lock:
            try:
                conn = await self._connect()
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                raise ServiceUnavailable(
                    "The database is unavailable; retry shortly.", headers={"Retry-After": "2"}
                ) from exc
            if not self._streams:
                # Idle, the hub has not followed the feed: a stream from now starts at its head.
                head = await conn.fetchrow(HEAD_SQL)
                self._position = _position(head) if head is not None else (0, 0)
            assert self._position is not None
            stream = Stream(next(self._ids), expr, feed_expr, p.values[1:], start or self._position)
            await self._insert(conn, stream)
            self._streams[stream.id] = stream
        if self._task is None:
            self._task = asyncio.create_task(self._run())
        return stream

    def release(self, stream: Stream) -> None:
        """The stream is over (idempotent, never waits: it runs on cancellation too); the
        next poll drops its filter."""
        if self._streams.pop(stream.id, None) is not None:
            self._released.add(stream.id)

    async def _run(self) -> None:
        while not self._closed:
            full = False
            try:
                if self._streams:
                    full = await self._poll()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("stream hub: cannot read the change feed", exc_info=True)
                if self._conn is not None:
                    self._conn.terminate()
                self._conn = None
                await asyncio.sleep(1)
            if not full:
                await asyncio.sleep(self.settings.stream_poll_s)

    async def _poll(self) -> bool:
        """One read of the feed, dispatched; True when there may be more right away."""
        async with self._lock:
            conn = await self._connect()
            if self._released:
                gone = list(self._released)
                await conn.execute(
                    "DELETE FROM pg_temp.live_streams WHERE stream_id = ANY($1::bigint[])", gone
                )
                self._released.difference_update(gone)
            assert self._position is not None
            txid, seq = self._position
            rows = await conn.fetch(HUB_SQL, str(txid), seq, BATCH)
            for row in rows:
                if row["streams"] is None:
                    continue
                event = Event(_position(row), str(row["op"]), str(row["doc"]))
                for stream_id in row["streams"]:
                    stream = self._streams.get(int(stream_id))
                    if stream is not None:
                        stream.push(event)
            if rows:
                self._position = _position(rows[-1])
        return len(rows) == BATCH

    async def catch_up(self, stream: Stream) -> AsyncIterator[Event]:
        """The stream's matches from its position up to the feed's end now."""
        sql = feed_sql(f"(SELECT 0::bigint AS stream_id, {stream.feed_expr} AS match)")
        while True:
            txid, seq = stream.position
            async with self.db.read() as conn:
                rows = await conn.fetch(sql, str(txid), seq, BATCH, *stream.filter_params)
            for row in rows:
                if row["streams"] is not None:
                    yield Event(_position(row), str(row["op"]), str(row["doc"]))
            if rows:
                stream.position = max(stream.position, _position(rows[-1]))
            if len(rows) < BATCH:
                return

    async def events(self, stream: Stream) -> AsyncIterator[Event]:
        """Catch-up, then live events, each once, in feed order; ends on overflow or close."""
        async for event in self.catch_up(stream):
            yield event
        while True:
            event = await stream.queue.get()
            if event is _CLOSED:
                return
            if event.position <= stream.position:
                continue
            stream.position = event.position
            yield event

    async def shutdown(self) -> None:
        self._closed = True
        for stream in list(self._streams.values()):
            stream.end()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._conn is not None:
            self._conn.terminate()
