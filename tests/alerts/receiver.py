"""A real webhook receiver on 127.0.0.1: an HTTP server in a thread that records every request
and answers as each path is told to (a list of statuses, a Retry-After, a hold)."""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str
    at: float

    def verify(self, secret: str) -> dict[str, Any]:
        """The event, if signed with `secret` (raises WebhookVerificationError otherwise)."""
        return dict(Webhook(secret).verify(self.body, self.headers))

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Plan:
    statuses: list[int] = field(default_factory=list)  # answered in turn, then 200
    headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None  # the first request waits for it


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.plans: dict[str, Plan] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length).decode()
                status, headers, hold = receiver._answer(self.path)
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.path, dict(self.headers.items()), body, time.time())
                    )
                if hold is not None:
                    hold.wait(30)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender is gone (killed mid-request)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _answer(self, path: str) -> tuple[int, dict[str, str], threading.Event | None]:
        with self._lock:
            plan = self.plans.get(path)
            if plan is None:
                return 200, {}, None
            hold, plan.hold = plan.hold, None
            status = plan.statuses.pop(0) if plan.statuses else 200
            return status, plan.headers if status >= 300 else {}, hold

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


async def eventually(check: Callable[[], Any], within: float = 20.0, every: float = 0.05) -> Any:
    """`check()` (awaited if it is a coroutine) once it is truthy; AssertionError after
    `within` seconds. Sleeps without blocking the loop (the app's worker runs in it)."""
    deadline = time.monotonic() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within} s")
        await asyncio.sleep(every)
