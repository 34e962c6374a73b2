#!/usr/bin/env bash
# Set up everything the same way as scripts/run.sh, then run lint, types and the whole test
# suite against real PostGIS. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=dev . scripts/provision.sh
bash scripts/fetch_boundaries.sh
# Headless Chromium + ChromeDriver for the /map browser test (Debian packages).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    apt_install chromium chromium-driver
fi
echo "[test] ruff" >&2
.venv/bin/ruff check app tests bench migrations
echo "[test] mypy" >&2
.venv/bin/mypy app
echo "[test] pytest" >&2
exec .venv/bin/pytest "$@"
