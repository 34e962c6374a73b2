"""Actor alias groups (used by the `actor` search parameter)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.actors import service
from app.auth.deps import Writer
from app.core.deps import ReadConn, WriteConn
from app.core.http import creates
from app.core.pagination import Page
from app.core.schemas import input_config

router = APIRouter(prefix="/actors", tags=["actors"])


class ActorIn(BaseModel):
    model_config = input_config({"name": "Islamic State", "aliases": ["Daish"]})

    name: Annotated[str, Field(min_length=1, max_length=200)]
    aliases: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=200)
    ] = []


class ActorOut(BaseModel):
    id: str
    name: str
    aliases: list[str]


class ActorPage(Page[ActorOut]):
    """Every actor group (one page: no cursor)."""


@router.get("", response_model=ActorPage, summary="Actor groups and their aliases")
async def list_actors(conn: ReadConn) -> ActorPage:
    rows = await service.list_actors(conn)
    return ActorPage(items=[ActorOut(**r) for r in rows])


@router.post("", **creates(ActorOut, "Add an actor group or aliases to one"))
async def add_actor(actor: ActorIn, conn: WriteConn, principal: Writer) -> ActorOut:
    row = await service.add_actor(
        conn, name=actor.name, aliases=actor.aliases, created_by=principal.name
    )
    return ActorOut(**row)
