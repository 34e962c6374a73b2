"""Auth dependencies: `Authorization: Bearer <key>`; scopes read < write < admin."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth.ratelimit import check_rate
from app.auth.service import Principal, verify_key
from app.core.config import Settings
from app.core.db import Database
from app.core.errors import Forbidden, Unauthorized

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")

_UNRESOLVED = object()
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="conflict-incidents"'}


async def _principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None, key: str | None = None
) -> Principal | None:
    """The caller's key (`Authorization: Bearer`, or `key` where a dialect sends it in the
    query string), verified once per request (later dependencies reuse it)."""
    cached = getattr(request.state, "principal", _UNRESOLVED)
    if cached is not _UNRESOLVED:
        return cast(Principal | None, cached)
    principal = None
    if request.headers.get("authorization") is not None:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise Unauthorized("Use 'Authorization: Bearer <key>'.", headers=_CHALLENGE)
        key = credentials.credentials
    if key:
        settings: Settings = request.app.state.settings
        db: Database = request.app.state.db
        principal = await verify_key(db, key, settings.key_pepper)
        if principal is None:
            raise Unauthorized("The API key is unknown or revoked.", headers=_CHALLENGE)
    request.state.principal = principal
    return principal


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def optional_principal(request: Request, credentials: Credentials) -> Principal | None:
    return await _principal(request, credentials)


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


async def guard(request: Request, credentials: Credentials) -> None:
    """Every /v1 route: read access (anonymous when allowed), then the rate limit. One flat
    dependency, as it runs on every request."""
    await _read_access(request, await _principal(request, credentials))


QueryKey = Annotated[
    str | None,
    Query(
        max_length=200,
        description="An API key in the query string, as ACLED's clients send it (kept out of "
        "the logs); `Authorization: Bearer` works too",
    ),
]


async def key_guard(request: Request, credentials: Credentials, key: QueryKey = None) -> None:
    """`guard` for the ACLED-compatible API: the key may come as `?key=`."""
    await _read_access(request, await _principal(request, credentials, key))


async def _read_access(request: Request, principal: Principal | None) -> None:
    settings: Settings = request.app.state.settings
    if principal is not None or not settings.allow_anonymous_read:
        _require("read", principal)
    check_rate(request, principal, settings)


def _require(scope: str, principal: Principal | None) -> Principal:
    if principal is None:
        raise Unauthorized(
            f"This request needs an API key with the '{scope}' scope.", headers=_CHALLENGE
        )
    if not principal.has(scope):
        raise Forbidden(f"The key '{principal.name}' lacks the '{scope}' scope.")
    return principal


async def require_write(request: Request, credentials: Credentials) -> Principal:
    return _require("write", await _principal(request, credentials))


async def require_alerts(request: Request, credentials: Credentials) -> Principal:
    return _require("alerts", await _principal(request, credentials))


async def require_admin(request: Request, credentials: Credentials) -> Principal:
    return _require("admin", await _principal(request, credentials))


Writer = Annotated[Principal, Depends(require_write)]
Admin = Annotated[Principal, Depends(require_admin)]
AlertsKey = Annotated[Principal, Depends(require_alerts)]
