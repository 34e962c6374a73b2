"""Webhook alerts end to end: the app's worker POSTs to a real receiver on 127.0.0.1, which
verifies every signature with the PyPI `standardwebhooks` library."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest
from standardwebhooks.webhooks import WebhookVerificationError

from tests.alerts.receiver import Plan, Receiver, eventually
from tests.conftest import incident

KHANAQIN = {"near": "34.348,45.391", "radius_km": 25}
FAR = {"latitude": 36.19, "longitude": 44.01, "location": "Erbil"}  # ~250 km away


async def subscribe(
    api: httpx.AsyncClient,
    headers: dict[str, str],
    url: str,
    filter: dict[str, Any] | None = None,
    name: str = "office",
) -> dict[str, Any]:
    resp = await api.post(
        "/v1/subscriptions",
        json={"name": name, "filter": KHANAQIN if filter is None else filter, "webhook_url": url},
        headers=headers,
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["secret"].startswith("whsec_") and body["status"] == "active"
    assert resp.headers["location"] == f"/v1/subscriptions/{body['id']}"
    return dict(body)


async def deliveries(
    api: httpx.AsyncClient, headers: dict[str, str], sid: str
) -> list[dict[str, Any]]:
    resp = await api.get(f"/v1/subscriptions/{sid}/deliveries", headers=headers)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["items"])


async def only_delivery_when(
    api: httpx.AsyncClient,
    headers: dict[str, str],
    sid: str,
    check: Callable[[dict[str, Any]], bool],
) -> dict[str, Any]:
    """The subscription's one delivery, once `check` holds for it."""

    async def probe() -> list[dict[str, Any]]:
        log = await deliveries(api, headers, sid)
        return log if log and check(log[0]) else []

    (delivery,) = await eventually(probe)
    return delivery


async def disabled_when(
    api: httpx.AsyncClient, headers: dict[str, str], sid: str, within: float = 20
) -> dict[str, Any]:
    """The subscription, once it is disabled."""

    async def probe() -> dict[str, Any] | None:
        body = (await api.get(f"/v1/subscriptions/{sid}", headers=headers)).json()
        return dict(body) if body["status"] == "disabled" else None

    return dict(await eventually(probe, within=within))


async def test_create_update_move_out_and_delete_are_delivered_signed(
    api: httpx.AsyncClient,
    subscriber: dict[str, str],
    writer: dict[str, str],
    receiver: Receiver,
) -> None:
    sub = await subscribe(api, subscriber, receiver.url("/office"))
    created = (await api.post("/v1/incidents", json=incident(), headers=writer)).json()
    outside = (await api.post("/v1/incidents", json=incident(**FAR), headers=writer)).json()
    await api.patch(f"/v1/incidents/{created['id']}", json={"fatalities": 9}, headers=writer)
    await api.patch(f"/v1/incidents/{created['id']}", json=FAR, headers=writer)  # moves out
    await api.patch(f"/v1/incidents/{created['id']}", json={"fatalities": 10}, headers=writer)
    await api.patch(f"/v1/incidents/{outside['id']}", json={"fatalities": 1}, headers=writer)
    inside = (await api.post("/v1/incidents", json=incident(), headers=writer)).json()
    assert (await api.delete(f"/v1/incidents/{inside['id']}", headers=writer)).status_code == 204

    await eventually(lambda: len(receiver.at("/office")) >= 5)
    got = receiver.at("/office")
    # Delivered concurrently: in any order.
    events = sorted(
        (r.verify(sub["secret"]) for r in got),
        key=lambda e: (int(e["change"]["id"]), e["change"]["version"]),
    )
    assert [(e["type"], e["change"]["id"], e["change"]["version"]) for e in events] == [
        ("incident.created", created["id"], 1),
        ("incident.updated", created["id"], 2),
        ("incident.updated", created["id"], 3),  # out of the circle: heard of once
        ("incident.created", inside["id"], 1),
        ("incident.deleted", inside["id"], 2),
    ]
    assert all(e["subscription_id"] == sub["id"] for e in events)
    moved = events[2]["change"]
    assert moved["incident"]["location"] == "Erbil" and moved["changed_fields"]
    # The change is the change feed's item for that revision.
    feed = (await api.get("/v1/changes", params={"limit": 10000})).json()["items"]
    by_key = {(c["id"], c["version"]): c for c in feed}
    for event in events:
        change = event["change"]
        assert change == by_key[(change["id"], change["version"])]
    # Standard Webhooks headers; another secret does not verify.
    first = got[0]
    assert first.headers["webhook-id"].startswith("msg_")
    assert abs(int(first.headers["webhook-timestamp"]) - time.time()) < 60
    assert first.headers["webhook-signature"].startswith("v1,")
    with pytest.raises(WebhookVerificationError):
        first.verify("whsec_" + "A" * 43 + "=")
    log = await deliveries(api, subscriber, sub["id"])
    assert len(log) == 5 and {d["status"] for d in log} == {"delivered"}
    assert all(d["attempts"] == 1 and d["log"][0]["status_code"] == 200 for d in log)


