#!/usr/bin/env bash
# The ingest benchmark: four figures, each beside its floor measured in the same run.
#
#   1. ROWS synthetic ACLED rows into an empty store (`incidents import`, indexes rebuilt),
#      beside `bench/import_floor.py` (COPY, one INSERT…SELECT, indexes built after, ANALYZE);
#   2. the same file again (every row unchanged), beside the same floor;
#   3. 100,000 new rows into the store that now holds ROWS (chunks, indexes live), beside
#      `bench/import_floor.py --into` (COPY + INSERT…SELECT with live indexes, rolled back):
#      once on an idle machine, then another 100,000 with the radius scenario of
#      `bench/http_bench.py` run alongside (and the radius scenario idle, for comparison);
#   4. `POST /v1/incidents/bulk` of a 200,000-row NDJSON body (`bench/bulk_memory.py`), with
#      the worker's RSS.
# Importer peak RSS comes from /usr/bin/time. Output also goes to bench/results/.
#   bash bench/import_bench.sh [ROWS]
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${1:-1000000}"
. scripts/provision.sh >/dev/null 2>&1 || . scripts/provision.sh
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || sudo apt-get install -y -qq wrk; }
BENCH_DB="${BENCH_DB:-incidents_bench}"
BASE="${DATABASE_URL%/*}"
export DATABASE_URL="$BASE/$BENCH_DB"
CSV="bench/data/acled_${ROWS}.csv"
NEW="bench/data/acled_new_100000.csv"
NEW2="bench/data/acled_new2_100000.csv"
OUT="bench/results/import-$(date -u +%Y%m%d-%H%M).txt"
mkdir -p bench/results bench/data
[ -f "$CSV" ] || .venv/bin/python bench/generate_acled.py --rows "$ROWS" --out "$CSV"
# 100,000 rows the store does not hold yet (another seed, other external ids).
[ -f "$NEW" ] || .venv/bin/python bench/generate_acled.py --rows 100000 --seed 7 --out "$NEW.tmp"
[ -f "$NEW" ] || { sed '2,$s/^/N/' "$NEW.tmp" >"$NEW" && rm -f "$NEW.tmp"; }
[ -f "$NEW2" ] || .venv/bin/python bench/generate_acled.py --rows 100000 --seed 8 --out "$NEW2.tmp"
[ -f "$NEW2" ] || { sed '2,$s/^/M/' "$NEW2.tmp" >"$NEW2" && rm -f "$NEW2.tmp"; }

timed() {  # timed LABEL CMD...: runs CMD, prints its output and "LABEL peak RSS …"
  local label="$1"; shift
  /usr/bin/time -f "$label peak RSS %M KiB, wall %e s" "$@" 2>&1
}
rate() { grep -o '([0-9,]* rows/s)' | tr -d '(),' | awk '{print $1}'; }

{
  echo "# incidents import benchmark, $(date -u +%FT%TZ), $(nproc) cores, $(free -g | awk '/Mem/{print $2}') GiB"
  echo "# file: $CSV ($(du -h "$CSV" | cut -f1), $ROWS rows)"
  echo "## floor"
  .venv/bin/python bench/import_floor.py "$CSV" | tee /tmp/import_floor.$$
  psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS \"$BENCH_DB\" WITH (FORCE)"
  psql "$BASE/postgres" -qc "CREATE DATABASE \"$BENCH_DB\""
  .venv/bin/incidents migrate 2>/dev/null
  .venv/bin/incidents places load
  .venv/bin/incidents areas load-boundaries
  echo "## first (empty store)"
  timed first .venv/bin/incidents import "$CSV" --quiet --verbose | tee /tmp/import_first.$$
  echo "## re-run (all unchanged)"
  timed re-run .venv/bin/incidents import "$CSV" --quiet --verbose | tee /tmp/import_again.$$
  echo "## floor: 100,000 new rows into the store, indexes live"
  .venv/bin/python bench/import_floor.py "$NEW" --into "$DATABASE_URL" | tee /tmp/import_floor_into.$$
  echo "## 100,000 new rows into the store, idle"
  timed new .venv/bin/incidents import "$NEW" --quiet --verbose | tee /tmp/import_new.$$
  echo "## radius, idle"
  .venv/bin/python bench/http_bench.py --database-url "$DATABASE_URL" --scenarios radius \
    --seconds 10 | tail -1 | tee /tmp/radius_idle.$$
  echo "## another 100,000 new rows into the store, radius scenario alongside"
  .venv/bin/python bench/http_bench.py --database-url "$DATABASE_URL" --scenarios radius \
    --seconds 10 --port 8110 >/tmp/radius_busy.$$ 2>&1 &
  BENCH_PID=$!
  sleep 4  # the server started and warming up: the import runs under its measured load
  timed busy .venv/bin/incidents import "$NEW2" --quiet --verbose | tee /tmp/import_busy.$$
  wait "$BENCH_PID"; tail -1 /tmp/radius_busy.$$
  echo "## POST /v1/incidents/bulk, 200,000 NDJSON rows"
  .venv/bin/python bench/bulk_memory.py --rows 200000 --server "$BASE" | tee /tmp/bulk.$$
  echo "## table"
  psql "$DATABASE_URL" -Atc "SELECT 'incidents: ' || count(*) FROM incidents"
  psql "$DATABASE_URL" -Atc "SELECT 'revisions: ' || count(*) FROM incident_revisions"
  FLOOR=$(grep 'floor total' /tmp/import_floor.$$ | grep -o '= [0-9,]* rows/s' | tr -d '=,' | awk '{print $1}')
  FLOOR_INTO=$(grep 'floor total' /tmp/import_floor_into.$$ | grep -o '= [0-9,]* rows/s' | tr -d '=,' | awk '{print $1}')
  FIRST=$(rate </tmp/import_first.$$); AGAIN=$(rate </tmp/import_again.$$)
  NEWR=$(rate </tmp/import_new.$$); BUSY=$(rate </tmp/import_busy.$$)
  API=$(grep -o '= [0-9,]* rows/s' /tmp/bulk.$$ | tr -d '=,' | awk '{print $1}')
  echo "## summary (ours beside the floor of the same run)"
  awk -v f="$FLOOR" -v fi="$FLOOR_INTO" -v a="$FIRST" -v b="$AGAIN" -v c="$NEWR" -v e="$BUSY" -v d="$API" 'BEGIN {
    printf "%-44s %10s %10s %7s\n", "figure", "rows/s", "floor", "ratio"
    printf "%-44s %10d %10d %7.2f\n", "1. '"$ROWS"' rows into an empty store", a, f, a / f
    printf "%-44s %10d %10d %7.2f\n", "2. the same file again (unchanged)", b, f, b / f
    printf "%-44s %10d %10d %7.2f\n", "3. 100,000 new rows into the store", c, fi, c / fi
    printf "%-44s %10d %10d %7.2f\n", "3b. the same, radius scenario alongside", e, fi, e / fi
    printf "%-44s %10d %10d %7.2f\n", "4. POST /v1/incidents/bulk, 200,000 NDJSON", d, f, d / f
  }'
  grep -h 'peak RSS' /tmp/import_first.$$ /tmp/import_again.$$ /tmp/import_new.$$ /tmp/import_busy.$$
  grep -h 'worker RSS' /tmp/bulk.$$
  echo "radius idle:   $(cat /tmp/radius_idle.$$)"
  echo "radius during: $(tail -1 /tmp/radius_busy.$$)"
  rm -f /tmp/import_*.$$ /tmp/radius_*.$$ /tmp/bulk.$$
} | tee "$OUT"
