#!/usr/bin/env bash
# Fetch the offline admin-1 boundaries (Natural Earth states/provinces) used by app/areas/sources.py.
#
# Debian's `qgis-common` package ships /usr/share/qgis/resources/data/world_map.gpkg, a GeoPackage
# whose `states_provinces` layer is Natural Earth admin-1. Installing QGIS just for that file would
# be absurd, so we download the .deb, unpack it in a temp dir and keep only the GeoPackage, at
# data/boundaries/world_map.gpkg (relative to the repository root).
#
# Idempotent: does nothing if the file is already there. If apt is unavailable or the download
# fails, it prints a warning and exits 0: admin-1 boundaries are optional (countries come from a
# Python package) and app.areas.sources.default_admin1_path() returns None without them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/data/boundaries/world_map.gpkg"
MEMBER="usr/share/qgis/resources/data/world_map.gpkg"
PACKAGE="qgis-common"

log() { printf '\033[1;34m[fetch_boundaries]\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[1;33m[fetch_boundaries] warning:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[fetch_boundaries] error:\033[0m %s\n' "$*" >&2; exit 1; }

if [ -s "$DEST" ]; then
    log "already present: $DEST"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then
    warn "apt-get/dpkg not available; admin-1 boundaries skipped."
    warn "Copy world_map.gpkg from any QGIS install to $DEST, or set INCIDENTS_BOUNDARIES_GPKG."
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
# `apt-get download` as root drops privileges to the _apt user, which must be able to write here.
chmod 755 "$TMP"
cd "$TMP"

# `apt-get download` needs no root: only refreshing the package lists does.
if ! apt-get download -qq "$PACKAGE" >/dev/null 2>&1; then
    log "apt-get download $PACKAGE failed; running apt-get update and retrying"
    $SUDO apt-get update -qq >/dev/null 2>&1 || warn "apt-get update failed"
    if ! apt-get download -qq "$PACKAGE" >/dev/null; then
        warn "could not download $PACKAGE; admin-1 boundaries skipped."
        exit 0
    fi
fi

shopt -s nullglob
debs=("$TMP"/"$PACKAGE"_*.deb)
[ "${#debs[@]}" -ge 1 ] || die "apt-get download succeeded but no $PACKAGE .deb found"
dpkg -x "${debs[0]}" "$TMP/root"
[ -s "$TMP/root/$MEMBER" ] || die "${debs[0]##*/} does not contain /$MEMBER"

mkdir -p "$(dirname "$DEST")"
# Copy then rename so an interrupted run never leaves a truncated file that looks "present".
cp "$TMP/root/$MEMBER" "$DEST.part.$$"
mv -f "$DEST.part.$$" "$DEST"
log "installed ${debs[0]##*/}:/$MEMBER"
echo "$DEST"
