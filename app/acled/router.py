"""An ACLED-compatible read API at /api: ACLED's clients, pointed at this server, read our
incidents with their existing code (PyPI `acled`: `ACLED_API_HOST=http://HOST:PORT/api`).

The shared search in ACLED's shape: ACLED's URLs, filters, paging, envelope and error envelope
(`{"status": N, "success": false, "error": [{"status": N, "message": ...}]}` with HTTP status
N, never a 500).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute

from app.acled import filters, lookups, service
from app.auth.deps import key_guard
from app.core.deps import DbDep, ReadConn
from app.core.errors import ProblemError, validation_errors
from app.core.pagination import fragments, json_body

JSON = "application/json"
CSV = "text/csv; charset=utf-8"
CSV_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}}
}


def acled_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {
        "status": status,
        "success": False,
        "count": 0,
        "messages": [],
        "data": [],
        "error": [{"status": status, "message": message}],
    }
    return Response(json_body(body), status_code=status, media_type=JSON, headers=headers)


class AcledRoute(APIRoute):
    """Errors in ACLED's envelope: a problem keeps its status and message; invalid
    parameters are a 400; a failure of the database a 503."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ProblemError as exc:
                message = exc.detail
                if exc.errors:
                    message = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors[:5])
                status = 400 if exc.status == 422 else exc.status
                return acled_error(status, message, exc.headers)
            except RequestValidationError as exc:
                errors = validation_errors(list(exc.errors()))
                return acled_error(
                    400, "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
                )

        return handle


ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "status": {"type": "integer"},
        "success": {"type": "boolean"},
        "error": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"status": {"type": "integer"}, "message": {"type": "string"}},
            },
        },
    },
}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": description, "content": {JSON: {"schema": ERROR_SCHEMA}}}
    for code, description in (
        (400, "A bad filter, operator or parameter, named in the message"),
        (401, "An unknown or revoked key"),
        (403, "The key lacks the read scope"),
        (404, "No such path"),
        (429, "Rate limited; see Retry-After"),
        (503, "Database unavailable or query timed out; see Retry-After"),
    )
}

router = APIRouter(
    prefix="/api",
    tags=["ACLED-compatible API"],
    route_class=AcledRoute,
    dependencies=[Depends(key_guard)],
    responses=ERRORS,
)

Email = Annotated[str | None, Query(max_length=300, description="Accepted, not checked")]
Limit = Annotated[
    int | None,
    Query(ge=0, le=service.MAX_LIMIT, description="Rows per page (default 5000); 0 = all rows"),
]
Page = Annotated[int, Query(ge=1, le=1_000_000, description="1-based page")]
Fields = Annotated[str | None, Query(max_length=2000, description="Columns: `a|b|c`")]
Format = Annotated[str | None, Query(alias="_format", pattern="^(json|csv)$")]
InterNum = Annotated[int | None, Query(ge=0, le=1, description="0: actor types as ACLED's labels")]
WithTotal = Annotated[bool, Query(description="Also count every matching row (`total_count`)")]

READ_DOC = """ACLED events. Filters: any column (`country=Iraq`, `event_type=Battles`,
`event_id_cnty=IRQ12001`, `year=2020`, `fatalities=0`); `a|b` means a or b;
`<column>_where` sets the operator (`=` default, text case-insensitive; `LIKE` a
case-insensitive substring; `>`, `<`, `>=`, `<=`; `BETWEEN` with `low|high`);
`column=v:OR:other=w` ORs two columns; `timestamp` (Unix seconds or a date) = changed since.
Extensions: `near` + `radius_km` (+ `match`), `bbox`, `within` and `as_of` (the events as
they stood at that instant; echoed as `as_of`) as on /v1. `fields=a|b|c`; `limit` (default
5000, `0` = all rows, streamed) and 1-based `page` in storage order (stable while others
write)."""


def output_format(request: Request, fmt: str | None) -> str:
    if request.url.path.endswith(".csv"):
        return "csv"
    return fmt or request.query_params.get("format") or "json"


def _filename(query: filters.AcledQuery) -> str:
    start = query.values.get("start")
    end = query.values.get("end")
    place = query.values.get("country", "all").replace(",", "-")
    day = dt.date.today().isoformat()
    return f"{start or 'start'}-{end or day}-{place}"


@dataclass
class Rows:
    """Which rows and how, as every ACLED read asks: `limit`, `page`, `_format` (`email` is
    accepted and not checked)."""

    limit: int
    page: int
    csv: bool


async def rows_wanted(
    request: Request,
    email: Email = None,
    limit: Limit = None,
    page: Page = 1,
    _format: Format = None,
) -> Rows:
    csv = output_format(request, _format) == "csv"
    return Rows(service.DEFAULT_LIMIT if limit is None else limit, page, csv)


