"""The real `incidents` command against the test database."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
from fastapi import FastAPI

from tests.conftest import PEPPER, incident


def run_cli(
    database_url: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DATABASE_URL": database_url, "KEY_PEPPER": PEPPER, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_keys_create_list_revoke(
    database_url: str, client: httpx.AsyncClient, app: FastAPI
) -> None:
    created = run_cli(
        database_url, "keys", "create", "--name", "cli-ingest", "--scopes", "read,write"
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert created.stdout == key + "\n" and key.startswith("ci_")
    headers = {"Authorization": f"Bearer {key}"}
    resp = await client.post("/v1/incidents", json=incident(), headers=headers)
    assert resp.status_code == 201
    history = await client.get(resp.headers["location"] + "/revisions")
    assert history.json()["items"][0]["changed_by"] == "cli-ingest"

    listed = run_cli(database_url, "keys", "list")
    assert "cli-ingest" in listed.stdout and key not in listed.stdout
    revoked = run_cli(database_url, "keys", "revoke", "cli-ingest")
    assert revoked.returncode == 0, revoked.stderr
    resp = await client.post("/v1/incidents", json=incident(), headers=headers)
    assert resp.status_code == 401


def test_bad_scope_is_refused(database_url: str) -> None:
    result = run_cli(database_url, "keys", "create", "--name", "x", "--scopes", "root")
    assert result.returncode == 2 and result.stdout == ""


def test_seed_is_idempotent(database_url: str) -> None:
    first = run_cli(database_url, "seed")
    assert first.returncode == 0, first.stderr
    second = run_cli(database_url, "seed")
    assert "0 inserted" in second.stderr
