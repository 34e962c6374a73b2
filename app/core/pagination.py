"""One page shape for every list: `{"items": [...], "next_cursor": ...}`, keyset cursors and the
`Link: rel="next"` header.

Cursors are opaque and tamper-evident (base64url(JSON) + HMAC), name the list they belong to
(`kind`) and, for searches, the query (`bound_to`): no OFFSET, no COUNT(*).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Query, Request, Response
from pydantic import BaseModel, Field

from app.core.errors import BadRequest, field_error

T = TypeVar("T")
JSON = "application/json"
_SIG_BYTES = 12


class Page(BaseModel, Generic[T]):
    """A page of a list; `next_cursor` is null on the last page."""

    items: list[T]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page")


def _sign(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()[:_SIG_BYTES]


def encode_cursor(kind: str, payload: dict[str, Any], secret: str) -> str:
    body = orjson.dumps({"k": kind, **payload})
    return base64.urlsafe_b64encode(_sign(secret, body) + body).decode().rstrip("=")


def decode_cursor(
    token: str, secret: str, *, kind: str, bound_to: str | None = None
) -> dict[str, Any]:
    """The cursor's payload; a 400 naming `cursor` if this server did not make it for `kind`
    (and, with `bound_to`, for the same query)."""
    bad = BadRequest(
        "The cursor is invalid or was altered; use next_cursor exactly as returned.",
        errors=[field_error("cursor", "invalid or tampered cursor")],
    )
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError) as exc:
        raise bad from exc
    sig, body = raw[:_SIG_BYTES], raw[_SIG_BYTES:]
    if len(sig) != _SIG_BYTES or not hmac.compare_digest(sig, _sign(secret, body)):
        raise bad
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad from exc
    if not isinstance(payload, dict) or payload.get("k") != kind:
        raise bad
    if bound_to is not None and payload.get("f") != bound_to:
        raise BadRequest(
            "The cursor belongs to a different query; repeat the same filters and sort.",
            errors=[field_error("cursor", "does not match these filters")],
        )
    return payload


CursorText = Annotated[
    str | None, Query(max_length=1000, description="`next_cursor` of the previous page")
]


def cursor_param(kind: str) -> Callable[..., Any]:
    """A dependency: the decoded `cursor` query parameter of a `kind` list (None on page 1)."""

    async def after(request: Request, cursor: CursorText = None) -> dict[str, Any] | None:
        if not cursor:
            return None
        return decode_cursor(cursor, request.app.state.settings.cursor_secret, kind=kind)

    return after


@dataclass
class Paging:
    """A list request's page: where it starts (the decoded cursor, None on page 1) and how
    its response is shaped."""

    request: Request
    kind: str
    after: dict[str, Any] | None

    def respond(
        self,
        docs: Sequence[str],
        next_payload: dict[str, Any] | None,
        *,
        extra: dict[str, Any] | None = None,
    ) -> Response:
        return page_response(
            self.request, docs, kind=self.kind, next_payload=next_payload, extra=extra
        )


def paging(kind: str) -> Callable[..., Any]:
    """A dependency: the Paging of a `kind` list, from its `cursor` query parameter."""
    decode = cursor_param(kind)

    async def page(request: Request, cursor: CursorText = None) -> Paging:
        return Paging(request, kind, await decode(request, cursor))

    return page


def next_url(request: Request, cursor: str) -> str:
    return str(request.url.include_query_params(cursor=cursor))


def link_header(links: Sequence[tuple[str, str]]) -> dict[str, str]:
    """`Link` for (url, rel) pairs (RFC 8288); no header when there are none."""
    if not links:
        return {}
    return {"Link": ", ".join(f'<{url}>; rel="{rel}"' for url, rel in links)}


def json_body(fields: dict[str, Any]) -> bytes:
    """JSON with pre-built documents (`orjson.Fragment`) inlined as they are."""
    return orjson.dumps(fields)


def fragments(docs: Sequence[str]) -> list[orjson.Fragment]:
    return [orjson.Fragment(doc) for doc in docs]


def page_response(
    request: Request,
    docs: Sequence[str],
    *,
    kind: str,
    next_payload: dict[str, Any] | None,
    extra: dict[str, Any] | None = None,
    media_type: str = JSON,
) -> Response:
    """The page response of a list whose items are JSON texts built in SQL: items, the next
    cursor (from `next_payload`, None on the last page) with its Link header, and `extra`
    top-level keys (e.g. `meta`)."""
    cursor = None
    if next_payload is not None:
        cursor = encode_cursor(kind, next_payload, request.app.state.settings.cursor_secret)
    headers = link_header([(next_url(request, cursor), "next")] if cursor else [])
    body = json_body({"items": fragments(docs), "next_cursor": cursor, **(extra or {})})
    return Response(body, media_type=media_type, headers=headers)
