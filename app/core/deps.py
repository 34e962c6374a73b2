"""Dependency aliases shared by routers: the database, settings, and a connection per request.

`ReadConn` and `WriteConn` are released (and `WriteConn` committed) when the endpoint returns,
before the response is sent: a client never sees a success for a write that did not commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from app.core.config import Settings
from app.core.db import Database


async def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def read_connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    async with request.app.state.db.read() as conn:
        yield conn


async def write_connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    async with request.app.state.db.write() as conn:
        yield conn


DbDep = Annotated[Database, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
ReadConn = Annotated[asyncpg.Connection, Depends(read_connection, scope="function")]
WriteConn = Annotated[asyncpg.Connection, Depends(write_connection, scope="function")]
