"""OGC API - Features at /ogc: the shared search and incident store in the OGC shape.

Parts 1 (core, GeoJSON, HTML, OpenAPI 3.0), 3 (queryables, CQL2 filters) and 4 (create,
replace, update, delete). Links are absolute (clients use them as they are); bad parameters
are 400 problems naming them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Annotated, Any

import asyncpg
import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import FileResponse

from app.auth.deps import OptionalPrincipal, Writer, guard
from app.core.deps import ReadConn, WriteConn
from app.core.errors import COMMON_PROBLEMS, BadRequest, NotFound, Unprocessable
from app.core.http import IfMatch, etag, if_none_match_hits, parse_if_match
from app.core.ids import IdPath, parse_id
from app.core.pagination import decode_cursor, encode_cursor, fragments, json_body
from app.incidents import service as incidents
from app.incidents.enrich import enrich
from app.incidents.sql import feature_json, incident_json
from app.ogc import features, html, openapi, params, service
from app.search import service as search
from app.search.filters import OutputFormat, Sort
from app.search.resolve import resolve_filter

router = APIRouter(
    prefix="/ogc",
    tags=["OGC API - Features"],
    dependencies=[Depends(guard)],
    responses=COMMON_PROBLEMS,
)
JSON = "application/json"
GEOJSON = "application/geo+json"
COLLECTION = openapi.COLLECTION
CURSOR_KIND = "ogc"
STATIC = FilePath(__file__).with_name("static")

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/accent-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/temporal-functions",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
]

FORMAT = Annotated[str | None, Header(include_in_schema=False, alias="accept")]
CollectionId = Annotated[
    str,
    Path(description="The collection: `incidents`", json_schema_extra={"enum": [COLLECTION]}),
]
FEATURE_BODY = {
    "requestBody": {"required": True, "content": {GEOJSON: {"schema": {"type": "object"}}}}
}


def base_url(request: Request) -> str:
    """The API's absolute root, e.g. http://127.0.0.1:8000/ogc."""
    return str(request.base_url).rstrip("/") + "/ogc"


def _f(request: Request) -> str | None:
    f = request.query_params.get("f")
    if f is not None and f not in ("json", "html", "geojson"):
        raise params.bad("f", "one of json, html", f)
    return f


def _html(request: Request, accept: str | None) -> bool:
    return html.wants_html(_f(request), accept)


def _only(request: Request, *allowed: str) -> None:
    """OGC: a query parameter the operation does not define is a 400."""
    unknown = sorted(k for k in request.query_params if k not in ("f", *allowed))
    if unknown:
        raise params.bad(unknown[0], "unknown parameter")


def link(href: str, rel: str, type_: str, title: str) -> dict[str, str]:
    return {"href": href, "rel": rel, "type": type_, "title": title}


def _alternates(href: str, title: str, json_type: str = JSON) -> list[dict[str, str]]:
    glue = "&" if "?" in href else "?"
    return [
        link(href, "self", json_type, title),
        link(href + glue + "f=html", "alternate", "text/html", title + " as HTML"),
    ]


async def _respond(
    request: Request, accept: str | None, doc: dict[str, Any], title: str, body: str = ""
) -> Response:
    if _html(request, accept):
        return html.page(title, doc.get("links", []), body)
    return Response(json_body(doc), media_type=JSON)


@router.get("", summary="Landing page")
async def landing(request: Request, accept: FORMAT = None) -> Response:
    _only(request)
    base = base_url(request)
    root = str(request.base_url).rstrip("/")
    doc = {
        "title": "Conflict incidents",
        "description": "Geolocated armed-conflict incidents (ACLED's fields) as OGC API - "
        "Features: read, filter (CQL2) and edit.",
        "links": [
            *_alternates(base, "This document"),
            link(base + "/api", "service-desc", openapi.OPENAPI_MEDIA, "The API definition"),
            link(root + "/docs", "service-doc", "text/html", "The API documentation"),
            link(base + "/conformance", "conformance", JSON, "Conformance classes"),
            link(base + "/collections", "data", JSON, "The collections"),
        ],
    }
    return await _respond(request, accept, doc, "Conflict incidents — OGC API Features")


@router.get(
    "/api",
    summary="OpenAPI 3.0 definition of the OGC API",
    responses={200: {"content": {openapi.OPENAPI_MEDIA: {"schema": {"type": "object"}}}}},
)
async def api(request: Request) -> Response:
    _only(request)
    document = openapi.document(base_url(request))
    return Response(json_body(document), media_type=openapi.OPENAPI_MEDIA)


