"""Small HTML views of the OGC resources, for a browser (`Accept: text/html` or `f=html`): the
links, a table, and a MapLibre map of a page's features (the map page's assets, no CDN)."""

from __future__ import annotations

import html
from typing import Any

import orjson
from fastapi.responses import HTMLResponse

# Scripts and styles from this server only; MapLibre draws with workers made from blobs.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; worker-src blob:; child-src blob:; "
    "frame-ancestors 'none'"
)
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1100px;
       padding: 0 1em; color: #222; }
a { color: #1a5fb4; } table { border-collapse: collapse; margin: 1em 0; }
td, th { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
#map { height: 420px; border: 1px solid #ccc; margin: 1em 0; }
"""


def wants_html(f: str | None, accept: str | None) -> bool:
    """`f=html`, or a browser's Accept (text/html before any JSON type)."""
    if f is not None:
        return f == "html"
    if not accept:
        return False
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media == "text/html":
            return True
        if media in ("application/json", "application/geo+json", "application/schema+json"):
            return False
    return False


def _links(links: list[dict[str, Any]]) -> str:
    rows = []
    for link in links:
        href, rel = html.escape(link["href"]), html.escape(link["rel"])
        label = html.escape(link.get("title") or link["rel"])
        kind = html.escape(link.get("type", ""))
        rows.append(f'<li><a href="{href}">{label}</a> <small>({rel}, {kind})</small></li>')
    return "<ul>" + "".join(rows) + "</ul>"


def page(
    title: str,
    links: list[dict[str, Any]],
    body: str = "",
    features: dict[str, Any] | None = None,
) -> HTMLResponse:
    map_part = ""
    head = ""
    if features is not None:
        data = orjson.dumps(features).decode().replace("</", "<\\/")
        head = (
            '<link rel="stylesheet" href="/map/assets/maplibre-gl.css">'
            '<script src="/map/assets/maplibre-gl.js"></script>'
            '<script src="/ogc/assets/features.js" defer></script>'
        )
        map_part = (
            f'<div id="map"></div><script id="features" type="application/json">{data}</script>'
        )
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style>{head}</head><body>"
        f"<h1>{html.escape(title)}</h1>{_links(links)}{map_part}{body}</body></html>"
    )
    return HTMLResponse(document, headers={"Content-Security-Policy": CSP})


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_text(row.get(c)))}</td>" for c in columns) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | dict):
        return orjson.dumps(value).decode()
    return str(value)
