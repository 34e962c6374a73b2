"""API keys: creation (shown once), verification (constant time), listing, revocation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import asyncpg

from app.core.db import Database

SCOPES = ("read", "write", "alerts", "admin")
KEY_PREFIX = "ci"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name is what revisions and the audit trail record."""

    key_id: int
    name: str
    scopes: frozenset[str]

    def has(self, scope: str) -> bool:
        """admin implies every scope; write implies read and alerts; alerts (managing one's
        own subscriptions) implies read."""
        if "admin" in self.scopes:
            return True
        if scope == "read":
            return bool(self.scopes & {"read", "write", "alerts"})
        if scope == "alerts":
            return bool(self.scopes & {"alerts", "write"})
        return scope in self.scopes


def hash_key(key: str, pepper: str) -> str:
    """Peppered HMAC-SHA256: without the pepper (kept outside the database) a stolen table of
    hashes cannot be brute-forced, and keys are 256-bit random so no slow hash is needed."""
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


def split_key(key: str) -> str | None:
    """The lookup prefix of a well-formed key, or None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 10 or len(parts[2]) < 20:
        return None
    return parts[1]


def parse_scopes(raw: str) -> list[str]:
    scopes = sorted({s.strip() for s in raw.split(",") if s.strip()})
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise ValueError(f"scopes must be a comma-separated subset of {', '.join(SCOPES)}")
    return scopes


async def create_key(
    conn: asyncpg.Connection, *, name: str, scopes: list[str], pepper: str
) -> tuple[str, int]:
    """Returns (the key, its id). The key itself is never stored."""
    prefix = secrets.token_hex(5)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key_id = await conn.fetchval(
        "INSERT INTO api_keys (name, prefix, key_hash, scopes) VALUES ($1, $2, $3, $4) "
        "RETURNING id",
        name,
        prefix,
        hash_key(key, pepper),
        scopes,
    )
    return key, int(key_id)


async def list_keys(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, name, prefix, scopes, created_at, revoked_at FROM api_keys ORDER BY id"
    )
    return [dict(row) for row in rows]


async def revoke_key(conn: asyncpg.Connection, *, key_id: int | None, name: str | None) -> int:
    """Revokes the key(s) and disables their alert subscriptions (nobody may manage them)."""
    rows = await conn.fetch(
        "WITH k AS (UPDATE api_keys SET revoked_at = now() WHERE revoked_at IS NULL "
        "AND (id = $1 OR name = $2) RETURNING id), "
        "s AS (UPDATE alert_subscriptions s SET status = 'disabled', "
        "disabled_reason = 'its API key was revoked', disabled_at = now(), updated_at = now() "
        "FROM k WHERE s.key_id = k.id AND s.status = 'active') "
        "SELECT id FROM k",
        key_id,
        name,
    )
    return len(rows)


_DUMMY_HASH = "0" * 64


async def verify_key(db: Database, key: str, pepper: str) -> Principal | None:
    """The key's principal if it exists and is not revoked. Always does one lookup and one
    constant-time comparison so timing says nothing about which part was wrong."""
    prefix = split_key(key) or "-"
    async with db.read() as conn:
        row = await conn.fetchrow(
            "SELECT id, name, key_hash, scopes, revoked_at FROM api_keys WHERE prefix = $1",
            prefix,
        )
    expected = row["key_hash"] if row is not None else _DUMMY_HASH
    matches = hmac.compare_digest(expected, hash_key(key, pepper))
    if row is None or not matches or row["revoked_at"] is not None:
        return None
    return Principal(key_id=row["id"], name=row["name"], scopes=frozenset(row["scopes"]))