async def test_a_receiver_failing_three_times_gets_one_event_four_times(
    api: httpx.AsyncClient,
    subscriber: dict[str, str],
    writer: dict[str, str],
    receiver: Receiver,
) -> None:
    receiver.plans["/flaky"] = Plan(statuses=[500, 503, 502])
    sub = await subscribe(api, subscriber, receiver.url("/flaky"))
    await api.post("/v1/incidents", json=incident(), headers=writer)

    delivery = await only_delivery_when(
        api, subscriber, sub["id"], lambda d: d["status"] == "delivered"
    )
    assert delivery["attempts"] == 4
    assert [a["status_code"] for a in delivery["log"]] == [500, 503, 502, 200]
    assert delivery["last_status_code"] == 200 and delivery["next_attempt_at"] is None
    got = receiver.at("/flaky")
    assert len(got) == 4
    assert {r.headers["webhook-id"] for r in got} == {delivery["id"]}
    assert len({r.verify(sub["secret"])["change"]["version"] for r in got}) == 1
    # Each retry came after about the schedule's step (0.3 s here, +-10%).
    gaps = [b.at - a.at for a, b in zip(got, got[1:], strict=False)]
    assert all(gap >= 0.25 for gap in gaps), gaps


async def test_retry_after_is_honoured(
    api: httpx.AsyncClient,
    subscriber: dict[str, str],
    writer: dict[str, str],
    receiver: Receiver,
) -> None:
    receiver.plans["/busy"] = Plan(statuses=[503], headers={"Retry-After": "120"})
    sub = await subscribe(api, subscriber, receiver.url("/busy"))
    await api.post("/v1/incidents", json=incident(), headers=writer)

    delivery = await only_delivery_when(api, subscriber, sub["id"], lambda d: d["attempts"] == 1)
    assert delivery["status"] == "pending" and delivery["last_status_code"] == 503
    wait = dt.datetime.fromisoformat(delivery["next_attempt_at"]) - dt.datetime.now(dt.UTC)
    assert 100 < wait.total_seconds() <= 121


async def test_410_disables_the_subscription(
    api: httpx.AsyncClient,
    subscriber: dict[str, str],
    writer: dict[str, str],
    receiver: Receiver,
    db: asyncpg.Connection,
) -> None:
    receiver.plans["/gone"] = Plan(statuses=[410])
    sub = await subscribe(api, subscriber, receiver.url("/gone"))
    await api.post("/v1/incidents", json=incident(), headers=writer)

    body = await disabled_when(api, subscriber, sub["id"])
    assert "410" in body["disabled_reason"] and body["disabled_at"]
    (delivery,) = await deliveries(api, subscriber, sub["id"])
    assert delivery["status"] == "failed" and delivery["attempts"] == 1
    # A disabled subscription matches nothing more...
    await api.post("/v1/incidents", json=incident(), headers=writer)
    assert len(await deliveries(api, subscriber, sub["id"])) == 1
    # ...until its owner enables it again.
    resp = await api.patch(
        f"/v1/subscriptions/{sub['id']}", json={"status": "active"}, headers=subscriber
    )
    assert resp.json()["status"] == "active" and resp.json()["disabled_reason"] is None
    await api.post("/v1/incidents", json=incident(), headers=writer)
    await eventually(lambda: len(receiver.at("/gone")) == 2)


