"""The service's own secrets (`KEY_PEPPER`, `CURSOR_SECRET`): never the shipped placeholders
outside development.

`KEY_PEPPER` is mixed into every API key's hash and `CURSOR_SECRET` signs pagination cursors;
a deployment running with a value printed in this repository would let anyone forge cursors
and weaken the key hashes. With `ENVIRONMENT` anything but `development`, the API (`incidents
serve`, and the app's startup under any ASGI server) and `incidents keys create` refuse to
start when either is a shipped placeholder or shorter than `MIN_LENGTH`, saying which and how
to fix it. `incidents secrets init` (run by the
setup scripts on first setup) writes random ones into `.env` where none is set, and never
replaces one: a new pepper would invalidate every key already issued.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from app.core.config import Settings

# Values this repository ships (settings defaults, `.env.example`, `compose.yaml`).
SHIPPED = frozenset(
    {"dev-pepper-change-me", "dev-cursor-secret-change-me", "change-me", "change-me-too"}
)
MIN_LENGTH = 16
NAMES = ("KEY_PEPPER", "CURSOR_SECRET")


class InsecureSecrets(RuntimeError):
    """Raised instead of starting outside development with a placeholder secret."""


def problems(settings: Settings) -> list[str]:
    """What is wrong with the configured secrets (empty when nothing is)."""
    found = []
    for name in NAMES:
        value = getattr(settings, name.lower())
        if value in SHIPPED:
            found.append(f"{name} is the placeholder this repository ships")
        elif len(value) < MIN_LENGTH:
            found.append(f"{name} is shorter than {MIN_LENGTH} characters")
    return found


def require(settings: Settings) -> None:
    """Refuses (`InsecureSecrets`) placeholder secrets unless ENVIRONMENT=development."""
    if settings.environment == "development":
        return
    found = problems(settings)
    if found:
        raise InsecureSecrets(
            "refusing to start with ENVIRONMENT="
            + settings.environment
            + ": "
            + "; ".join(found)
            + ". Set them in the environment or in .env (`incidents secrets init` writes "
            "random ones where none is set), or set ENVIRONMENT=development on a "
            "development machine."
        )


def init_env(path: Path) -> list[str]:
    """Writes a random value for each secret neither the environment nor `path` sets; the
    names written. The file is left readable by its owner only; values already there are
    kept."""
    present: set[str] = set()
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            name = line.split("=", 1)[0].strip()
            if "=" in line and name in NAMES:
                present.add(name)
    missing = [n for n in NAMES if n not in present and not os.environ.get(n)]
    if not missing:
        return []
    if not path.exists():
        path.touch(mode=0o600)
    text = path.read_text(encoding="utf-8")
    lines = [f"{name}={secrets.token_urlsafe(32)}" for name in missing]
    prefix = "" if not text or text.endswith("\n") else "\n"
    with path.open("a", encoding="utf-8") as f:
        f.write(prefix + "\n".join(lines) + "\n")
    path.chmod(0o600)  # also when the file was there before, readable by others
    return missing
