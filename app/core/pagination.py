"""Opaque, tamper-evident keyset cursors: base64url(JSON) + HMAC. No OFFSET, no COUNT(*)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson
from fastapi import Request, Response

from app.core.errors import BadRequest, field_error

_SIG_BYTES = 12


def encode_cursor(payload: dict[str, Any], secret: str) -> str:
    body = orjson.dumps(payload)
    sig = hmac.new(secret.encode(), body, hashlib.sha256).digest()[:_SIG_BYTES]
    return base64.urlsafe_b64encode(sig + body).decode().rstrip("=")


def decode_cursor(token: str, secret: str, *, kind: str) -> dict[str, Any]:
    """The cursor's payload; a 400 naming `cursor` if it was not made by this server for `kind`."""
    bad = BadRequest(
        "The cursor is invalid or was altered; use next_cursor exactly as returned.",
        errors=[field_error("cursor", "invalid or tampered cursor")],
    )
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError) as exc:
        raise bad from exc
    sig, body = raw[:_SIG_BYTES], raw[_SIG_BYTES:]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).digest()[:_SIG_BYTES]
    if len(sig) != _SIG_BYTES or not hmac.compare_digest(sig, expected):
        raise bad
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad from exc
    if not isinstance(payload, dict) or payload.get("k") != kind:
        raise bad
    return payload


def page_response(request: Request, docs: list[str], next_cursor: str | None) -> Response:
    """`{"items": [...], "next_cursor": ...}` from JSON texts built in SQL, with a
    `Link: rel="next"` header when there is a next page."""
    headers = {}
    if next_cursor:
        headers["Link"] = f'<{request.url.include_query_params(cursor=next_cursor)}>; rel="next"'
    body = (
        '{"items":['
        + ",".join(docs)
        + '],"next_cursor":'
        + (f'"{next_cursor}"' if next_cursor else "null")
        + "}"
    )
    return Response(body, media_type="application/json", headers=headers)
