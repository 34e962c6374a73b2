"""The OpenAPI 3.0 document of the OGC API (`/ogc/api`, the landing page's `service-desc`).

OGC clients read it relative to the API's root (`servers[0].url` = `.../ogc`, paths from
`/collections/...`) and look for specific things in it: QGIS takes the page size from
`components.parameters.limit.schema` (`default`, `maximum`) and the "simple queryables" from the
items path's parameters declared `in: query, style: form, explode: false`. Everything here is
built from the field registry and the parameter lists of `app.ogc.params`, so the document
says exactly what the server accepts.
"""

from __future__ import annotations

from typing import Any

from app.incidents.fields import JSON_FIELDS, JSON_SCHEMA, IncidentField
from app.ogc import cql
from app.ogc.params import CRS84, DEFAULT_LIMIT, EXTRA_SEARCH, MAX_LIMIT, SIMPLE
from app.search.params import BY_NAME as SEARCH_PARAMS

COLLECTION = "incidents"
OPENAPI_MEDIA = "application/vnd.oai.openapi+json;version=3.0"
GEOJSON = "application/geo+json"
PROBLEM = "application/problem+json"
PROPERTY_FIELDS: tuple[IncidentField, ...] = tuple(
    f for f in JSON_FIELDS if f.name not in ("id", "latitude", "longitude")
)


def _schema(field: IncidentField) -> dict[str, Any]:
    schema = dict(JSON_SCHEMA[field.kind])
    if field.description:
        schema["description"] = field.description
    return schema


def _query(name: str, schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "style": "form",
        "explode": False,
        "description": description,
        "schema": schema,
        **extra,
    }


