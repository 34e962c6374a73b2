"""Webhook delivery: a worker claims due deliveries from the outbox, POSTs each signed event,
and records the attempt.

The writes leave their matches in `alert_matches` (one row per subscription and write); each
round a worker first expands some into deliveries (`EXPAND_SQL`), one per event.

Claiming (`CLAIM_SQL`) locks due rows with `FOR UPDATE SKIP LOCKED` and leases them (moves
their `next_attempt_at` past the request's timeout) in one short transaction, so any number
of workers (in API processes, or `incidents worker`) share the outbox and each delivery is
attempted by one of them at a time. A worker that dies mid-attempt leaves the lease to expire:
the delivery is attempted again, with the same `webhook-id` (at-least-once).

A worker holds up to `PREFETCH` times `WEBHOOK_CONCURRENCY` claimed deliveries and sends
`WEBHOOK_CONCURRENCY` at a time; their results are written in batches.

An attempt succeeds on a 2xx within `WEBHOOK_TIMEOUT_S`. Otherwise the next one comes after
the schedule's next step (`WEBHOOK_RETRY_SCHEDULE_S`, ±10% jitter) or the receiver's
`Retry-After`, whichever is later (a Retry-After is believed up to a day); after the last
step the delivery fails and the subscription is disabled. A 410 disables it at once.
Redirects are not followed (a 3xx is a failed attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import orjson

from app.alerts import signing
from app.alerts.service import EVENT_TYPES
from app.alerts.urls import Allowed, RefusedUrl, Target, parse_url, resolve
from app.changes.service import CHANGE_JSON
from app.core.config import Settings
from app.core.db import Database

log = logging.getLogger("app.alerts")
CHANNEL = "alert_deliveries"
MAX_ERROR = 500
MAX_RESPONSE_BYTES = 64 * 1024
RECORD_BATCH = 500
PREFETCH = 4
RETRY_AFTER_CAP_S = 86400.0

# The writes' matches (one row per subscription and write, migration 0016) as one delivery per
# event; several workers expand disjoint rows.
EXPAND_SQL = """
WITH m AS (
    DELETE FROM alert_matches WHERE id IN (
        SELECT id FROM alert_matches ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
    RETURNING subscription_id, revision_seqs, created_at
)
INSERT INTO alert_deliveries (subscription_id, revision_seq, created_at)
SELECT m.subscription_id, u.seq, m.created_at FROM m, unnest(m.revision_seqs) AS u(seq)
"""
EXPAND_BATCH = 200

# Due deliveries, locked without waiting (`SKIP LOCKED`: several workers take disjoint rows)
# and leased for $2 seconds; each change's document built once however many subscriptions
# it goes to.
CLAIM_SQL = f"""
WITH due AS (
    SELECT d.id FROM alert_deliveries d
    WHERE d.status = 'pending' AND d.next_attempt_at <= now()
      AND EXISTS (SELECT 1 FROM alert_subscriptions s
                  WHERE s.id = d.subscription_id AND s.status = 'active')
    ORDER BY d.next_attempt_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE alert_deliveries d SET next_attempt_at = now() + $2 * interval '1 second'
    FROM due WHERE d.id = due.id
    RETURNING d.id, d.attempts, d.message_id, d.subscription_id, d.revision_seq
), changes AS (
    SELECT r.seq, r.op, {CHANGE_JSON}::text AS change FROM incident_revisions r
    WHERE r.seq IN (SELECT revision_seq FROM claimed)
)
SELECT c.id, c.attempts, c.message_id::text AS message_id, s.id AS subscription_id,
    s.webhook_url, s.secret,
    CASE WHEN s.previous_secret_until > now() THEN s.previous_secret END AS previous_secret,
    ch.op, ch.change
FROM claimed c JOIN alert_subscriptions s ON s.id = c.subscription_id
LEFT JOIN changes ch ON ch.seq = c.revision_seq
"""  # noqa: S608 (constant SQL)

# Many attempts at once: ($1 ids, $2 statuses, $3 next tries, $4 status codes, $5 errors,
# $6 durations, $7 the attempts counted when claimed), one statement for the deliveries and
# their log. An attempt whose delivery has moved on meanwhile (its lease expired and another
# worker recorded it) is not written over it.
RECORD_SQL = """
WITH o AS (
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::timestamptz[], $4::integer[],
                         $5::text[], $6::integer[], $7::integer[])
        AS o(id, status, next_at, code, error, ms, claimed)
), d AS (
    UPDATE alert_deliveries d SET attempts = d.attempts + 1, status = o.status,
        next_attempt_at = coalesce(o.next_at, d.next_attempt_at), last_status_code = o.code,
        last_error = o.error, delivered_at = CASE WHEN o.status = 'delivered' THEN now() END
    FROM o WHERE d.id = o.id AND d.status = 'pending' AND d.attempts = o.claimed
    RETURNING d.id, d.attempts, o.code, o.error, o.ms
)
INSERT INTO alert_attempts (delivery_id, attempt, status_code, error, duration_ms)
SELECT id, attempts, code, error, ms FROM d
"""

# The delivery log's oldest finished rows, a batch at a time (oldest ids first, by the key).
PRUNE_SQL = """
DELETE FROM alert_deliveries WHERE id IN (
    SELECT id FROM alert_deliveries WHERE status <> 'pending' AND created_at < $1
    ORDER BY id LIMIT $2)