@router.get("/conformance", summary="Conformance classes")
async def conformance(request: Request, accept: FORMAT = None) -> Response:
    _only(request)
    doc = {
        "conformsTo": CONFORMANCE,
        "links": _alternates(base_url(request) + "/conformance", "Conformance"),
    }
    body = "<ul>" + "".join(f"<li>{c}</li>" for c in CONFORMANCE) + "</ul>"
    return await _respond(request, accept, doc, "Conformance", body)


async def _collection(request: Request, conn: asyncpg.Connection) -> dict[str, Any]:
    base = base_url(request)
    href = f"{base}/collections/{COLLECTION}"
    return {
        "id": COLLECTION,
        "title": "Conflict incidents",
        "description": "Armed-conflict incidents: points with ACLED's fields; every edit is "
        "kept in the history (/v1/incidents/{id}/revisions).",
        "itemType": "feature",
        "extent": await service.extent(conn),
        "crs": [params.CRS84],
        "storageCrs": params.CRS84,
        "links": [
            *_alternates(href, "The incidents collection"),
            link(f"{href}/items", "items", GEOJSON, "Incidents as GeoJSON"),
            link(f"{href}/items?f=html", "items", "text/html", "Incidents as HTML"),
            link(
                f"{href}/queryables",
                "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                "application/schema+json",
                "Queryables",
            ),
        ],
    }


def _check_collection(collection_id: str) -> None:
    if collection_id != COLLECTION:
        raise NotFound(
            f"No collection '{collection_id[:64]}'; the one collection is '{COLLECTION}'."
        )


@router.get("/collections", summary="The collections")
async def collections(request: Request, conn: ReadConn, accept: FORMAT = None) -> Response:
    _only(request)
    collection = await _collection(request, conn)
    doc = {
        "collections": [collection],
        "links": _alternates(base_url(request) + "/collections", "Collections"),
    }
    body = html.table([collection], ["id", "title", "description"])
    return await _respond(request, accept, doc, "Collections", body)


@router.get("/collections/{collectionId}", summary="The incidents collection")
async def collection(
    request: Request, conn: ReadConn, collectionId: CollectionId, accept: FORMAT = None
) -> Response:
    _only(request)
    _check_collection(collectionId)
    doc = await _collection(request, conn)
    body = html.table([{"extent": doc["extent"], "crs": doc["crs"]}], ["extent", "crs"])
    return await _respond(request, accept, doc, doc["title"], body)


@router.get(
    "/collections/{collectionId}/queryables",
    summary="What a filter may use",
    responses={200: {"content": {"application/schema+json": {"schema": {"type": "object"}}}}},
)
async def queryables(
    request: Request, collectionId: CollectionId, accept: FORMAT = None
) -> Response:
    _only(request)
    _check_collection(collectionId)
    doc = openapi.queryables(base_url(request))
    if _html(request, accept):
        rows = [{"name": k, **v} for k, v in doc["properties"].items()]
        body = html.table(rows, ["name", "type", "format", "description"])
        return html.page("Queryables", [], body)
    return Response(json_body(doc), media_type="application/schema+json")


def _feature_doc(distance_sql: str | None) -> str:
    if distance_sql is None:
        return feature_json()
    return feature_json(
        incident_json(
            {"distance_km": f"round(({distance_sql} / 1000.0)::numeric, 4)"},
            exclude=("id", "latitude", "longitude"),
        )
    )


def _as_400(exc: Unprocessable) -> BadRequest:
    return BadRequest(exc.detail, errors=exc.errors, headers=exc.headers)


