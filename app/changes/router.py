"""GET /v1/changes: the ordered feed a downstream copy follows."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from app.changes.service import read_changes
from app.core.deps import DbDep, SettingsDep
from app.core.pagination import decode_cursor, encode_cursor

router = APIRouter(tags=["changes"])


class Change(BaseModel):
    op: Literal["create", "update", "delete"]
    id: str
    external_id: str | None
    version: int
    at: str
    changed_by: str | None
    changed_fields: list[str]
    incident: dict[str, Any] = Field(
        description="The incident after the change; for a delete, a "
        "tombstone {id, external_id, version, deleted: true}"
    )


class ChangePage(BaseModel):
    items: list[Change]
    next_cursor: str = Field(
        description="Always present: poll again with it to get what happens next"
    )


@router.get("/changes", response_model=ChangePage, summary="Every change since a cursor")
async def changes(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    cursor: Annotated[
        str | None,
        Query(
            max_length=500,
            description="next_cursor of the previous page; omit to start from the beginning",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> Response:
    """Creates, updates and deletes in commit-safe order. Following `next_cursor` from the
    start and applying each item (upsert the incident, drop it on delete) reproduces exactly
    the live set."""
    txid, seq = "0", 0
    if cursor:
        payload = decode_cursor(cursor, settings.cursor_secret, kind="chg")
        txid, seq = str(payload["t"]), int(payload["s"])
    async with db.read() as conn:
        docs, next_txid, next_seq = await read_changes(
            conn, after_txid=txid, after_seq=seq, limit=limit
        )
    next_cursor = encode_cursor({"k": "chg", "t": next_txid, "s": next_seq}, settings.cursor_secret)
    headers = {"Link": f'<{request.url.include_query_params(cursor=next_cursor)}>; rel="next"'}
    body = '{"items":[' + ",".join(docs) + '],"next_cursor":"' + next_cursor + '"}'
    return Response(body, media_type="application/json", headers=headers)