async def test_retries_spent_disable_the_subscription(
    api: httpx.AsyncClient,
    subscriber: dict[str, str],
    writer: dict[str, str],
    receiver: Receiver,
) -> None:
    receiver.plans["/down"] = Plan(statuses=[500] * 20)
    sub = await subscribe(api, subscriber, receiver.url("/down"))
    await api.post("/v1/incidents", json=incident(), headers=writer)

    body = await disabled_when(api, subscriber, sub["id"], within=30)
    assert "10 attempts" in body["disabled_reason"]
    (delivery,) = await deliveries(api, subscriber, sub["id"])
    assert delivery["status"] == "failed" and delivery["attempts"] == 10  # 1 + 9 retries
    assert len(receiver.at("/down")) == 10


async def test_secret_rotation_signs_with_both_for_the_grace_period(
    api: httpx.AsyncClient,
    subscriber: dict[str, str],
    writer: dict[str, str],
    receiver: Receiver,
) -> None:
    sub = await subscribe(api, subscriber, receiver.url("/rotating"))
    resp = await api.post(f"/v1/subscriptions/{sub['id']}/rotate-secret", headers=subscriber)
    assert resp.status_code == 200, resp.text
    rotated = resp.json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != sub["secret"]
    until = dt.datetime.fromisoformat(rotated["previous_secret_expires_at"])
    assert until > dt.datetime.now(dt.UTC) + dt.timedelta(hours=23)
    shown = (await api.get(f"/v1/subscriptions/{sub['id']}", headers=subscriber)).json()
    assert "secret" not in shown and shown["previous_secret_expires_at"]

    await api.post("/v1/incidents", json=incident(), headers=writer)
    (got,) = await eventually(lambda: receiver.at("/rotating"))
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert got.verify(rotated["secret"]) == got.verify(sub["secret"])


async def test_private_and_odd_urls_are_refused(
    api: httpx.AsyncClient, subscriber: dict[str, str]
) -> None:
    for url, reason in [
        ("http://10.1.2.3/hook", "not a public address"),
        ("http://169.254.169.254/latest/meta-data", "not a public address"),
        ("http://[::1]:8080/hook", "not a public address"),
        ("http://192.168.0.10/hook", "not a public address"),
        ("http://[::ffff:10.0.0.1]/hook", "not a public address"),
        ("http://[::10.0.0.1]/hook", "not a public address"),  # IPv4-compatible
        ("http://[64:ff9b::a00:1]/hook", "not a public address"),  # NAT64 of 10.0.0.1
        ("http://[2002:a00:1::1]/hook", "not a public address"),  # 6to4 of 10.0.0.1
        ("http://0.0.0.0:8080/hook", "not a public address"),
        ("ftp://example.org/hook", "http or https"),
        ("http://user:pw@127.0.0.1/hook", "credentials"),
        ("not a url", "http or https"),
        ("http://no-such-host.invalid/hook", "does not resolve"),
    ]:
        resp = await api.post(
            "/v1/subscriptions",
            json={"name": "x", "filter": KHANAQIN, "webhook_url": url},
            headers=subscriber,
        )
        assert resp.status_code == 422, (url, resp.text)
        problem = resp.json()
        assert problem["errors"][0]["field"] == "webhook_url", url
        assert reason in problem["detail"], (url, problem["detail"])


async def test_the_address_is_checked_again_at_delivery(
    api: httpx.AsyncClient,
    subscriber: dict[str, str],
    writer: dict[str, str],
    receiver: Receiver,
    alerts_app: Any,
) -> None:
    sub = await subscribe(api, subscriber, receiver.url("/rechecked"))
    allowed = alerts_app.state.settings.webhook_allowed_hosts
    alerts_app.state.settings.webhook_allowed_hosts = []  # 127.0.0.1 no longer allowed
    try:
        await api.post("/v1/incidents", json=incident(), headers=writer)

        delivery = await only_delivery_when(
            api, subscriber, sub["id"], lambda d: d["attempts"] >= 1
        )
    finally:
        alerts_app.state.settings.webhook_allowed_hosts = allowed
    assert delivery["log"][0]["status_code"] is None
    assert "not a public address" in delivery["log"][0]["error"]
    assert receiver.at("/rechecked") == []
    await eventually(lambda: receiver.at("/rechecked"))  # allowed again: the retry gets there


