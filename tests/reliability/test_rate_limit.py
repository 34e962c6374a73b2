"""Per-key rate limiting: 429 with Retry-After, per key, off by default."""

from __future__ import annotations

import subprocess

import httpx

from app.main import create_app
from tests.conftest import make_settings, start_server


async def test_rate_limit_per_key(database_url: str, read_key: str, write_key: str) -> None:
    app = create_app(make_settings(database_url, rate_limit_per_minute=60, rate_limit_burst=5))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            reader = {"Authorization": f"Bearer {read_key}"}
            codes = [
                (await client.get("/v1/taxonomy", headers=reader)).status_code for _ in range(7)
            ]
            assert codes[:5] == [200] * 5 and codes[5:] == [429, 429]
            limited = await client.get("/v1/taxonomy", headers=reader)
            assert limited.headers["content-type"] == "application/problem+json"
            assert int(limited.headers["retry-after"]) >= 1
            other = await client.get(
                "/v1/taxonomy", headers={"Authorization": f"Bearer {write_key}"}
            )
            assert other.status_code == 200  # another key has its own bucket
            assert (await client.get("/healthz")).status_code == 200  # not limited


async def test_rate_limit_off_by_default(client: httpx.AsyncClient) -> None:
    codes = {(await client.get("/v1/taxonomy")).status_code for _ in range(30)}
    assert codes == {200}


def test_many_clients_reset_no_one_elses_budget() -> None:
    from app.auth.ratelimit import RateLimiter

    limiter = RateLimiter()
    # One request a minute, a burst of 5: the victim stays limited for minutes, however
    # slowly the loop below runs on a busy machine.
    for _ in range(5):
        assert limiter.take("key:victim", 1, 5) == 0
    assert limiter.take("key:victim", 1, 5) > 0
    # An attacker cycling through 200,000 addresses, one request each.
    for n in range(200_000):
        limiter.take(f"ip:10.{n // 65536}.{n // 256 % 256}.{n % 256}", 60, 5)
    wait = limiter.take("key:victim", 1, 5)
    assert 0 < wait <= 300  # still limited (5 per 5 minutes): its window was not cleared


def test_workers_share_the_budget(database_url: str, read_key: str) -> None:
    """`incidents serve --workers 2`: each worker enforces half of the budget, so the two
    together let through at most the configured burst, not twice it."""
    server, base = start_server(
        database_url,
        "--workers",
        "2",
        RATE_LIMIT_PER_MINUTE="6",
        RATE_LIMIT_BURST="6",
        WEBHOOK_WORKER="false",
    )
    try:
        workers = subprocess.run(
            ["pgrep", "-f", "-P", str(server.pid), "multiprocessing"],
            capture_output=True,
            text=True,
        ).stdout.split()
        assert len(workers) >= 2  # two worker processes really serve
        reader = {"Authorization": f"Bearer {read_key}"}
        # A new connection per request: the kernel hands them to either worker.
        responses = [httpx.get(base + "/v1/taxonomy", headers=reader) for _ in range(40)]
        codes = [r.status_code for r in responses]
        assert set(codes) == {200, 429}
        assert 1 <= codes.count(200) <= 6, codes
        limited = next(r for r in responses if r.status_code == 429)
        # The client is told the configured rate, not a worker's share of it.
        assert "Rate limit of 6 requests per minute" in limited.json()["detail"]
    finally:
        server.terminate()
        server.wait(timeout=30)
