"""The service's secrets outside development: placeholders refused with a clear message, random
ones written to `.env` on first setup, and keys made with them working through the API.

Every command runs in a directory of its own (its `.env`, not the repository's), as
production would: `ENVIRONMENT=production`, no secret in the environment unless the test sets
one.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.core.config import Settings
from app.core.secrets import InsecureSecrets, init_env
from app.main import create_app
from tests.conftest import free_port, start_server

GOOD = "s3cret-long-enough-for-production"


def production_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KEY_PEPPER", "CURSOR_SECRET")}
    return {**env, "DATABASE_URL": database_url, "ENVIRONMENT": "production", **extra}


def incidents(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("pepper", "cursor", "named"),
    [
        ("dev-pepper-change-me", GOOD, "KEY_PEPPER is the placeholder"),
        ("change-me", GOOD, "KEY_PEPPER is the placeholder"),
        (GOOD, "change-me-too", "CURSOR_SECRET is the placeholder"),
        (GOOD, "short", "CURSOR_SECRET is shorter than 16"),
    ],
)
def test_production_refuses_placeholder_secrets(
    database_url: str, tmp_path: Path, pepper: str, cursor: str, named: str
) -> None:
    env = production_env(database_url, KEY_PEPPER=pepper, CURSOR_SECRET=cursor)
    for args in (("serve", "--port", str(free_port())), ("keys", "create", "--name", "x")):
        result = incidents(tmp_path, env, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert named in result.stderr and "incidents secrets init" in result.stderr
        assert "Traceback" not in result.stderr
        assert result.stdout == ""  # no key was made


async def test_the_app_itself_refuses_to_start_with_placeholders() -> None:
    """Started by another ASGI server than `incidents serve`, the lifespan refuses."""
    settings = Settings(environment="production", key_pepper="change-me", cursor_secret=GOOD)
    app = create_app(settings)
    with pytest.raises(InsecureSecrets, match="KEY_PEPPER"):
        async with app.router.lifespan_context(app):
            pass


def test_development_accepts_the_placeholders(database_url: str, tmp_path: Path) -> None:
    env = production_env(
        database_url,
        ENVIRONMENT="development",
        KEY_PEPPER="dev-pepper-change-me",
        CURSOR_SECRET="dev-cursor-secret-change-me",
    )
    result = incidents(tmp_path, env, "keys", "create", "--name", "dev")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ci_")


def test_init_writes_random_secrets_once_and_keeps_what_is_set(tmp_path: Path) -> None:
    saved = {n: os.environ.pop(n, None) for n in ("KEY_PEPPER", "CURSOR_SECRET")}
    try:
        kept = tmp_path / "kept.env"
        kept.write_text("DATABASE_URL=postgresql://x/y\nKEY_PEPPER=" + GOOD)  # no final newline
        kept.chmod(0o644)
        assert init_env(kept) == ["CURSOR_SECRET"]
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600  # secrets in it now: owner only
        lines = kept.read_text().splitlines()
        assert lines[:2] == ["DATABASE_URL=postgresql://x/y", "KEY_PEPPER=" + GOOD]
        assert lines[2].startswith("CURSOR_SECRET=") and len(lines[2]) > 40
        fresh = [tmp_path / "a.env", tmp_path / "b.env"]
        for path in fresh:
            assert init_env(path) == ["KEY_PEPPER", "CURSOR_SECRET"]
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert fresh[0].read_text() != fresh[1].read_text()  # random, not a constant
        before = fresh[0].read_text()
        assert init_env(fresh[0]) == [] and fresh[0].read_text() == before
    finally:
        for name, value in saved.items():
            if value is not None:
                os.environ[name] = value


def test_first_setup_then_keys_and_the_api_work(database_url: str, tmp_path: Path) -> None:
    """`incidents secrets init` in a fresh directory, then production: `incidents keys create`
    and `incidents serve` read the same generated pepper, so the key authenticates."""
    env = production_env(database_url)
    init = incidents(tmp_path, env, "secrets", "init")
    assert init.returncode == 0, init.stderr
    assert "wrote a random KEY_PEPPER and CURSOR_SECRET" in init.stderr
    secrets_file = (tmp_path / ".env").read_text()
    assert "KEY_PEPPER=" in secrets_file and "CURSOR_SECRET=" in secrets_file
    assert secrets_file.split("KEY_PEPPER=")[1].split("\n")[0] not in init.stderr
    again = incidents(tmp_path, env, "secrets", "init")
    assert "already set" in again.stderr and (tmp_path / ".env").read_text() == secrets_file
    created = incidents(tmp_path, env, "keys", "create", "--name", "prod", "--scopes", "read")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    server, base = start_server(
        database_url,
        cwd=tmp_path,
        secrets={},  # the generated ones, from tmp_path/.env
        ENVIRONMENT="production",
        WEBHOOK_WORKER="false",
        ALLOW_ANONYMOUS_READ="false",
    )
    try:
        ok = httpx.get(base + "/v1/incidents", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200, ok.text
        refused = httpx.get(base + "/v1/incidents", headers={"Authorization": "Bearer ci_x_y"})
        assert refused.status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=30)
