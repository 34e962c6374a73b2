"""The /map demo page: MapLibre GL (installed from npm into web/node_modules at setup, never
from a CDN), the incident vector tiles, and Natural Earth outlines served by the API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

ROOT = Path(__file__).resolve().parents[2]
MAPLIBRE_DIST = ROOT / "web" / "node_modules" / "maplibre-gl" / "dist"
PAGE = Path(__file__).with_name("map.html")

router = APIRouter(include_in_schema=False)


@router.get("/map", response_class=HTMLResponse)
async def map_page() -> FileResponse:
    return FileResponse(PAGE, media_type="text/html")


def mount_assets(app: FastAPI) -> None:
    """Serve MapLibre's files when `npm ci` has run in web/ (scripts/provision.sh does)."""
    if MAPLIBRE_DIST.is_dir():
        app.mount("/map/assets", StaticFiles(directory=MAPLIBRE_DIST), name="map-assets")
