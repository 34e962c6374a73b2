"""Per-key rate limiting (per client address for anonymous reads), with the `limits` library.

A client may send RATE_LIMIT_BURST requests at once and RATE_LIMIT_PER_MINUTE on average: a
moving window of `burst` requests per `burst / per_minute` minutes. Off when
RATE_LIMIT_PER_MINUTE is 0 (the default, for local development).

Each client's window lives in the store until it expires, whatever other clients do: a client
cycling through addresses costs memory for one window, never resets anyone else's budget.

The windows live in each worker process. With N workers (`incidents serve --workers N`, which
sets `WEB_CONCURRENCY`, the variable uvicorn and gunicorn read) each worker allows a 1/N share:
`burst // N` requests (at least one) per the same window, so N workers together allow the
configured rate, not N times it. The kernel spreads new connections over the workers; a client
whose requests all reach one worker (one keep-alive connection) gets that worker's share only.
"""

from __future__ import annotations

import math
import time

from fastapi import Request
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import MemoryStorage, Storage
from limits.strategies import MovingWindowRateLimiter

from app.auth.service import Principal
from app.core.config import Settings
from app.core.errors import TooManyRequests


class RateLimiter:
    def __init__(self, storage: Storage | None = None) -> None:
        self.storage = storage or MemoryStorage()
        self.strategy = MovingWindowRateLimiter(self.storage)
        self._items: dict[tuple[int, int], RateLimitItem] = {}

    def item(self, per_minute: int, burst: int) -> RateLimitItem:
        key = (per_minute, burst)
        if key not in self._items:
            window_s = max(1, round(burst * 60 / per_minute))
            self._items[key] = RateLimitItemPerSecond(burst, window_s)
        return self._items[key]

    def take(self, key: str, per_minute: int, burst: int) -> float:
        """0 when allowed, else the seconds until the next request may pass."""
        item = self.item(per_minute, burst)
        if self.strategy.hit(item, key):
            return 0.0
        reset_at = self.strategy.get_window_stats(item, key).reset_time
        return max(reset_at - time.time(), 0.001)


def check_rate(request: Request, principal: Principal | None, settings: Settings) -> None:
    per_minute = settings.rate_limit_per_minute
    if per_minute <= 0:
        return
    limiter: RateLimiter = request.app.state.rate_limiter
    client = request.client.host if request.client else "unknown"
    key = f"key:{principal.key_id}" if principal is not None else f"ip:{client}"
    share, burst = per_minute, settings.rate_limit_burst or per_minute
    workers = settings.web_concurrency
    if workers > 1:  # this worker's share (the window stays: the same rate per request)
        share, burst = max(per_minute // workers, 1), max(burst // workers, 1)
    wait = limiter.take(key, share, burst)
    if wait > 0:
        raise TooManyRequests(
            f"Rate limit of {per_minute} requests per minute exceeded; retry in "
            f"{math.ceil(wait)} s.",
            headers={"Retry-After": str(math.ceil(wait))},
        )
