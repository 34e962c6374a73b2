"""Auth dependencies: `Authorization: Bearer <key>`; scopes read < write < admin."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth.service import Principal, verify_key
from app.core.deps import DbDep, SettingsDep
from app.core.errors import Forbidden, Unauthorized

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="conflict-incidents"'}


async def optional_principal(
    request: Request,
    db: DbDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Use 'Authorization: Bearer <key>'.", headers=_CHALLENGE)
    principal = await verify_key(db, credentials.credentials, settings.key_pepper)
    if principal is None:
        raise Unauthorized("The API key is unknown or revoked.", headers=_CHALLENGE)
    request.state.principal = principal
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


def _require(scope: str, principal: Principal | None) -> Principal:
    if principal is None:
        raise Unauthorized(
            f"This request needs an API key with the '{scope}' scope.", headers=_CHALLENGE
        )
    if not principal.has(scope):
        raise Forbidden(f"The key '{principal.name}' lacks the '{scope}' scope.")
    return principal


async def require_read(principal: OptionalPrincipal, settings: SettingsDep) -> Principal | None:
    if principal is None and settings.allow_anonymous_read:
        return None
    return _require("read", principal)


async def require_write(principal: OptionalPrincipal) -> Principal:
    return _require("write", principal)


async def require_admin(principal: OptionalPrincipal) -> Principal:
    return _require("admin", principal)


Reader = Annotated[Principal | None, Depends(require_read)]
Writer = Annotated[Principal, Depends(require_write)]
Admin = Annotated[Principal, Depends(require_admin)]
