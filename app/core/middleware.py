"""Pure-ASGI middleware: load shedding; body size limits; security headers and Prometheus
metrics."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import PayloadTooLarge, RequestTimeout, ServiceUnavailable, problem_of

REQUESTS = Counter("incidents_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "incidents_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
# /docs and /map load their own scripts; API responses may load nothing.
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")


def _too_large(limit: int) -> str:
    return f"The request body exceeds the limit of {limit} bytes."


class BodyLimitMiddleware:
    """413 for bodies over the limit, before any handler sees them.

    Ordinary bodies are read here up to the limit and replayed to the app, so a too-large
    body is refused whole. Bulk uploads are streamed by their handler; for them the limit is
    enforced chunk by chunk as the handler reads (a PayloadTooLarge raised into its own code).
    """

    def __init__(
        self, app: ASGIApp, *, default_limit: int, bulk_limit: int, read_timeout_s: float = 30.0
    ) -> None:
        self.app = app
        self.default_limit = default_limit
        self.bulk_limit = bulk_limit
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        streamed = scope.get("path", "").endswith("/bulk")
        limit = self.bulk_limit if streamed else self.default_limit
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await problem_of(PayloadTooLarge(_too_large(limit)))(scope, receive, send)
                    return
        if streamed:
            await self.app(scope, _counting(receive, limit, self.read_timeout_s), send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            try:
                message = await asyncio.wait_for(receive(), self.read_timeout_s)
            except TimeoutError:
                await problem_of(
                    RequestTimeout(
                        f"No body data for {self.read_timeout_s:g} s; the request was abandoned."
                    )
                )(scope, receive, send)
                return
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await problem_of(PayloadTooLarge(_too_large(limit)))(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _counting(receive: Receive, limit: int, timeout_s: float) -> Receive:
    received = 0

    async def counted() -> Message:
        nonlocal received
        try:
            message = await asyncio.wait_for(receive(), timeout_s)
        except TimeoutError as exc:
            raise RequestTimeout(
                f"No body data for {timeout_s:g} s; the upload was abandoned."
            ) from exc
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise PayloadTooLarge(_too_large(limit))
        return message

    return counted


class AdmissionMiddleware:
    """Load shedding: at most `limit` requests of this worker between their arrival and the
    start of their response; one more is answered 503 (problem+json, Retry-After) at once,
    before it waits for anything. Without it an overloaded worker queues every request its
    clients send, and a request can spend minutes before it even waits for the pool (whose
    own wait, `DB_CONNECT_TIMEOUT_S`, is bounded). Health probes and metrics are never shed; a
    streamed response (an export, an event stream) counts only until it starts. One counter
    per worker (one event loop: no lock needed)."""

    EXEMPT = frozenset({"/healthz", "/readyz", "/metrics"})

    def __init__(self, app: ASGIApp, *, limit: int, retry_after_s: int = 1) -> None:
        self.app = app
        self.limit = limit
        self.retry_after = str(retry_after_s)
        self.pending = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in self.EXEMPT:
            await self.app(scope, receive, send)
            return
        if self.pending >= self.limit:
            busy = ServiceUnavailable(
                "The server is at capacity; retry shortly.",
                headers={"Retry-After": self.retry_after},
            )
            await problem_of(busy)(scope, receive, send)
            return
        self.pending += 1
        started = False

        async def send_counted(message: Message) -> None:
            nonlocal started
            if not started and message["type"] == "http.response.start":
                started = True
                self.pending -= 1
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            if not started:
                self.pending -= 1


class ResponseMiddleware:
    """Security headers on every response, and the request's count and latency in the
    metrics (labelled by route template, never by the raw path or query string): one wrapper
    of `send`, as it runs on every request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path: str = scope.get("path", "")
        add_csp = not (
            path.startswith("/docs") or path.startswith("/redoc") or path.startswith("/map")
        )
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.extend(SECURITY_HEADERS)
                if add_csp and not any(k == API_CSP[0] for k, _ in headers):
                    headers.append(API_CSP)
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "GET")
            REQUESTS.labels(method, template, str(status)).inc()
            LATENCY.labels(method, template).observe(time.perf_counter() - start)
