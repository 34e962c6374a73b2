"""What a subscription is checked with, wherever it comes from (API or command line): its
filter resolved as a search's, its URL as a webhook's (`app.alerts.urls`)."""

from __future__ import annotations

from typing import Any

import asyncpg

from app.alerts.matching import check_subscribable
from app.alerts.urls import Allowed, RefusedUrl, parse_url, resolve
from app.core.errors import ProblemError, ServiceUnavailable, Unprocessable, field_error
from app.search.filters import SearchFilter
from app.search.resolve import resolve_filter


async def resolved_filter(conn: asyncpg.Connection, body: Any) -> SearchFilter:
    """`body` (a SearchBody) resolved; a problem names `filter.<parameter>`."""
    try:
        return await resolve_filter(conn, check_subscribable(body.to_raw()))
    except ServiceUnavailable:
        raise
    except ProblemError as exc:
        errors = [
            {**e, "field": f"filter.{e['field']}"} if "field" in e else e
            for e in (exc.errors or [field_error("filter", exc.detail)])
        ]
        raise Unprocessable(f"filter: {exc.detail}", errors=errors) from exc


async def check_url(url: str, allowed: list[str]) -> str:
    """`url` if a webhook may be sent there now; a 422 naming `webhook_url` otherwise."""
    try:
        await resolve(parse_url(url), Allowed.parse(allowed))
    except RefusedUrl as exc:
        raise Unprocessable(
            f"webhook_url: {exc}", errors=[field_error("webhook_url", str(exc), url[:200])]
        ) from exc
    return url