RowsDep = Annotated[Rows, Depends(rows_wanted)]


async def events(
    request: Request,
    conn: ReadConn,
    db: DbDep,
    wanted: RowsDep,
    fields: Fields = None,
    inter_num: InterNum = None,
    with_total: WithTotal = False,
) -> Response:
    query = filters.parse_query(request.query_params)
    names = service.fields_of(fields)
    labels = inter_num == 0
    csv, size, page = wanted.csv, wanted.limit, wanted.page
    f = await service.search_filter(conn, query)
    if size == 0:
        return await _everything(db, f, names, labels, csv, query, await service.last_update(conn))
    key = service.fingerprint(query, names, size)
    rows = await service.read_page(
        conn, f, names=names, labels=labels, key=key, page=page, limit=size, csv=csv
    )
    if csv:
        return Response(service.csv_text(rows, names, header=True), media_type=CSV)
    body: dict[str, Any] = {
        "status": 200,
        "success": True,
        "last_update": await service.last_update(conn),
        "count": len(rows),
        "messages": [],
        "data": fragments(rows),
        "filename": _filename(query),
    }
    if f.raw.as_of is not None:
        body["as_of"] = f.as_of_meta()
    if with_total:
        body["total_count"] = await service.total(conn, f)
    return Response(json_body(body), media_type=JSON)


async def _everything(
    db: Any, f: Any, names: list[str], labels: bool, csv: bool, query: Any, hours: int
) -> Response:
    """`limit=0`: every row, streamed in constant memory (JSON's `count` comes last)."""

    async def chunks() -> AsyncIterator[bytes]:
        count = 0
        if csv:
            yield service.csv_text([], names, header=True).encode()
        else:
            head = {"status": 200, "success": True, "last_update": hours, "messages": []}
            yield json_body(head)[:-1] + b',"data":['
        async for batch in service.stream_rows(db, f, names=names, labels=labels, csv=csv):
            if csv:
                yield service.csv_text(batch, names, header=False).encode()
            else:
                docs = ",".join(str(r["doc"]) for r in batch)
                yield (b"," if count else b"") + docs.encode()
            count += len(batch)
        if not csv:
            tail = orjson.dumps({"count": count, "filename": _filename(query)})
            yield b"]," + tail[1:]

    return StreamingResponse(chunks(), media_type=CSV if csv else JSON)


for path in ("/acled/read", "/acled/read.csv", "/acled/read/"):
    router.add_api_route(
        path,
        events,
        methods=["GET"],
        summary="ACLED events" + (" (CSV)" if path.endswith(".csv") else ""),
        description=READ_DOC,
        include_in_schema=not path.endswith("/"),
        responses=CSV_DOC,
    )


async def _lookup(
    request: Request, conn: Any, rows: list[dict[str, Any]], csv: bool, names: list[str]
) -> Response:
    if csv:
        table = [[row.get(n, "") for n in names] for row in rows]
        return Response(service.csv_text(table, names, header=True), media_type=CSV)
    body = {
        "status": 200,
        "success": True,
        "last_update": await service.last_update(conn),
        "count": len(rows),
        "messages": [],
        "data": rows,
        "filename": request.url.path.strip("/").replace("/", "-"),
    }
    return Response(json_body(body), media_type=JSON)


def _lookup_route(path: str, kind: str, summary: str) -> None:
    async def read(request: Request, conn: ReadConn, wanted: RowsDep) -> Response:
        rows = await lookups.lookup(
            conn, kind, request.query_params, limit=wanted.limit, page=wanted.page
        )
        return await _lookup(request, conn, rows, wanted.csv, lookups.COLUMNS[kind])

    router.add_api_route(
        path,
        read,
        methods=["GET"],
        summary=summary,
        description=lookups.DOCS[kind],
        responses=CSV_DOC,
    )


_lookup_route("/deleted/read", "deleted", "Deleted events: event_id_cnty, deleted_timestamp")
_lookup_route("/actor/read", "actor", "Actors: name, first and last event date, event count")
_lookup_route("/country/read", "country", "Countries: name, iso, iso3, first/last event, count")
_lookup_route("/actortype/read", "actortype", "Actor types (ACLED's inter codes) with counts")
_lookup_route("/region/read", "region", "ACLED regions with counts")


@router.get("", summary="The ACLED-compatible API is here", include_in_schema=False)
@router.get("/", summary="The ACLED-compatible API is here", include_in_schema=False)
async def ping() -> Response:
    return Response(json_body({"status": 200, "success": True, "messages": []}), media_type=JSON)
