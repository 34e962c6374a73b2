#!/usr/bin/env bash
# Long schemathesis run over the whole OpenAPI schema against a real server on a scratch
# database: counts requests, fails on any 5xx or response that breaks the documented schema.
#   bash bench/fuzz.sh [EXAMPLES_PER_OPERATION]   (default 400: about 10,000+ requests)
set -euo pipefail
cd "$(dirname "$0")/.."
EXAMPLES="${1:-400}"
EXTRAS=dev . scripts/provision.sh >/dev/null 2>&1 || EXTRAS=dev . scripts/provision.sh
BASE="${DATABASE_URL%/*}"
DB=incidents_fuzz
export DATABASE_URL="$BASE/$DB"
psql "$BASE/postgres" -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
psql "$BASE/postgres" -qc "CREATE DATABASE $DB"
.venv/bin/incidents migrate 2>/dev/null
.venv/bin/incidents places load 2>/dev/null
.venv/bin/incidents areas load-boundaries 2>/dev/null
.venv/bin/incidents seed 2>/dev/null
KEY=$(.venv/bin/incidents keys create --name fuzz --scopes read,write)
PORT=8099
WEBHOOK_WORKER=false .venv/bin/uvicorn app.main:app --host 127.0.0.1 --port $PORT --log-level warning &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done
OUT="bench/results/fuzz-$(date -u +%Y%m%d-%H%M).txt"
mkdir -p bench/results
set +e
.venv/bin/schemathesis run "http://127.0.0.1:$PORT/openapi.json" \
  -H "Authorization: Bearer $KEY" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
  --max-examples "$EXAMPLES" --phases examples,coverage,fuzzing --seed 7 --no-color \
  --generation-database none --request-timeout 30 --workers 2 \
  --exclude-path /v1/stream 2>&1 | tee "$OUT"   # an event stream never ends
STATUS=${PIPESTATUS[0]}
echo "schemathesis exit $STATUS; output in $OUT"
exit $STATUS