def parameters() -> dict[str, dict[str, Any]]:
    """Every query parameter of the items request, by name."""
    string = {"type": "string"}
    params = {
        "limit": _query(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
            f"Features per page (1..{MAX_LIMIT}, default {DEFAULT_LIMIT}); a larger value is a 400",
        ),
        "bbox": _query(
            "bbox",
            {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
            "minLon,minLat,maxLon,maxLat in CRS84 (6 numbers with heights); minLon > maxLon "
            "crosses the antimeridian",
        ),
        "bbox-crs": _query("bbox-crs", {"type": "string", "enum": [CRS84]}, "Only CRS84"),
        "crs": _query("crs", {"type": "string", "enum": [CRS84]}, "Only CRS84"),
        "datetime": _query(
            "datetime",
            string,
            "On event_date: an instant (2020-06-13) or an interval (2020-01-01/2020-12-31, "
            "../2020-12-31, 2020-01-01/..)",
        ),
        "filter": _query("filter", string, "A CQL2 filter over the queryables"),
        "filter-lang": _query(
            "filter-lang",
            {"type": "string", "enum": list(cql.LANGUAGES), "default": "cql2-text"},
            "The filter's language",
        ),
        "filter-crs": _query("filter-crs", {"type": "string", "enum": [CRS84]}, "Only CRS84"),
        "f": _query(
            "f", {"type": "string", "enum": ["json", "html"]}, "Response format (or Accept)"
        ),
        "cursor": _query("cursor", string, "Position of the page: follow the `next` link"),
    }
    for name in EXTRA_SEARCH:
        param = SEARCH_PARAMS[name]
        kind = {int: "integer", float: "number"}.get(param.kind, "string")
        params[name] = _query(name, {"type": kind}, param.description + " (as on /v1)")
    for name in SIMPLE:
        field = cql.QUERYABLES[name]
        params[name] = _query(name, _schema(field), f"Equal to: {field.description}")
    return params


ITEMS_PARAMETERS = (
    "limit",
    "bbox",
    "bbox-crs",
    "crs",
    "datetime",
    "filter",
    "filter-lang",
    "filter-crs",
    "f",
    "cursor",
    *EXTRA_SEARCH,
    *SIMPLE,
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _json(description: str, schema: str, media: str = "application/json") -> dict[str, Any]:
    return {
        "description": description,
        "content": {media: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def _problems(*codes: int) -> dict[str, Any]:
    return {str(code): _json("Problem details (RFC 9457)", "Problem", PROBLEM) for code in codes}


def document(base: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document, with `base` (the API's absolute root URL) as its server."""
    feature_path = f"/collections/{COLLECTION}/items/{{featureId}}"
    items_path = f"/collections/{COLLECTION}/items"
    feature_id = {
        "name": "featureId",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,18}$"},
        "description": "The incident's id",
    }
    write: dict[str, Any] = {"security": [{"bearer": []}]}
    feature_body = {
        "required": True,
        "content": {
            GEOJSON: {"schema": {"$ref": "#/components/schemas/Feature"}},
            "application/json": {"schema": {"$ref": "#/components/schemas/Feature"}},
        },
    }
    patch_body = {
        "required": True,
        "content": {
            "application/merge-patch+json": {"schema": {"type": "object"}},
            "application/json": {"schema": {"type": "object"}},
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Conflict incidents - OGC API Features",
            "version": "1.0.0",
            "description": "Geolocated armed-conflict incidents as OGC API - Features (Parts 1, "
            "3 and 4): one collection, `incidents`, of points in CRS84.",
            "license": {"name": "MIT"},
        },
        "servers": [{"url": base}],
        "paths": {
            "/": {
                "get": {
                    "summary": "Landing page",
                    "operationId": "getLandingPage",
                    "responses": {"200": _json("Links to the API", "LandingPage")},
                }
            },
            "/api": {
                "get": {
                    "summary": "This document",
                    "operationId": "getAPI",
                    "responses": {"200": {"description": "OpenAPI 3.0"}},
                }
            },
            "/conformance": {
                "get": {
                    "summary": "Conformance classes",
                    "operationId": "getConformance",
                    "responses": {"200": _json("conformsTo", "Conformance")},
                }
            },
            "/collections": {
                "get": {
                    "summary": "The collections",
                    "operationId": "getCollections",
                    "responses": {"200": _json("Collections", "Collections")},
                }
            },
            f"/collections/{COLLECTION}": {
                "get": {
                    "summary": "The incidents collection",
                    "operationId": "getCollection",
                    "responses": {"200": _json("Collection", "Collection"), **_problems(404)},
                }
            },
            f"/collections/{COLLECTION}/queryables": {
                "get": {
                    "summary": "Properties a filter may use",
                    "operationId": "getQueryables",
                    "responses": {
                        "200": {
                            "description": "JSON Schema",
                            "content": {"application/schema+json": {}},
                        }
                    },
                }
            },
            items_path: {
                "get": {
                    "summary": "Incidents as GeoJSON features",
                    "operationId": "getFeatures",
                    "parameters": [_ref(name) for name in ITEMS_PARAMETERS],
                    "responses": {
                        "200": _json("A page of features", "FeatureCollection", GEOJSON),
                        **_problems(400, 404),
                    },
                },
                "post": {
                    "summary": "Create an incident from a GeoJSON Feature",
                    "operationId": "createFeature",
                    "requestBody": feature_body,
                    "responses": {
                        "201": {"description": "Created; `Location` names it"},
                        **_problems(400, 401, 403, 409, 422),
                    },
                    **write,
                },
                "options": {
                    "summary": "The methods this key may use (`Allow`)",
                    "operationId": "optionsFeatures",
                    "responses": {"204": {"description": "See the Allow header"}},
                },
            },
            feature_path: {
                "parameters": [feature_id],
                "get": {
                    "summary": "One incident",
                    "operationId": "getFeature",
                    "responses": {"200": _json("A feature", "Feature", GEOJSON), **_problems(404)},
                },
                "put": {
                    "summary": "Replace an incident",
                    "operationId": "replaceFeature",
                    "requestBody": feature_body,
                    "responses": {
                        "200": _json("The feature", "Feature", GEOJSON),
                        **_problems(400, 401, 403, 404, 412, 422),
                    },
                    **write,
                },
                "patch": {
                    "summary": "Update an incident (JSON merge patch)",
                    "operationId": "updateFeature",
                    "requestBody": patch_body,
                    "responses": {
                        "200": _json("The feature", "Feature", GEOJSON),
                        **_problems(400, 401, 403, 404, 412, 422),
                    },
                    **write,
                },
                "delete": {
                    "summary": "Delete an incident",
                    "operationId": "deleteFeature",
                    "responses": {
                        "204": {"description": "Deleted"},
                        **_problems(401, 403, 404, 412),
                    },
                    **write,
                },
                "options": {
                    "summary": "The methods this key may use (`Allow`)",
                    "operationId": "optionsFeature",
                    "responses": {"204": {"description": "See the Allow header"}},
                },
            },
        },
        "components": {
            "parameters": parameters(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
        },
    }


def schemas() -> dict[str, Any]:
    link = {
        "type": "object",
        "required": ["href", "rel"],
        "properties": {k: {"type": "string"} for k in ("href", "rel", "type", "title")},
    }
    links = {"type": "array", "items": {"$ref": "#/components/schemas/Link"}}
    properties = {f.name: _schema(f) for f in PROPERTY_FIELDS}
    return {
        "Link": link,
        "LandingPage": {
            "type": "object",
            "properties": {"title": {"type": "string"}, "links": links},
        },
        "Conformance": {
            "type": "object",
            "properties": {"conformsTo": {"type": "array", "items": {"type": "string"}}},
        },
        "Collection": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "title": {"type": "string"},
                "itemType": {"type": "string"},
                "extent": {"type": "object"},
                "crs": {"type": "array", "items": {"type": "string"}},
                "links": links,
            },
        },
        "Collections": {
            "type": "object",
            "properties": {
                "collections": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Collection"},
                },
                "links": links,
            },
        },
        "Feature": {
            "type": "object",
            "required": ["type", "geometry", "properties"],
            "properties": {
                "type": {"type": "string", "enum": ["Feature"]},
                "id": {"type": "string"},
                "geometry": {"type": "object", "description": "GeoJSON Point [lon, lat]"},
                "properties": {"type": "object", "properties": properties},
            },
        },
        "FeatureCollection": {
            "type": "object",
            "properties": {
                "type": {"type": "string", "enum": ["FeatureCollection"]},
                "features": {"type": "array", "items": {"$ref": "#/components/schemas/Feature"}},
                "links": links,
                "numberReturned": {"type": "integer"},
                "numberMatched": {"type": "integer"},
                "timeStamp": {"type": "string", "format": "date-time"},
            },
        },
        "Problem": {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "errors": {"type": "array", "items": {"type": "object"}},
            },
        },
    }


def queryables(base: str) -> dict[str, Any]:
    """The JSON Schema of what a filter (and a simple `property=value`) may use."""
    props: dict[str, Any] = {
        "geometry": {
            "format": "geometry-point",
            "$ref": "https://geojson.org/schema/Point.json",
            "description": "The incident's point (CRS84)",
        }
    }
    for field in cql.QUERYABLES.values():
        props[field.name] = {"title": field.name, **_schema(field)}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{base}/collections/{COLLECTION}/queryables",
        "type": "object",
        "title": "Incident queryables",
        "properties": props,
        "additionalProperties": False,
    }
