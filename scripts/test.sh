#!/usr/bin/env bash
# Set up everything the same way as scripts/run.sh, then run lint, types and the whole test
# suite against real PostGIS. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=dev . scripts/provision.sh
bash scripts/fetch_boundaries.sh
# Real clients the tests drive (Debian packages): headless Chromium + ChromeDriver for the /map
# page, GDAL's ogr2ogr and QGIS's OAPIF provider (PyQGIS) for the OGC API.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    apt_install chromium chromium-driver
fi
if ! command -v ogr2ogr >/dev/null 2>&1; then
    apt_install gdal-bin
fi
if ! /usr/bin/python3 -c 'import qgis.core' >/dev/null 2>&1; then
    apt_install python3-qgis qgis-providers
fi
echo "[test] ruff" >&2
.venv/bin/ruff check app tests bench migrations
echo "[test] mypy" >&2
.venv/bin/mypy app
echo "[test] pytest" >&2
exec .venv/bin/pytest "$@"
