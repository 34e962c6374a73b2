"""A webhook receiver for benchmarks: a bare ASGI app that answers 204 to every POST and
counts them (distinct `webhook-id`s too); `GET /count` tells how many and when the last came.

    .venv/bin/uvicorn bench.webhook_receiver:app --port 9100 --no-access-log
"""

from __future__ import annotations

import json
import time
from typing import Any

COUNTS: dict[str, Any] = {"posts": 0, "ids": set(), "first": None, "last": None}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["method"] == "POST":
        while True:
            message = await receive()
            if not message.get("more_body"):
                break
        now = time.time()
        COUNTS["posts"] += 1
        COUNTS["first"] = COUNTS["first"] or now
        COUNTS["last"] = now
        for name, value in scope["headers"]:
            if name == b"webhook-id":
                COUNTS["ids"].add(value)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    if scope["path"] == "/reset":
        COUNTS.update(posts=0, ids=set(), first=None, last=None)
    body = json.dumps(
        {
            "posts": COUNTS["posts"],
            "distinct": len(COUNTS["ids"]),
            "first": COUNTS["first"],
            "last": COUNTS["last"],
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
