"""The change feed: every create, update and delete, in an order safe against transactions
that commit out of order.

Revisions are ordered by (writing transaction id, sequence). A page only includes revisions
whose transaction is older than the oldest transaction still running
(`pg_snapshot_xmin(pg_current_snapshot())`): those have all committed (or aborted), so nothing
can later appear before the cursor. A revision written by a slow transaction is held back until
that transaction ends, then delivered; it is never skipped.
"""

from __future__ import annotations

import asyncpg

from app.incidents.sql import VERSION_JSON, version_sql

EXTERNAL_ID = version_sql("i.external_id")
# The incident a revision `r` left (a tombstone for a delete): an item's `incident`, and what
# a live stream sends.
CHANGE_INCIDENT_JSON = f"""CASE WHEN r.op = 'delete'
        THEN jsonb_build_object('id', r.incident_id::text, 'external_id', {EXTERNAL_ID},
                                'version', r.version, 'deleted', true)
        ELSE {VERSION_JSON} END"""
# One item of the feed, for revision `r` (also the `change` of a webhook event).
CHANGE_JSON = f"""json_build_object(
    'op', r.op,
    'id', r.incident_id::text,
    'external_id', {EXTERNAL_ID},
    'version', r.version,
    'at', r.changed_at,
    'changed_by', r.changed_by,
    'changed_fields', r.changed_fields,
    'incident', {CHANGE_INCIDENT_JSON}
)"""
FEED_SQL = f"""
SELECT r.txid::text AS txid, r.seq, {CHANGE_JSON}::text AS doc
FROM incident_revisions r
WHERE (r.txid, r.seq) > ($1::text::xid8, $2::bigint)
  AND r.txid < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY r.txid, r.seq
LIMIT $3
"""  # noqa: S608 (constant SQL)


async def read_changes(
    conn: asyncpg.Connection, *, after_txid: str, after_seq: int, limit: int
) -> tuple[list[str], str, int]:
    """(items, next txid, next seq): the position moves past the last item returned, or stays
    where it was on an empty page."""
    rows = await conn.fetch(FEED_SQL, after_txid, after_seq, limit)
    if not rows:
        return [], after_txid, after_seq
    return [str(r["doc"]) for r in rows], str(rows[-1]["txid"]), int(rows[-1]["seq"])
