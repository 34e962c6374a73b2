"""GeoJSON Features in (OGC API - Features - Part 4) as incident input.

A Feature's `properties` are incident fields and its `geometry` the point. Clients send back
what they read: QGIS posts every field of the layer, nulls and read-only ones included, so
read-only fields (`created_at`, `version`, ...) are ignored and, on create and replace, a null
is "not given" (the field's default). In a merge patch (RFC 7396) a null removes a value: back
to the field's default, or null where the field has none.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from app.core.errors import BadRequest, Unprocessable, field_error, validation_errors
from app.incidents.fields import BY_NAME, WRITABLE
from app.incidents.schemas import IncidentIn, IncidentPatch

WRITABLE_NAMES = frozenset(f.name for f in WRITABLE) - {"latitude", "longitude"}
DEFAULTS = {f.name: f.default for f in WRITABLE if f.default is not None}


def read_body(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            "The body is not valid JSON.", errors=[field_error("body", "invalid JSON")]
        ) from exc
    if not isinstance(data, dict):
        raise BadRequest(
            "The body must be a JSON object.", errors=[field_error("body", "expected an object")]
        )
    return data


def _feature(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    if data.get("type") != "Feature":
        raise BadRequest(
            "The body must be a GeoJSON Feature.",
            errors=[field_error("type", "expected 'Feature'", str(data.get("type"))[:50])],
        )
    properties = data.get("properties") or {}
    if not isinstance(properties, dict):
        raise BadRequest(
            "properties must be an object.", errors=[field_error("properties", "not an object")]
        )
    geometry = data.get("geometry")
    if geometry is not None and not isinstance(geometry, dict):
        raise BadRequest(
            "geometry must be a GeoJSON Point.", errors=[field_error("geometry", "not an object")]
        )
    return properties, geometry


def _unknown(properties: dict[str, Any]) -> None:
    unknown = [k for k in properties if k not in BY_NAME and k != "distance_km"]
    if unknown:
        raise Unprocessable(
            f"properties.{unknown[0]}: not an incident field",
            errors=[field_error(f"properties.{k}", "not an incident field") for k in unknown],
        )


def _validated(model: Any, values: dict[str, Any]) -> Any:
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        errors = validation_errors(exc.errors())
        for error in errors:
            name = error["field"].split(".")[0]
            if name in ("latitude", "longitude", "geometry"):
                error["field"] = "geometry"
            elif name in BY_NAME:
                error["field"] = "properties." + error["field"]
        raise Unprocessable(
            "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5]), errors=errors
        ) from exc


def incident_from_feature(data: dict[str, Any]) -> IncidentIn:
    """A whole Feature (create, replace) as a new incident's input."""
    properties, geometry = _feature(data)
    _unknown(properties)
    values = {k: v for k, v in properties.items() if k in WRITABLE_NAMES and v is not None}
    if geometry is not None:
        values["geometry"] = geometry
    result: IncidentIn = _validated(IncidentIn, values)
    return result


def replacement(data: dict[str, Any]) -> IncidentPatch:
    """PUT: every writable field set, from the Feature or its default (or null)."""
    incident = incident_from_feature(data)
    values = incident.model_dump(include=set(WRITABLE_NAMES) | {"latitude", "longitude"})
    result: IncidentPatch = _validated(IncidentPatch, values)
    return result


def merge_patch(data: dict[str, Any]) -> IncidentPatch:
    """PATCH with a JSON merge patch of the Feature: `properties` changed, `geometry` moved."""
    properties = data.get("properties") or {}
    if not isinstance(properties, dict):
        raise BadRequest(
            "properties must be an object.", errors=[field_error("properties", "not an object")]
        )
    _unknown(properties)
    values = {
        k: (DEFAULTS.get(k) if v is None else v)
        for k, v in properties.items()
        if k in WRITABLE_NAMES
    }
    if data.get("geometry") is not None:
        values["geometry"] = data["geometry"]
    result: IncidentPatch = _validated(IncidentPatch, values)
    return result
