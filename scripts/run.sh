#!/usr/bin/env bash
# Set up and run the service: PostgreSQL + PostGIS, migrations, gazetteer, example incidents,
# API on http://127.0.0.1:8000 (HOST/PORT to change).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/provision.sh
bash scripts/fetch_boundaries.sh
.venv/bin/incidents migrate
.venv/bin/incidents places load
.venv/bin/incidents areas load-boundaries
.venv/bin/incidents seed
exec .venv/bin/incidents serve --host "${HOST:-127.0.0.1}" --port "${PORT:-8000}"