"""
# Deliveries whose subscription is gone (deleted while a write was matching it): dropped.
ORPHANS_SQL = """
DELETE FROM alert_deliveries WHERE id IN (
    SELECT d.id FROM alert_deliveries d WHERE d.status = 'pending'
      AND NOT EXISTS (SELECT 1 FROM alert_subscriptions s WHERE s.id = d.subscription_id)
    LIMIT $1)
"""
ORPHAN_MATCHES_SQL = """
DELETE FROM alert_matches WHERE id IN (
    SELECT m.id FROM alert_matches m
    WHERE NOT EXISTS (SELECT 1 FROM alert_subscriptions s WHERE s.id = m.subscription_id)
    LIMIT $1)
"""
PRUNE_BATCH = 10_000
PRUNE_EVERY_S = 600.0

DISABLE_SQL = (
    "UPDATE alert_subscriptions s SET status = 'disabled', disabled_reason = o.reason, "
    "disabled_at = now(), updated_at = now() "
    "FROM unnest($1::uuid[], $2::text[]) AS o(id, reason) WHERE s.id = o.id AND s.status = 'active'"
)


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str | None
    seconds: float
    retry_after_s: float | None = None
    final: bool = False  # not worth retrying, nor the receiver's fault

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_after(value: str | None) -> float | None:
    """`Retry-After` in seconds (a number of seconds or an HTTP date), None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max((when - dt.datetime.now(dt.UTC)).total_seconds(), 0.0)


def new_client(settings: Settings) -> aiohttp.ClientSession:
    """No redirects (per request), no proxies from the environment, the delivery timeout on
    the whole attempt; connections kept alive per receiver."""
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=settings.webhook_timeout_s),
        connector=aiohttp.TCPConnector(limit=settings.webhook_concurrency * 2, use_dns_cache=False),
        trust_env=False,
        auto_decompress=False,
    )


def _pinned(target: Target) -> tuple[str, dict[str, str], str | None]:
    """The request URL with the checked address as host, the Host header, and the TLS name:
    the connection goes where the check said, whatever the name resolves to next."""
    url = target.url
    address = str(target.address)
    if target.address.version == 6:
        address = f"[{address}]"
    pinned = url._replace(netloc=f"{address}:{target.port}").geturl()
    default_port = 443 if url.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    if target.port != default_port:
        host = f"{host}:{target.port}"
    return pinned, {"host": host}, target.host if url.scheme == "https" else None