@router.get(
    "/collections/{collectionId}/items",
    summary="Incidents as GeoJSON features (bbox, datetime, CQL2 filter, our search parameters)",
    responses={200: {"content": {GEOJSON: {}, "text/html": {}}}},
    openapi_extra={
        "parameters": [
            {k: v for k, v in p.items() if k != "style"} for p in openapi.parameters().values()
        ]
    },
)
async def items(
    request: Request, conn: ReadConn, collectionId: CollectionId, accept: FORMAT = None
) -> Response:
    _check_collection(collectionId)
    as_html = _html(request, accept)
    query = params.parse_items_query(
        dict(request.query_params), [k for k, _ in request.query_params.multi_items()]
    )
    try:
        raw = params.raw_filter(query)
        f = await resolve_filter(conn, raw)
    except Unprocessable as exc:
        raise _as_400(exc) from exc
    f.conditions, f.described = query.conditions, query.described
    settings = request.app.state.settings
    after = None
    if query.cursor:
        after = decode_cursor(
            query.cursor, settings.cursor_secret, kind=CURSOR_KIND, bound_to=query.fingerprint
        )
    page = await search.fetch_page(
        conn,
        f,
        sort=Sort.newest,
        fmt=OutputFormat.geojson,
        after=after,
        limit=query.limit,
        doc=_feature_doc,
    )
    payload = search.cursor_payload(page, raw, Sort.newest)
    matched = await service.number_matched(conn, f)
    base = base_url(request)
    as_page = str(request.url.include_query_params(f="html"))
    links = [
        link(str(request.url), "self", GEOJSON, "This page"),
        link(as_page, "alternate", "text/html", "This page as HTML"),
        link(f"{base}/collections/{COLLECTION}", "collection", JSON, "The collection"),
    ]
    if payload is not None:
        payload["f"] = query.fingerprint
        cursor = encode_cursor(CURSOR_KIND, payload, settings.cursor_secret)
        following = request.url.remove_query_params("f").include_query_params(cursor=cursor)
        links.append(link(str(following), "next", GEOJSON, "Next page"))
    docs = [str(r["doc"]) for r in page.rows]
    doc: dict[str, Any] = {
        "type": "FeatureCollection",
        "features": fragments(docs),
        "links": links,
        "numberReturned": len(docs),
        "timeStamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    if matched is not None:
        doc["numberMatched"] = matched
    if f.raw.as_of is not None:
        doc["as_of"] = f.as_of_meta()
    if as_html:
        collection_doc = {"type": "FeatureCollection", "features": [orjson.loads(d) for d in docs]}
        rows = [{"id": x["id"], **x["properties"]} for x in collection_doc["features"]]
        columns = ["id", "event_date", "event_type", "location", "admin1", "country", "fatalities"]
        return html.page("Incidents", links, html.table(rows, columns), collection_doc)
    return Response(json_body(doc), media_type=GEOJSON)


FEATURE_JSON = feature_json()
FEATURE_SQL = incidents.get_sql(FEATURE_JSON)


async def _feature(
    conn: asyncpg.Connection, feature_id: int, as_of: dt.datetime | None = None
) -> tuple[int, str]:
    return await incidents.get_incident(
        conn, incident_id=feature_id, as_of=as_of, doc=FEATURE_JSON, what="feature"
    )


def _feature_links(request: Request, feature_id: int) -> str:
    return f"{base_url(request)}/collections/{COLLECTION}/items/{feature_id}"


@router.get(
    "/collections/{collectionId}/items/{featureId}",
    summary="One incident as a GeoJSON Feature",
    responses={200: {"content": {GEOJSON: {}}}, 304: {"description": "Not modified"}},
)
async def item(
    request: Request,
    conn: ReadConn,
    collectionId: CollectionId,
    featureId: IdPath,
    accept: FORMAT = None,
    if_none_match: Annotated[str | None, Header()] = None,
    as_of: Annotated[
        str | None,
        Query(
            description="RFC 3339 instant: the feature as it stood then (404 before it "
            "existed, 410 once deleted)",
        ),
    ] = None,
) -> Response:
    _only(request, "as_of")
    _check_collection(collectionId)
    feature_id = parse_id(featureId, what="feature")
    instant = params.parse_as_of(as_of)
    version, doc = await _feature(conn, feature_id, instant)
    if if_none_match_hits(if_none_match, version):
        return Response(status_code=304, headers={"ETag": etag(version)})
    if _html(request, accept):
        data = orjson.loads(doc)
        rows = [{"property": k, "value": v} for k, v in data["properties"].items()]
        collection_href = f"{base_url(request)}/collections/{COLLECTION}"
        return html.page(
            f"Incident {feature_id}",
            [link(collection_href, "collection", JSON, "The collection")],
            html.table(rows, ["property", "value"]),
            {"type": "FeatureCollection", "features": [data]},
        )
    href = _feature_links(request, feature_id)
    collection_href = f"{base_url(request)}/collections/{COLLECTION}"
    feature = orjson.loads(doc)
    feature["links"] = [
        *_alternates(href, "This feature", GEOJSON),
        link(collection_href, "collection", JSON, "The collection"),
    ]
    return Response(json_body(feature), media_type=GEOJSON, headers={"ETag": etag(version)})


def _allow(principal: Any, *writes: str) -> str:
    methods = ["GET", "HEAD", "OPTIONS"]
    if principal is not None and principal.has("write"):
        methods += list(writes)
    return ", ".join(methods)


ALLOW_DOC: dict[int | str, dict[str, Any]] = {
    204: {"description": "`Allow` lists the methods this key may use"}
}


@router.options(
    "/collections/{collectionId}/items",
    status_code=204,
    summary="Methods allowed on the items",
    responses=ALLOW_DOC,
)
async def items_options(collectionId: CollectionId, principal: OptionalPrincipal) -> Response:
    _check_collection(collectionId)
    return Response(status_code=204, headers={"Allow": _allow(principal, "POST")})


@router.options(
    "/collections/{collectionId}/items/{featureId}",
    status_code=204,
    summary="Methods allowed on a feature",
    responses=ALLOW_DOC,
)
async def item_options(
    collectionId: CollectionId, featureId: str, principal: OptionalPrincipal
) -> Response:
    _check_collection(collectionId)
    allowed = _allow(principal, "PUT", "PATCH", "DELETE")
    return Response(status_code=204, headers={"Allow": allowed})


async def _saved(
    request: Request, conn: asyncpg.Connection, feature_id: int, status: int
) -> Response:
    version, doc = await _feature(conn, feature_id)
    headers = {"ETag": etag(version)}
    if status == 201:
        headers["Location"] = _feature_links(request, feature_id)
    return Response(doc, status_code=status, media_type=GEOJSON, headers=headers)


@router.post(
    "/collections/{collectionId}/items",
    status_code=201,
    summary="Create an incident from a GeoJSON Feature",
    responses={201: {"description": "Created; `Location` names the new feature"}},
    openapi_extra=FEATURE_BODY,
)
async def create(
    request: Request, conn: WriteConn, collectionId: CollectionId, principal: Writer
) -> Response:
    _check_collection(collectionId)
    _only(request)
    incident = features.incident_from_feature(features.read_body(await request.body()))
    new_id, _, _ = await incidents.create_incident(
        conn, incident=await enrich(conn, incident), changed_by=principal.name
    )
    return await _saved(request, conn, new_id, 201)


@dataclass
class FeatureEdit:
    """What changing one feature takes, parsed once for PUT, PATCH and DELETE."""

    request: Request
    conn: asyncpg.Connection
    feature_id: int
    versions: set[int] | None
    who: str

    async def body(self) -> dict[str, Any]:
        return features.read_body(await self.request.body())

    async def save(self, patch: Any) -> Response:
        await incidents.update_incident(
            self.conn,
            incident_id=self.feature_id,
            patch=patch,
            if_match=self.versions,
            changed_by=self.who,
        )
        return await _saved(self.request, self.conn, self.feature_id, 200)


async def feature_edit(
    request: Request,
    conn: WriteConn,
    collectionId: CollectionId,
    featureId: IdPath,
    principal: Writer,
    if_match: IfMatch = None,
) -> FeatureEdit:
    _check_collection(collectionId)
    _only(request)
    return FeatureEdit(
        request,
        conn,
        parse_id(featureId, what="feature"),
        parse_if_match(if_match),
        principal.name,
    )


Edit = Annotated[FeatureEdit, Depends(feature_edit)]
EDITED: dict[int | str, dict[str, Any]] = {
    200: {"content": {GEOJSON: {}}},
    412: {"description": "Stale If-Match"},
}


@router.put(
    "/collections/{collectionId}/items/{featureId}",
    summary="Replace an incident with a GeoJSON Feature",
    responses=EDITED,
    openapi_extra=FEATURE_BODY,
)
async def replace(edit: Edit) -> Response:
    return await edit.save(features.replacement(await edit.body()))


@router.patch(
    "/collections/{collectionId}/items/{featureId}",
    summary="Update an incident with a JSON merge patch of its Feature",
    responses=EDITED,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/merge-patch+json": {"schema": {"type": "object"}}},
        }
    },
)
async def update(edit: Edit) -> Response:
    return await edit.save(features.merge_patch(await edit.body()))


@router.delete(
    "/collections/{collectionId}/items/{featureId}",
    status_code=204,
    summary="Delete an incident (kept in history)",
    responses={412: {"description": "Stale If-Match"}},
)
async def delete(edit: Edit) -> Response:
    await incidents.delete_incident(
        edit.conn, incident_id=edit.feature_id, if_match=edit.versions, changed_by=edit.who
    )
    return Response(status_code=204)


@router.get("/assets/features.js", include_in_schema=False)
async def features_script() -> FileResponse:
    return FileResponse(STATIC / "features.js", media_type="text/javascript")
