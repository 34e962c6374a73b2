"""Subscriptions as a resource: scopes, ownership, validation, paging, the command line."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from tests.alerts.receiver import Receiver, eventually
from tests.conftest import _key
from tests.test_cli import run_cli

KHANAQIN = {"near": "34.348,45.391", "radius_km": 25}


async def test_scopes_and_ownership(
    api: httpx.AsyncClient,
    alerts_app: FastAPI,
    subscriber: dict[str, str],
    writer: dict[str, str],
    receiver: Receiver,
) -> None:
    body = {"name": "mine", "filter": KHANAQIN, "webhook_url": receiver.url("/own")}
    assert (await api.post("/v1/subscriptions", json=body)).status_code == 401
    reader = {"Authorization": f"Bearer {await _key(alerts_app, 'r', ['read'])}"}
    resp = await api.post("/v1/subscriptions", json=body, headers=reader)
    assert resp.status_code == 403 and "alerts" in resp.json()["detail"]
    mine = (await api.post("/v1/subscriptions", json=body, headers=subscriber)).json()
    # `write` implies `alerts`; another key sees none of mine.
    theirs = (await api.post("/v1/subscriptions", json=body, headers=writer)).json()
    listed = (await api.get("/v1/subscriptions", headers=subscriber)).json()["items"]
    assert [s["id"] for s in listed] == [mine["id"]]
    assert all("secret" not in s for s in listed)
    for method, path in [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/rotate-secret"),
        ("GET", "/deliveries"),
    ]:
        resp = await api.request(
            method,
            f"/v1/subscriptions/{theirs['id']}{path}",
            headers=subscriber,
            json={"name": "x"} if method == "PATCH" else None,
        )
        assert resp.status_code == 404, (method, path, resp.text)
    # An alerts key reads (the stream, searches) but does not write incidents.
    assert (await api.get("/v1/incidents", headers=subscriber)).status_code == 200
    resp = await api.post("/v1/incidents", json={}, headers=subscriber)
    assert resp.status_code == 403
    admin = {"Authorization": f"Bearer {await _key(alerts_app, 'ops', ['admin'])}"}
    assert (await api.get(f"/v1/subscriptions/{theirs['id']}", headers=admin)).status_code == 200


async def test_patch_delete_and_paging(
    api: httpx.AsyncClient, subscriber: dict[str, str], receiver: Receiver
) -> None:
    ids = []
    for k in range(5):
        body = {"name": f"s{k}", "filter": KHANAQIN, "webhook_url": receiver.url("/p")}
        ids.append(
            (await api.post("/v1/subscriptions", json=body, headers=subscriber)).json()["id"]
        )
    seen: list[str] = []
    params: dict[str, object] = {"limit": 2}
    while True:
        page = (await api.get("/v1/subscriptions", params=params, headers=subscriber)).json()
        seen += [s["id"] for s in page["items"]]
        if not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    assert seen == ids
    resp = await api.patch(
        f"/v1/subscriptions/{ids[0]}",
        json={"name": "renamed", "filter": {"bbox": "44,33,46,35"}, "status": "disabled"},
        headers=subscriber,
    )
    assert resp.status_code == 200, resp.text
    changed = resp.json()
    assert changed["name"] == "renamed" and changed["filter"] == {"bbox": "44,33,46,35"}
    assert changed["status"] == "disabled" and changed["disabled_reason"] == "disabled by its owner"
    assert (await api.delete(f"/v1/subscriptions/{ids[1]}", headers=subscriber)).status_code == 204
    assert (await api.get(f"/v1/subscriptions/{ids[1]}", headers=subscriber)).status_code == 404
    assert (
        await api.get(f"/v1/subscriptions/{uuid.uuid4()}", headers=subscriber)
    ).status_code == 404
    resp = await api.get("/v1/subscriptions/not-a-uuid", headers=subscriber)
    assert resp.status_code == 422


async def test_filters_are_validated_as_searches_are(
    api: httpx.AsyncClient, subscriber: dict[str, str], receiver: Receiver
) -> None:
    url = receiver.url("/v")
    for bad, field in [
        ({"radius_km": 10}, "filter.radius_km"),
        ({"near": "34,45", "radius_km": -1}, "filter.radius_km"),
        ({"bbox": "1,2,3"}, "filter.bbox"),
        ({"event_type": "Picnics"}, "filter.event_type"),
        ({"near": "Nowhere-at-all-xyz"}, "filter.near"),
        ({"nearby": "Khanaqin"}, "filter.nearby"),
        ({"start": "2024-02-10", "end": "2024-01-01"}, "filter.end"),
        ({"geometry": {"type": "Point", "coordinates": [45, 34]}}, "filter.geometry"),
    ]:
        resp = await api.post(
            "/v1/subscriptions",
            json={"name": "v", "filter": bad, "webhook_url": url},
            headers=subscriber,
        )
        assert resp.status_code == 422, (bad, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json")
        fields = [e["field"] for e in resp.json()["errors"]]
        assert any(f.startswith(field) for f in fields), (bad, fields)
    for bad_body, field in [
        ({"filter": KHANAQIN, "webhook_url": url}, "name"),
        ({"name": "x", "filter": KHANAQIN}, "webhook_url"),
        ({"name": "x", "webhook_url": url, "secret": "mine"}, "secret"),
    ]:
        resp = await api.post("/v1/subscriptions", json=bad_body, headers=subscriber)
        assert resp.status_code == 422
        assert resp.json()["errors"][0]["field"] == field
    resp = await api.get(
        f"/v1/subscriptions/{uuid.uuid4()}/deliveries",
        params={"status": "lost"},
        headers=subscriber,
    )
    assert resp.status_code == 422


async def test_cli_create_list_and_test_ping(
    database_url: str,
    api: httpx.AsyncClient,
    writer: dict[str, str],
    receiver: Receiver,
    gazetteer: dict[str, float],
) -> None:
    allowed = {"WEBHOOK_ALLOWED_HOSTS": "127.0.0.1"}

    def create(filter: str, env: dict[str, str] | None = allowed) -> Any:
        return run_cli(
            database_url,
            *("subscriptions", "create", "--name", "cli office", "--key", "ingest"),
            *("--webhook-url", receiver.url("/cli"), "--filter", filter),
            env=env,
        )

    khanaqin = '{"near": "Khanaqin", "radius_km": 25}'
    created = create(khanaqin, env=None)
    # The command line checks URLs too: 127.0.0.1 is refused unless allowed.
    assert created.returncode == 2 and "not a public address" in created.stderr
    created = create(khanaqin)
    assert created.returncode == 0, created.stderr
    sid, secret = created.stdout.split()
    assert secret.startswith("whsec_")
    listed = run_cli(database_url, "subscriptions", "list")
    assert listed.returncode == 0
    (line,) = [row for row in listed.stdout.splitlines() if row.startswith(sid)]
    assert "cli office" in line and "ingest" in line and "active" in line

    tested = run_cli(database_url, "subscriptions", "test", sid, env=allowed)
    assert tested.returncode == 0, tested.stderr
    assert tested.stdout.startswith("200")
    (ping,) = await eventually(lambda: receiver.at("/cli"))
    assert ping.verify(secret) == {**ping.event, "type": "ping", "subscription_id": sid}
    # The subscription is the API's: its owner key sees it.
    assert (await api.get(f"/v1/subscriptions/{sid}", headers=writer)).status_code == 200
    bad = create('{"radius_km": 5}')
    assert bad.returncode == 2 and "radius_km" in bad.stderr


async def test_a_revoked_keys_subscriptions_stop(
    database_url: str, api: httpx.AsyncClient, alerts_app: FastAPI, receiver: Receiver
) -> None:
    key = await _key(alerts_app, "leaving", ["alerts"])
    headers = {"Authorization": f"Bearer {key}"}
    body = {"name": "theirs", "filter": KHANAQIN, "webhook_url": receiver.url("/revoked")}
    sid = (await api.post("/v1/subscriptions", json=body, headers=headers)).json()["id"]
    assert run_cli(database_url, "keys", "revoke", "leaving").returncode == 0
    listed = run_cli(database_url, "subscriptions", "list").stdout
    (line,) = [row for row in listed.splitlines() if row.startswith(sid)]
    assert "disabled (its API key was revoked)" in line


async def test_docs_list_the_alert_operations(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    operations = {
        (method.upper(), path)
        for path, item in spec["paths"].items()
        for method in item
        if path.startswith(("/v1/subscriptions", "/v1/stream"))
    }
    assert operations == {
        ("POST", "/v1/subscriptions"),
        ("GET", "/v1/subscriptions"),
        ("GET", "/v1/subscriptions/{subscription_id}"),
        ("PATCH", "/v1/subscriptions/{subscription_id}"),
        ("DELETE", "/v1/subscriptions/{subscription_id}"),
        ("POST", "/v1/subscriptions/{subscription_id}/rotate-secret"),
        ("GET", "/v1/subscriptions/{subscription_id}/deliveries"),
        ("GET", "/v1/stream"),
    }
    stream = spec["paths"]["/v1/stream"]["get"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]
    assert {"near", "radius_km", "bbox", "event_type"} <= {p["name"] for p in stream["parameters"]}
    assert (await api.get("/docs")).status_code == 200
