"""Small HTTP helpers shared by routers: JSON bodies, ETags, content negotiation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from fastapi.responses import JSONResponse

from app.core.errors import BadRequest, UnsupportedMediaType, field_error

JSON_TYPES = ("application/json", "application/merge-patch+json")


async def require_json(request: Request) -> None:
    """Dependency for JSON bodies: anything else is a 415 rather than a confusing 422."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in JSON_TYPES and not (
        content_type.startswith("application/") and content_type.endswith("+json")
    ):
        raise UnsupportedMediaType(
            f"Send the body as application/json (got '{content_type or 'none'}').",
            errors=[field_error("content-type", "must be application/json")],
        )


def etag(version: int) -> str:
    return f'"v{version}"'


def parse_if_match(header: str | None) -> set[int] | None:
    """Versions an If-Match header accepts; None when absent or `*` (no precondition)."""
    if header is None:
        return None
    header = header.strip()
    if header == "*":
        return None
    versions: set[int] = set()
    for part in header.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        tag = tag.strip('"')
        if tag.startswith("v") and tag[1:].isdigit() and len(tag) < 12:
            versions.add(int(tag[1:]))
        else:
            raise BadRequest(
                "If-Match must hold ETags as returned by the API, e.g. '\"v3\"'.",
                errors=[field_error("If-Match", "malformed entity tag", part.strip()[:64])],
            )
    return versions


def if_none_match_hits(header: str | None, version: int) -> bool:
    if header is None:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag(version) in tags


class GeoJSONResponse(JSONResponse):
    """Documents (and sends) `application/geo+json` for routes that return GeoJSON."""

    media_type = "application/geo+json"


def creates(model: type, summary: str, **options: Any) -> dict[str, Any]:
    """Route options of an endpoint that creates a resource from a JSON body: 201, the
    resource's model, JSON bodies only (415 otherwise)."""
    return {
        "status_code": 201,
        "response_model": model,
        "dependencies": [Depends(require_json)],
        "summary": summary,
        **options,
    }


def created(
    doc: str, location: str, media_type: str = "application/json", **headers: str
) -> Response:
    """201 with the new resource (JSON built in SQL) and its `Location`."""
    return Response(
        doc, status_code=201, media_type=media_type, headers={"Location": location, **headers}
    )


IfMatch = Annotated[
    str | None, Header(description="ETag from a GET; 412 if the resource changed since")
]