async def send(
    client: aiohttp.ClientSession,
    settings: Settings,
    *,
    url: str,
    msg_id: str,
    body: str,
    secrets_in_use: list[str],
) -> Outcome:
    """One signed POST, the name lookup included in WEBHOOK_TIMEOUT_S: its status code or
    what went wrong."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(settings.webhook_timeout_s):
            allowed = Allowed.parse(settings.webhook_allowed_hosts)
            target = await resolve(parse_url(url), allowed)
            pinned, host_header, tls_name = _pinned(target)
            headers = {**signing.headers(msg_id, body, secrets_in_use), **host_header}
            async with client.post(
                pinned,
                data=body.encode(),
                headers=headers,
                allow_redirects=False,
                server_hostname=tls_name,
            ) as response:
                await response.content.read(MAX_RESPONSE_BYTES)  # the rest is not waited for
                status, after = response.status, response.headers.get("retry-after")
    except RefusedUrl as exc:
        return Outcome(None, f"refused: {exc}", time.monotonic() - started)
    except TimeoutError:
        return Outcome(
            None, f"no answer within {settings.webhook_timeout_s:g} s", time.monotonic() - started
        )
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        message = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
        return Outcome(None, message, time.monotonic() - started)
    error = None if 200 <= status < 300 else f"HTTP {status}"
    return Outcome(status, error, time.monotonic() - started, retry_after(after))


def next_delay(settings: Settings, attempt: int, outcome: Outcome) -> float | None:
    """Seconds until the next attempt after failed attempt number `attempt` (1-based), None
    when the schedule is spent."""
    schedule = settings.webhook_retry_schedule_s
    if attempt > len(schedule):
        return None
    delay = schedule[attempt - 1] * random.uniform(0.9, 1.1)  # jitter, not a secret
    if outcome.retry_after_s is not None:
        delay = max(delay, min(outcome.retry_after_s, RETRY_AFTER_CAP_S))
    return delay


@dataclass(frozen=True)
class Verdict:
    """What an attempt leads to: the delivery's status, its next try, a reason to disable."""

    status: str
    next_at: dt.datetime | None = None
    disable: str | None = None


def judge(settings: Settings, attempts_before: int, outcome: Outcome) -> Verdict:
    attempt = attempts_before + 1
    if outcome.ok:
        return Verdict("delivered")
    if outcome.final:
        return Verdict("failed")
    if outcome.status_code == 410:
        return Verdict("failed", disable="the receiver answered 410 Gone")
    delay = next_delay(settings, attempt, outcome)
    if delay is None:
        return Verdict("failed", disable=f"no 2xx answer after {attempt} attempts")
    return Verdict("pending", dt.datetime.now(dt.UTC) + dt.timedelta(seconds=delay))


async def record(
    conn: asyncpg.Connection,
    settings: Settings,
    attempts: list[tuple[asyncpg.Record, Outcome]],
) -> list[Verdict]:
    """Writes attempts and their consequences, in one transaction of two statements."""
    verdicts = [judge(settings, int(job["attempts"]), outcome) for job, outcome in attempts]
    disabled = [
        (job["subscription_id"], v.disable)
        for (job, _), v in zip(attempts, verdicts, strict=True)
        if v.disable is not None
    ]
    async with conn.transaction():
        await conn.execute(
            RECORD_SQL,
            [job["id"] for job, _ in attempts],
            [v.status for v in verdicts],
            [v.next_at for v in verdicts],
            [o.status_code for _, o in attempts],
            [o.error for _, o in attempts],
            [int(o.seconds * 1000) for _, o in attempts],
            [int(job["attempts"]) for job, _ in attempts],
        )
        if disabled:
            await conn.execute(
                DISABLE_SQL, [sid for sid, _ in disabled], [why for _, why in disabled]
            )
    return verdicts


