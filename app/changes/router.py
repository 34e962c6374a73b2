"""GET /v1/changes: the ordered feed a downstream copy follows."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from app.changes.service import read_changes
from app.core.deps import ReadConn
from app.core.pagination import Page, Paging, paging

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


class ChangePage(Page[Change]):
    next_cursor: str = Field(
        description="Always present: poll again with it to get what happens next"
    )


@router.get("/changes", response_model=ChangePage, summary="Every change since a cursor")
async def changes(
    conn: ReadConn,
    page: Annotated[Paging, Depends(paging("chg"))],
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> Response:
    """Creates, updates and deletes in commit-safe order. Following `next_cursor` from the
    start (no `cursor`) and applying each item (upsert the incident, drop it on delete)
    reproduces exactly the live set."""
    after = page.after
    txid, seq = ("0", 0) if after is None else (str(after["t"]), int(after["s"]))
    docs, next_txid, next_seq = await read_changes(
        conn, after_txid=txid, after_seq=seq, limit=limit
    )
    return page.respond(docs, {"t": next_txid, "s": next_seq})
