"""Actors and their aliases: `actor=ISIS` also finds "Islamic State (Iraq)" and "Daesh"."""

from __future__ import annotations

import re
from typing import Any

import asyncpg

GROUPS_SQL = """
SELECT id, name, aliases FROM actors
WHERE app_norm(name) = ANY ($1::text[])
   OR EXISTS (SELECT 1 FROM unnest(aliases) a WHERE app_norm(a) = ANY ($1::text[]))
"""

# Aliases this short ("IS") find their group but are not matched inside actor names, where
# they would hit ordinary words.
MIN_MATCH_LENGTH = 3


def _pg_regex_escape(term: str) -> str:
    return re.sub(r"([\\.^$|?*+()\[\]{}])", r"\\\1", term)


async def actor_pattern(
    conn: asyncpg.Connection, values: list[str]
) -> tuple[str, list[dict[str, Any]]]:
    """A case-insensitive word-boundary regex over actor names and aliases, and the alias
    groups that matched (echoed in the response's meta)."""
    lowered = [v.lower() for v in values]
    norm = [await conn.fetchval("SELECT app_norm($1::text)", v) for v in lowered]
    rows = await conn.fetch(GROUPS_SQL, norm)
    terms: set[str] = {v for v in lowered if len(v) >= 1}
    groups = []
    for row in rows:
        names = [row["name"], *row["aliases"]]
        terms.update(n.lower() for n in names if len(n) >= MIN_MATCH_LENGTH)
        groups.append({"name": row["name"], "aliases": list(row["aliases"])})
    alternatives = "|".join(sorted(_pg_regex_escape(t) for t in terms))
    return rf"(^|[^[:alnum:]])({alternatives})($|[^[:alnum:]])", groups


async def list_actors(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT id, name, aliases FROM actors ORDER BY name")
    return [{"id": str(r["id"]), "name": r["name"], "aliases": list(r["aliases"])} for r in rows]


async def add_actor(
    conn: asyncpg.Connection, *, name: str, aliases: list[str], created_by: str
) -> dict[str, Any]:
    """Create a group, or add aliases to an existing one of the same name."""
    row = await conn.fetchrow(
        """
        INSERT INTO actors (name, aliases, created_by) VALUES ($1, $2, $3)
        ON CONFLICT (app_norm(name)) DO UPDATE
        SET aliases = ARRAY(SELECT DISTINCT unnest(actors.aliases || EXCLUDED.aliases))
        RETURNING id, name, aliases
        """,
        name,
        aliases,
        created_by,
    )
    return {"id": str(row["id"]), "name": row["name"], "aliases": list(row["aliases"])}
