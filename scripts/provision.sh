#!/usr/bin/env bash
# Provision everything the service needs on a Debian/Ubuntu machine, idempotently:
#   - PostgreSQL: DATABASE_URL if set; else a server on 127.0.0.1:5432 (started if stopped,
#     installed with apt if missing);
#   - PostGIS (postgresql-<major>-postgis-3) when the server is local and lacks it;
#   - the database named in DATABASE_URL (default: incidents);
#   - a Python virtualenv in .venv with the package installed (EXTRAS=dev for test tools);
#   - a random KEY_PEPPER and CURSOR_SECRET in .env where none is set (`incidents secrets init`).
# Source it (`. scripts/provision.sh`) to get DATABASE_URL exported.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

log() { printf '\033[1;34m[provision]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[provision] error:\033[0m %s\n' "$*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 && SUDO="sudo" || log "not root and no sudo: apt installs will fail"
fi
APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install $* yourself"
    if [ "$APT_UPDATED" = 0 ]; then
        log "apt-get update"
        $SUDO apt-get update -qq || log "apt-get update failed; trying the install anyway"
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ---- Python -----------------------------------------------------------------------------
PYTHON="${PYTHON:-python3}"
command -v "$PYTHON" >/dev/null 2>&1 || apt_install python3 python3-venv python3-dev
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || die "Python 3.11+ required ($("$PYTHON" --version 2>&1))"
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_install python3-venv
fi

# ---- PostgreSQL -------------------------------------------------------------------------
if [ -f .env ] && [ -z "${DATABASE_URL:-}" ]; then
    DATABASE_URL="$(grep -E '^DATABASE_URL=' .env | tail -1 | cut -d= -f2- || true)"
fi
DB_URL="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/incidents}"
DB_URL="${DB_URL/postgresql+asyncpg:/postgresql:}"
# Parse postgresql://user[:pass]@host[:port]/db
rest="${DB_URL#*://}"
creds="${rest%%@*}"; hostpart="${rest#*@}"
[ "$creds" = "$rest" ] && { creds="postgres"; hostpart="$rest"; }
DB_USER="${creds%%:*}"
DB_PASS=""; [ "$creds" != "$DB_USER" ] && DB_PASS="${creds#*:}"
hostport="${hostpart%%/*}"; DB_NAME="${hostpart#*/}"; DB_NAME="${DB_NAME%%\?*}"
DB_HOST="${hostport%%:*}"; DB_PORT="5432"; [ "$hostport" != "$DB_HOST" ] && DB_PORT="${hostport#*:}"
[ -n "$DB_NAME" ] && [ "$DB_NAME" != "$hostpart" ] || DB_NAME="incidents"
LOCAL=0
case "$DB_HOST" in 127.0.0.1|localhost|::1|"") LOCAL=1 ;; esac

if ! command -v psql >/dev/null 2>&1; then
    apt_install postgresql-client
fi

pg_up() { pg_isready -h "$DB_HOST" -p "$DB_PORT" -t 2 >/dev/null 2>&1; }

if ! pg_up; then
    [ "$LOCAL" = 1 ] || die "PostgreSQL at $DB_HOST:$DB_PORT is not reachable"
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
        log "no PostgreSQL installed: installing it"
        apt_install postgresql postgresql-contrib
    fi
    PG_MAJOR="$(ls /etc/postgresql | sort -n | tail -1)"
    log "PostgreSQL $PG_MAJOR is not running on $DB_HOST:$DB_PORT: starting it"
    if command -v pg_ctlcluster >/dev/null 2>&1; then
        $SUDO pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" main start 2>/dev/null \
            || $SUDO pg_ctlcluster "$PG_MAJOR" main start || true
    fi
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
    pg_up || die "PostgreSQL did not start on $DB_HOST:$DB_PORT (see /var/log/postgresql/)"
fi
log "PostgreSQL is up on $DB_HOST:$DB_PORT"

export PGCONNECT_TIMEOUT=5
admin_psql() {
    PGPASSWORD="$DB_PASS" psql -h "$DB_HOST" -p "$DB_PORT" -U "$DB_USER" -d postgres \
        -v ON_ERROR_STOP=1 -qAt "$@"
}
if ! admin_psql -c 'SELECT 1' >/dev/null 2>&1; then
    # A fresh Debian install only lets the postgres OS user in (peer auth). Create a
    # password role for the service through that, and remember it in .env.
    [ "$LOCAL" = 1 ] && command -v runuser >/dev/null 2>&1 \
        || die "cannot connect as $DB_USER to $DB_HOST:$DB_PORT; set DATABASE_URL"
    log "creating role 'incidents' through the postgres OS user"
    $SUDO runuser -u postgres -- psql -qAt -v ON_ERROR_STOP=1 -c \
        "DO \$\$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname='incidents') THEN
         CREATE ROLE incidents LOGIN SUPERUSER PASSWORD 'incidents'; END IF; END\$\$;"
    DB_USER="incidents"; DB_PASS="incidents"
    DB_URL="postgresql://incidents:incidents@$DB_HOST:$DB_PORT/$DB_NAME"
    touch .env; grep -v '^DATABASE_URL=' .env > .env.tmp || true
    echo "DATABASE_URL=$DB_URL" >> .env.tmp; chmod 600 .env.tmp; mv .env.tmp .env
fi

SERVER_MAJOR="$(admin_psql -c 'SHOW server_version_num' | cut -c1-2)"
if [ "$LOCAL" = 1 ] && [ ! -f "/usr/share/postgresql/$SERVER_MAJOR/extension/postgis.control" ]; then
    log "PostGIS missing for PostgreSQL $SERVER_MAJOR: installing it"
    apt_install "postgresql-$SERVER_MAJOR-postgis-3"
fi
# pg_trgm and unaccent ship in the server package (contrib) on Debian 12 and later.

if [ "$(admin_psql -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != "1" ]; then
    log "creating database $DB_NAME"
    admin_psql -c "CREATE DATABASE \"$DB_NAME\""
fi
export DATABASE_URL="$DB_URL"
export PGHOST="$DB_HOST" PGPORT="$DB_PORT" PGUSER="$DB_USER" PGDATABASE="$DB_NAME"
[ -n "$DB_PASS" ] && export PGPASSWORD="$DB_PASS"

# ---- virtualenv ---------------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
    log "creating .venv"
    "$PYTHON" -m venv .venv
fi
EXTRAS="${EXTRAS:-}"
SPEC="."; [ -n "$EXTRAS" ] && SPEC=".[$EXTRAS]"
STAMP=".venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)-${EXTRAS:-base}"
if [ ! -f "$STAMP" ]; then
    log "installing the package ($SPEC)"
    .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q --disable-pip-version-check -e "$SPEC"
    touch "$STAMP"
fi
# ---- the service's secrets: random ones in .env on first setup (never replaced after) ----
.venv/bin/incidents secrets init
# ---- front-end assets of /map (MapLibre from the npm registry, pinned by package-lock) ----
if [ ! -f web/node_modules/maplibre-gl/dist/maplibre-gl.js ]; then
    command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    log "npm ci (web/)"
    (cd web && npm ci --no-audit --no-fund --loglevel=error) \
        || log "npm ci failed: /map will have no map library"
fi
log "ready: DATABASE_URL=$DATABASE_URL"