class DeliveryWorker:
    """Delivers the outbox until stopped: claims as many due deliveries as it has free slots
    (`WEBHOOK_CONCURRENCY`), wakes on the outbox's NOTIFY or every `WEBHOOK_POLL_S`; the
    attempts' results are written in batches by one recorder."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._results: asyncio.Queue[tuple[asyncpg.Record, Outcome]] = asyncio.Queue()
        self._sending = asyncio.Semaphore(settings.webhook_concurrency)
        self.delivered = 0

    @property
    def lease_s(self) -> float:
        """Long enough for a claimed delivery to wait its turn (at most PREFETCH attempts
        ahead of it) and be attempted (WEBHOOK_TIMEOUT_S each, the name lookup included)."""
        return self.settings.webhook_timeout_s * (PREFETCH + 1) + 5

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen())
        recorder = asyncio.create_task(self._record_forever())
        pruner = asyncio.create_task(self._prune_forever())
        try:
            async with new_client(self.settings) as client:
                while not self._stop.is_set():
                    await self._round(client)
                if self._tasks:
                    await asyncio.wait(self._tasks, timeout=self.settings.webhook_timeout_s + 1)
            await asyncio.wait_for(self._results.join(), timeout=10)
        except TimeoutError:
            log.warning("webhook worker: stopped with attempts unrecorded (they will be retried)")
        finally:
            for task in (listener, recorder, pruner, *self._tasks):
                task.cancel()
            for task in (listener, recorder, pruner):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _round(self, client: aiohttp.ClientSession) -> None:
        """Claims when at most `WEBHOOK_CONCURRENCY` deliveries are on hand (up to
        `PREFETCH` times that, so sending never waits for a claim), then waits for a slot,
        a NOTIFY or the poll period."""
        limit = self.settings.webhook_concurrency
        self._wake.clear()
        busy = len(self._tasks) > limit
        if not busy:
            room = limit * PREFETCH - len(self._tasks)
            jobs: list[asyncpg.Record] = []
            try:
                async with self.db.read() as conn:
                    await conn.execute(EXPAND_SQL, EXPAND_BATCH)
                    jobs = await conn.fetch(CLAIM_SQL, room, self.lease_s)
            except Exception:  # the database is down or restarting: look again later
                log.warning("webhook worker: cannot claim deliveries", exc_info=True)
            for job in jobs:
                task = asyncio.create_task(self._deliver(client, job))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            busy = len(jobs) == room  # there may be more due
        if busy and self._tasks:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
            return
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._wake.wait())]
        waiters += list(self._tasks)
        await asyncio.wait(
            waiters, timeout=self.settings.webhook_poll_s, return_when=asyncio.FIRST_COMPLETED
        )
        waiters[0].cancel()

    async def _deliver(self, client: aiohttp.ClientSession, job: asyncpg.Record) -> None:
        secrets_in_use = [str(job["secret"])]
        if job["previous_secret"]:
            secrets_in_use.append(str(job["previous_secret"]))
        async with self._sending:
            if job["change"] is None:
                outcome = Outcome(None, "the change no longer exists", 0.0, final=True)
            else:
                body = orjson.dumps(
                    {
                        "type": EVENT_TYPES[str(job["op"])],
                        "subscription_id": str(job["subscription_id"]),
                        "change": orjson.Fragment(str(job["change"])),
                    }
                ).decode()
                outcome = await send(
                    client,
                    self.settings,
                    url=str(job["webhook_url"]),
                    msg_id=signing.message_id(str(job["message_id"])),
                    body=body,
                    secrets_in_use=secrets_in_use,
                )
        self._results.put_nowait((job, outcome))

    async def _record_forever(self) -> None:
        """Writes what the attempts found, as many at a time as have come in."""
        while True:
            batch = [await self._results.get()]
            while not self._results.empty() and len(batch) < RECORD_BATCH:
                batch.append(self._results.get_nowait())
            try:
                async with self.db.read() as conn:
                    verdicts = await record(conn, self.settings, batch)
                self.delivered += sum(v.status == "delivered" for v in verdicts)
            except Exception:
                # Unrecorded: the leases expire and these deliveries are attempted again.
                log.warning("webhook worker: cannot record %d attempts", len(batch), exc_info=True)
            finally:
                for _ in batch:
                    self._results.task_done()

    async def prune(self) -> int:
        """Deletes finished deliveries older than WEBHOOK_LOG_RETENTION_DAYS, and pending
        ones of deleted subscriptions; how many."""
        days = self.settings.webhook_log_retention_days
        before = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
        deleted = 0
        for sql, args in ((ORPHAN_MATCHES_SQL, ()), (ORPHANS_SQL, ()), (PRUNE_SQL, (before,))):
            if sql is PRUNE_SQL and days <= 0:
                continue
            while True:
                async with self.db.read() as conn:
                    status = await conn.execute(sql, *args, PRUNE_BATCH)
                count = int(status.split()[-1])
                deleted += count
                if count < PRUNE_BATCH:
                    break
        return deleted

    async def _prune_forever(self) -> None:
        while True:
            try:
                await self.prune()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("webhook worker: cannot prune the delivery log", exc_info=True)
            await asyncio.sleep(PRUNE_EVERY_S)

    async def _listen(self) -> None:
        """Wakes the loop on NOTIFY; reconnects after a failure (polling covers the gap)."""
        while not self._stop.is_set():
            try:
                async with self.db.long_connection(3600) as conn:
                    await conn.add_listener(CHANNEL, lambda *_: self._wake.set())
                    while not conn.is_closed():
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._stop.wait(), 5)
                        if self._stop.is_set():
                            return
            except asyncio.CancelledError:
                raise
            except Exception:
                await asyncio.sleep(2)
