"""HTTP surface of alerts: subscriptions (`alerts` or `write` scope, each key its own), their
delivery log, and the live stream. Parses and shapes HTTP only; SQL lives in the services."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import anyio
import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.background import BackgroundTask

from app.alerts import service
from app.alerts.checks import check_url, resolved_filter
from app.alerts.matching import check_subscribable
from app.alerts.schemas import (
    Delivery,
    RotatedSecret,
    SubscriptionCreated,
    SubscriptionIn,
    SubscriptionOut,
    SubscriptionPatch,
)
from app.alerts.service import Owner
from app.alerts.stream import Position, Stream, StreamHub
from app.auth.deps import AlertsKey
from app.auth.service import Principal
from app.core.deps import ReadConn, SettingsDep, WriteConn
from app.core.http import created, creates
from app.core.pagination import Page, Paging, decode_cursor, encode_cursor, paging
from app.search.params import FILTER_OPENAPI, SearchBody
from app.search.resolve import RawFilterDep, resolve_filter

router = APIRouter(tags=["alerts"])
LimitParam = Annotated[int, Query(ge=1, le=1000)]
CHANGES_CURSOR = "chg"
SHUTDOWN_GRACE_S = 2.0


class SubscriptionPage(Page[SubscriptionOut]):
    pass


class DeliveryPage(Page[Delivery]):
    pass


def _owner(principal: Principal) -> Owner:
    return Owner(principal.key_id, admin="admin" in principal.scopes)


def _filter_doc(body: Any) -> dict[str, Any]:
    return dict(body.model_dump(mode="json", exclude_none=True))


@router.post(
    "/subscriptions",
    **creates(
        SubscriptionCreated,
        "Subscribe a webhook to incidents matching a filter",
        responses={201: {"description": "Created; the secret is shown only now"}},
    ),
)
async def create_subscription(
    body: SubscriptionIn, conn: WriteConn, principal: AlertsKey, settings: SettingsDep
) -> Response:
    """Every create, update and delete of an incident that matches `filter` before or after
    the change is POSTed to `webhook_url`, signed (Standard Webhooks)."""
    url = await check_url(body.webhook_url, settings.webhook_allowed_hosts)
    resolved = await resolved_filter(conn, body.filter)
    doc, secret = await service.create_subscription(
        conn,
        _owner(principal),
        name=body.name,
        webhook_url=url,
        filter_doc=_filter_doc(body.filter),
        resolved=resolved,
        limit=settings.max_subscriptions_per_key,
    )
    shown = {**orjson.loads(doc), "secret": secret}
    return created(orjson.dumps(shown).decode(), f"/v1/subscriptions/{shown['id']}")


@router.get("/subscriptions", response_model=SubscriptionPage, summary="This key's subscriptions")
async def list_subscriptions(
    conn: ReadConn,
    principal: AlertsKey,
    page: Annotated[Paging, Depends(paging("sub"))],
    limit: LimitParam = 100,
) -> Response:
    docs, following = await service.list_subscriptions(
        conn, _owner(principal), after=page.after, limit=limit
    )
    return page.respond(docs, following)


@router.get(
    "/subscriptions/{subscription_id}", response_model=SubscriptionOut, summary="A subscription"
)
async def get_subscription(
    subscription_id: uuid.UUID, conn: ReadConn, principal: AlertsKey
) -> Response:
    doc = await service.get_subscription(conn, _owner(principal), subscription_id)
    return Response(doc, media_type="application/json")


@router.patch(
    "/subscriptions/{subscription_id}",
    response_model=SubscriptionOut,
    summary="Change a subscription's name, filter or URL; disable or re-enable it",
)
async def update_subscription(
    subscription_id: uuid.UUID,
    body: SubscriptionPatch,
    conn: WriteConn,
    principal: AlertsKey,
    settings: SettingsDep,
) -> Response:
    url = None
    if body.webhook_url is not None:
        url = await check_url(body.webhook_url, settings.webhook_allowed_hosts)
    resolved = await resolved_filter(conn, body.filter) if body.filter is not None else None
    doc = await service.update_subscription(
        conn,
        _owner(principal),
        subscription_id,
        name=body.name,
        webhook_url=url,
        status=body.status,
        filter_doc=_filter_doc(body.filter) if body.filter is not None else None,
        resolved=resolved,
    )
    return Response(doc, media_type="application/json")


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=204,
    summary="Delete a subscription and its delivery log",
)
async def delete_subscription(
    subscription_id: uuid.UUID, conn: WriteConn, principal: AlertsKey
) -> Response:
    await service.delete_subscription(conn, _owner(principal), subscription_id)
    return Response(status_code=204)


@router.post(
    "/subscriptions/{subscription_id}/rotate-secret",
    response_model=RotatedSecret,
    summary="A new signing secret; the old one keeps signing for WEBHOOK_SECRET_GRACE_S",
)
async def rotate_secret(
    subscription_id: uuid.UUID, conn: WriteConn, principal: AlertsKey, settings: SettingsDep
) -> RotatedSecret:
    secret, until = await service.rotate_secret(
        conn, _owner(principal), subscription_id, settings.webhook_secret_grace_s
    )
    return RotatedSecret(id=str(subscription_id), secret=secret, previous_secret_expires_at=until)


@router.get(
    "/subscriptions/{subscription_id}/deliveries",
    response_model=DeliveryPage,
    summary="The delivery log: each event's attempts, status codes and next try",
)
async def list_deliveries(
    subscription_id: uuid.UUID,
    conn: ReadConn,
    principal: AlertsKey,
    page: Annotated[Paging, Depends(paging("dlv"))],
    status: Literal["pending", "delivered", "failed"] | None = None,
    limit: LimitParam = 100,
) -> Response:
    """Newest first."""
    docs, following = await service.list_deliveries(
        conn, _owner(principal), subscription_id, status=status, after=page.after, limit=limit
    )
    return page.respond(docs, following)


LastEventId = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        max_length=1000,
        description="The `id:` of the last event received: the stream resumes after it",
    ),
]


@router.get(
    "/stream",
    summary="Live changes matching a filter (Server-Sent Events)",
    openapi_extra=FILTER_OPENAPI,
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def stream(
    request: Request,
    conn: ReadConn,
    raw: RawFilterDep,
    settings: SettingsDep,
    last_event_id: LastEventId = None,
) -> EventSourceResponse:
    """`text/event-stream` of every create, update and delete matching the search parameters
    (before or after the change): `id:` is a /v1/changes cursor, `event:` create, update or
    delete, `data:` the incident (a tombstone for a delete). A comment line every
    STREAM_HEARTBEAT_S keeps proxies from closing an idle stream; send `Last-Event-ID` to
    resume without gaps or repeats."""
    start: Position | None = None
    if last_event_id:
        payload = decode_cursor(last_event_id, settings.cursor_secret, kind=CHANGES_CURSOR)
        start = (int(payload["t"]), int(payload["s"]))
    f = await resolve_filter(conn, check_subscribable(raw))
    hub: StreamHub = request.app.state.streams
    opened = await hub.open(f, start)
    shutdown = anyio.Event()
    return EventSourceResponse(
        _events(hub, opened, settings.cursor_secret, shutdown),
        ping=settings.stream_heartbeat_s,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        shutdown_event=shutdown,
        shutdown_grace_period=SHUTDOWN_GRACE_S,
        # Also when the client leaves before the first event (the generator never ran).
        background=BackgroundTask(hub.release, opened),
    )


async def _events(
    hub: StreamHub, opened: Stream, secret: str, shutdown: anyio.Event
) -> AsyncIterator[ServerSentEvent]:
    """The stream's events as SSE; on server shutdown the stream ends (a complete response:
    the client sees the end and reconnects elsewhere with Last-Event-ID)."""

    async def end_on_shutdown() -> None:
        await shutdown.wait()
        opened.end()

    watcher = asyncio.create_task(end_on_shutdown())
    try:
        async for event in hub.events(opened):
            txid, seq = event.position
            yield ServerSentEvent(
                data=event.doc,
                event=event.op,
                id=encode_cursor(CHANGES_CURSOR, {"t": str(txid), "s": seq}, secret),
            )
    finally:
        watcher.cancel()
        hub.release(opened)


# SearchBody is the filter's model: re-exported so /docs names it once.
__all__ = ["SearchBody", "router"]
