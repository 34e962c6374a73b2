"""Per-key rate limiting: a token bucket per API key (per client address for anonymous reads).

Off when RATE_LIMIT_PER_MINUTE is 0 (the default, for local development). Buckets live in the
worker's memory, so with N workers a client can get up to N times the rate; put a shared
limiter (e.g. the reverse proxy) in front when that matters.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from fastapi import Request

from app.auth.service import Principal
from app.core.config import Settings
from app.core.errors import TooManyRequests

MAX_BUCKETS = 100_000


@dataclass
class Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self) -> None:
        self.buckets: dict[str, Bucket] = {}

    def take(self, key: str, per_minute: int, burst: int) -> float:
        """0 when allowed, else the seconds until the next request may pass."""
        now = time.monotonic()
        rate = per_minute / 60.0
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= MAX_BUCKETS:
                self.buckets.clear()
            bucket = self.buckets[key] = Bucket(tokens=float(burst), updated=now)
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / rate


def check_rate(request: Request, principal: Principal | None, settings: Settings) -> None:
    per_minute = settings.rate_limit_per_minute
    if per_minute <= 0:
        return
    limiter: RateLimiter = request.app.state.rate_limiter
    client = request.client.host if request.client else "unknown"
    key = f"key:{principal.key_id}" if principal is not None else f"ip:{client}"
    wait = limiter.take(key, per_minute, settings.rate_limit_burst or per_minute)
    if wait > 0:
        raise TooManyRequests(
            f"Rate limit of {per_minute} requests per minute exceeded; retry in "
            f"{math.ceil(wait)} s.",
            headers={"Retry-After": str(math.ceil(wait))},
        )
