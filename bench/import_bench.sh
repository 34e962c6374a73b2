#!/usr/bin/env bash
# Times `incidents import` on a seeded synthetic ACLED CSV (default 1,000,000 rows) into a
# fresh database, then imports the same file again (idempotent re-run), and reports rows/s and
# the importer's peak RSS. Output is also written to bench/results/import-<date>.txt.
#   bash bench/import_bench.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-1000000}"
. scripts/provision.sh >/dev/null 2>&1 || . scripts/provision.sh
BENCH_DB="${BENCH_DB:-incidents_bench}"
BASE="${DATABASE_URL%/*}"
export DATABASE_URL="$BASE/$BENCH_DB"
CSV="bench/data/acled_${ROWS}.csv"
OUT="bench/results/import-$(date -u +%Y%m%d-%H%M).txt"
mkdir -p bench/results bench/data
[ -f "$CSV" ] || .venv/bin/python bench/generate_acled.py --rows "$ROWS" --out "$CSV"
psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS \"$BENCH_DB\" WITH (FORCE)"
psql "$BASE/postgres" -qc "CREATE DATABASE \"$BENCH_DB\""
.venv/bin/incidents migrate 2>/dev/null
.venv/bin/incidents places load
.venv/bin/incidents areas load-boundaries
{
  echo "# incidents import benchmark, $(date -u +%FT%TZ), $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB"
  echo "# file: $CSV ($(du -h "$CSV" | cut -f1), $ROWS rows)"
  for run in first re-run; do
    echo "## $run"
    /usr/bin/time -f "peak RSS %M KiB, wall %e s" .venv/bin/incidents import "$CSV" --quiet 2>&1
  done
  echo "## table"
  psql "$DATABASE_URL" -Atc "SELECT 'incidents: ' || count(*) FROM incidents"
  psql "$DATABASE_URL" -Atc "SELECT 'revisions: ' || count(*) FROM incident_revisions"
} | tee "$OUT"
