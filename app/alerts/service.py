"""Subscriptions and their delivery log: all their SQL.

A subscription belongs to the API key that created it; every statement here takes the caller
(`Owner`) and only touches that key's subscriptions (an admin key sees every one).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from app.alerts.matching import filter_sql
from app.alerts.signing import new_secret
from app.core.errors import NotFound, Unprocessable, field_error
from app.search.filters import SearchFilter
from app.search.query import Params

SUBSCRIPTION_JSON = """json_build_object(
    'id', s.id::text, 'name', s.name, 'webhook_url', s.webhook_url, 'filter', s.filter,
    'status', s.status, 'disabled_reason', s.disabled_reason, 'disabled_at', s.disabled_at,
    'previous_secret_expires_at',
        CASE WHEN s.previous_secret_until > now() THEN s.previous_secret_until END,
    'created_at', s.created_at, 'updated_at', s.updated_at)"""

EVENT_TYPES = {
    "create": "incident.created",
    "update": "incident.updated",
    "delete": "incident.deleted",
}
EVENT_TYPE_SQL = (
    "CASE r.op "
    + " ".join(f"WHEN '{op}' THEN '{name}'" for op, name in EVENT_TYPES.items())
    + " END"
)

DELIVERY_JSON = f"""json_build_object(
    'id', 'msg_' || replace(d.message_id::text, '-', ''),
    'type', {EVENT_TYPE_SQL},
    'incident_id', r.incident_id::text, 'version', r.version, 'status', d.status,
    'attempts', d.attempts,
    'next_attempt_at', CASE WHEN d.status = 'pending' THEN d.next_attempt_at END,
    'last_status_code', d.last_status_code, 'last_error', d.last_error,
    'created_at', d.created_at, 'delivered_at', d.delivered_at,
    'log', coalesce((SELECT json_agg(json_build_object('attempt', a.attempt, 'at', a.at,
        'status_code', a.status_code, 'error', a.error, 'duration_ms', a.duration_ms)
        ORDER BY a.attempt) FROM alert_attempts a WHERE a.delivery_id = d.id), '[]'::json))"""

_MINE = "(s.key_id = $1 OR $2)"


@dataclass(frozen=True)
class Owner:
    """Whose subscriptions a request sees."""

    key_id: int
    admin: bool = False


def _not_found(subscription_id: uuid.UUID) -> NotFound:
    return NotFound(f"No subscription {subscription_id} for this key.")


async def create_subscription(
    conn: asyncpg.Connection,
    owner: Owner,
    *,
    name: str,
    webhook_url: str,
    filter_doc: dict[str, Any],
    resolved: SearchFilter,
    limit: int,
) -> tuple[str, str]:
    """(the subscription's JSON, its secret). The secret is returned here only."""
    count = await conn.fetchval(
        "SELECT count(*) FROM alert_subscriptions WHERE key_id = $1", owner.key_id
    )
    if count >= limit:
        raise Unprocessable(
            f"This key has {count} subscriptions, the most allowed (MAX_SUBSCRIPTIONS_PER_KEY).",
            errors=[field_error("name", "too many subscriptions for this key")],
        )
    secret = new_secret()
    p = Params()
    given = (owner.key_id, name, webhook_url, orjson.dumps(filter_doc).decode())
    values = [p.add(v) for v in given]
    match = filter_sql(resolved, p)
    secret_param = p.add(secret)
    doc = await conn.fetchval(
        "INSERT INTO alert_subscriptions AS s (key_id, name, webhook_url, filter, match, secret) "
        f"VALUES ({values[0]}::bigint, {values[1]}::text, {values[2]}::text, {values[3]}::jsonb, "
        f"{match}, {secret_param}::text) RETURNING {SUBSCRIPTION_JSON}::text",
        *p.values,
    )
    return str(doc), secret


async def list_subscriptions(
    conn: asyncpg.Connection, owner: Owner, *, after: dict[str, Any] | None, limit: int
) -> tuple[list[str], dict[str, Any] | None]:
    created = dt.datetime.fromisoformat(after["c"]) if after else None
    last = uuid.UUID(after["i"]) if after else None
    rows = await conn.fetch(
        f"SELECT {SUBSCRIPTION_JSON}::text AS doc, s.created_at, s.id FROM alert_subscriptions s "
        f"WHERE {_MINE} AND ($3::timestamptz IS NULL OR (s.created_at, s.id) > ($3, $4::uuid)) "
        "ORDER BY s.created_at, s.id LIMIT $5",
        owner.key_id,
        owner.admin,
        created,
        last,
        limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    following = (
        {"c": rows[-1]["created_at"].isoformat(), "i": str(rows[-1]["id"])} if more else None
    )
    return [str(r["doc"]) for r in rows], following


async def get_subscription(
    conn: asyncpg.Connection, owner: Owner, subscription_id: uuid.UUID
) -> str:
    doc = await conn.fetchval(
        f"SELECT {SUBSCRIPTION_JSON}::text FROM alert_subscriptions s WHERE s.id = $3 AND {_MINE}",
        owner.key_id,
        owner.admin,
        subscription_id,
    )
    if doc is None:
        raise _not_found(subscription_id)
    return str(doc)


async def update_subscription(
    conn: asyncpg.Connection,
    owner: Owner,
    subscription_id: uuid.UUID,
    *,
    name: str | None,
    webhook_url: str | None,
    status: str | None,
    filter_doc: dict[str, Any] | None,
    resolved: SearchFilter | None,
) -> str:
    p = Params()
    key, admin, sid = p.add(owner.key_id), p.add(owner.admin), p.add(subscription_id)
    sets = ["updated_at = now()"]
    if name is not None:
        sets.append(f"name = {p.add(name)}::text")
    if webhook_url is not None:
        sets.append(f"webhook_url = {p.add(webhook_url)}::text")
    if filter_doc is not None and resolved is not None:
        sets.append(f"filter = {p.add(orjson.dumps(filter_doc).decode())}::jsonb")
        sets.append(f"match = {filter_sql(resolved, p)}")
    if status == "active":
        sets += ["status = 'active'", "disabled_reason = NULL", "disabled_at = NULL"]
    elif status == "disabled":
        sets += [
            "status = 'disabled'",
            "disabled_reason = CASE WHEN s.status = 'disabled' THEN s.disabled_reason "
            "ELSE 'disabled by its owner' END",
            "disabled_at = coalesce(s.disabled_at, now())",
        ]
    doc = await conn.fetchval(
        f"UPDATE alert_subscriptions s SET {', '.join(sets)} "
        f"WHERE s.id = {sid} AND (s.key_id = {key} OR {admin}) RETURNING {SUBSCRIPTION_JSON}::text",
        *p.values,
    )
    if doc is None:
        raise _not_found(subscription_id)
    return str(doc)


async def delete_subscription(
    conn: asyncpg.Connection, owner: Owner, subscription_id: uuid.UUID
) -> None:
    deleted = await conn.fetchval(
        f"DELETE FROM alert_subscriptions s WHERE s.id = $3 AND {_MINE} RETURNING s.id",
        owner.key_id,
        owner.admin,
        subscription_id,
    )
    if deleted is None:
        raise _not_found(subscription_id)
    # No foreign key (migration 0016): the queue and the log go with the subscription here.
    await conn.execute("DELETE FROM alert_matches WHERE subscription_id = $1", subscription_id)
    await conn.execute("DELETE FROM alert_deliveries WHERE subscription_id = $1", subscription_id)


async def rotate_secret(
    conn: asyncpg.Connection, owner: Owner, subscription_id: uuid.UUID, grace_s: float
) -> tuple[str, dt.datetime | None]:
    """A new secret; the current one keeps signing for `grace_s` seconds. Returns (the new
    secret, when the old one stops signing)."""
    secret = new_secret()
    row = await conn.fetchrow(
        "UPDATE alert_subscriptions s SET previous_secret = s.secret, "
        "previous_secret_until = now() + $4 * interval '1 second', secret = $5, "
        f"updated_at = now() WHERE s.id = $3 AND {_MINE} RETURNING s.previous_secret_until",
        owner.key_id,
        owner.admin,
        subscription_id,
        grace_s,
        secret,
    )
    if row is None:
        raise _not_found(subscription_id)
    until = row["previous_secret_until"] if grace_s > 0 else None
    return secret, until


async def list_deliveries(
    conn: asyncpg.Connection,
    owner: Owner,
    subscription_id: uuid.UUID,
    *,
    status: str | None,
    after: dict[str, Any] | None,
    limit: int,
) -> tuple[list[str], dict[str, Any] | None]:
    """Newest first, each with its attempts."""
    await get_subscription(conn, owner, subscription_id)
    rows = await conn.fetch(
        f"SELECT {DELIVERY_JSON}::text AS doc, d.id FROM alert_deliveries d "
        "LEFT JOIN incident_revisions r ON r.seq = d.revision_seq "
        "WHERE d.subscription_id = $1 AND ($2::text IS NULL OR d.status = $2) "
        "AND ($3::bigint IS NULL OR d.id < $3) ORDER BY d.id DESC LIMIT $4",
        subscription_id,
        status,
        int(after["id"]) if after else None,
        limit + 1,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return [str(r["doc"]) for r in rows], ({"id": int(rows[-1]["id"])} if more else None)


async def subscription_for_test(
    conn: asyncpg.Connection, subscription_id: uuid.UUID
) -> asyncpg.Record | None:
    """What a test ping needs (the command line: any subscription)."""
    return await conn.fetchrow(
        "SELECT s.id, s.webhook_url, s.secret, CASE WHEN s.previous_secret_until > now() "
        "THEN s.previous_secret END AS previous_secret FROM alert_subscriptions s WHERE s.id = $1",
        subscription_id,
    )


async def all_subscriptions(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """Every subscription with its owner and delivery counts (the command line)."""
    return await conn.fetch(
        "SELECT s.id, s.name, s.webhook_url, s.status, s.disabled_reason, k.name AS key_name, "
        "(SELECT count(*) FROM alert_deliveries d WHERE d.subscription_id = s.id "
        "AND d.status = 'pending') AS pending, "
        "(SELECT count(*) FROM alert_deliveries d WHERE d.subscription_id = s.id "
        "AND d.status = 'delivered') AS delivered, "
        "(SELECT count(*) FROM alert_deliveries d WHERE d.subscription_id = s.id "
        "AND d.status = 'failed') AS failed "
        "FROM alert_subscriptions s JOIN api_keys k ON k.id = s.key_id ORDER BY s.created_at"
    )