async def test_redirects_are_not_followed(
    api: httpx.AsyncClient,
    subscriber: dict[str, str],
    writer: dict[str, str],
    receiver: Receiver,
) -> None:
    receiver.plans["/moved"] = Plan(statuses=[302], headers={"Location": "/elsewhere"})
    sub = await subscribe(api, subscriber, receiver.url("/moved"))
    await api.post("/v1/incidents", json=incident(), headers=writer)

    delivery = await only_delivery_when(api, subscriber, sub["id"], lambda d: d["log"])
    assert delivery["log"][0]["status_code"] == 302
    assert receiver.at("/elsewhere") == []


async def test_old_finished_deliveries_are_pruned(
    api: httpx.AsyncClient,
    subscriber: dict[str, str],
    writer: dict[str, str],
    receiver: Receiver,
    alerts_app: Any,
    db: asyncpg.Connection,
) -> None:
    receiver.plans["/pruned"] = Plan(statuses=[200, 500] + [500] * 20)
    sub = await subscribe(api, subscriber, receiver.url("/pruned"))
    await api.post("/v1/incidents", json=incident(), headers=writer)
    await eventually(lambda: len(receiver.at("/pruned")) == 1)
    await api.post("/v1/incidents", json=incident(), headers=writer)
    await eventually(lambda: len(receiver.at("/pruned")) >= 2)  # failing: stays pending
    await db.execute(
        "UPDATE alert_deliveries SET created_at = now() - interval '40 days' "
        "WHERE subscription_id = $1",
        sub["id"],
    )
    assert await alerts_app.state.webhook_worker.prune() == 1
    (left,) = await deliveries(api, subscriber, sub["id"])
    assert left["status"] == "pending"
    assert (
        await db.fetchval(
            "SELECT count(*) FROM alert_attempts a LEFT JOIN alert_deliveries d "
            "ON d.id = a.delivery_id WHERE d.id IS NULL"
        )
        == 0
    )


async def test_a_late_result_does_not_overwrite_a_recorded_one(
    api: httpx.AsyncClient,
    subscriber: dict[str, str],
    writer: dict[str, str],
    receiver: Receiver,
    alerts_app: Any,
    db: asyncpg.Connection,
) -> None:
    """Two workers with the same delivery (a lease that ran out): the first result recorded
    stands; the late one is dropped, not counted as another attempt."""
    from app.alerts.delivery import Outcome, record

    sub = await subscribe(api, subscriber, receiver.url("/late"))
    await api.post("/v1/incidents", json=incident(), headers=writer)
    await eventually(lambda: receiver.at("/late"))
    await only_delivery_when(api, subscriber, sub["id"], lambda d: d["status"] == "delivered")
    job = await db.fetchrow(
        "SELECT id, 0 AS attempts, subscription_id FROM alert_deliveries "
        "WHERE subscription_id = $1",
        sub["id"],
    )
    async with alerts_app.state.db.read() as conn:
        await record(conn, alerts_app.state.settings, [(job, Outcome(500, "HTTP 500", 0.1))])
    (delivery,) = await deliveries(api, subscriber, sub["id"])
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    assert len(delivery["log"]) == 1


async def test_deleting_a_subscription_takes_its_log_and_orphans_are_dropped(
    api: httpx.AsyncClient,
    subscriber: dict[str, str],
    writer: dict[str, str],
    receiver: Receiver,
    alerts_app: Any,
    db: asyncpg.Connection,
) -> None:
    receiver.plans["/deleted"] = Plan(statuses=[500] * 20)
    sub = await subscribe(api, subscriber, receiver.url("/deleted"))
    await api.post("/v1/incidents", json=incident(), headers=writer)
    await eventually(lambda: receiver.at("/deleted"))
    assert (
        await api.delete(f"/v1/subscriptions/{sub['id']}", headers=subscriber)
    ).status_code == 204
    assert (
        await db.fetchval(
            "SELECT count(*) FROM alert_deliveries WHERE subscription_id = $1", sub["id"]
        )
        == 0
    )
    # A delivery queued by a write that matched the subscription as it was being deleted.
    seq = await db.fetchval("SELECT max(seq) FROM incident_revisions")
    await db.execute(
        "INSERT INTO alert_deliveries (subscription_id, revision_seq) VALUES ($1, $2)",
        sub["id"],
        seq,
    )
    assert await alerts_app.state.webhook_worker.prune() >= 1
    assert (
        await db.fetchval(
            "SELECT count(*) FROM alert_deliveries WHERE subscription_id = $1", sub["id"]
        )
        == 0
    )
