"""One error hierarchy, one table from error to HTTP status, one problem+json shape (RFC 9457)."""

from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("app.errors")

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://conflict-incidents.dev/problems/"


class ProblemError(Exception):
    """A failure a client can act on; its kind (the subclass) sets status, title and type
    (`PROBLEMS`)."""

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}

    @property
    def kind(self) -> tuple[int, str, str]:
        """(status, title, type slug) of the nearest kind in PROBLEMS."""
        for cls in type(self).__mro__:
            if cls in PROBLEMS:
                return PROBLEMS[cls]
        return PROBLEMS[BadRequest]

    @property
    def status(self) -> int:
        return self.kind[0]

    @property
    def title(self) -> str:
        return self.kind[1]

    @property
    def slug(self) -> str:
        return self.kind[2]


class BadRequest(ProblemError):
    """Malformed JSON, a cursor this server did not make, a bad header or parameter."""


class Unauthorized(ProblemError):
    """No key where one is needed, or an unknown or revoked key."""


class Forbidden(ProblemError):
    """The key is valid but lacks the scope, or the resource belongs to another key."""


class NotFound(ProblemError):
    """No such incident, place, area or subscription; an unknown place name."""


class Gone(ProblemError):
    """An incident asked for `as_of` an instant when it had been deleted."""


class RequestTimeout(ProblemError):
    """A client that stopped sending its body."""


class Conflict(ProblemError):
    """A duplicate `external_id` or area name."""


class PreconditionFailed(ProblemError):
    """`If-Match` names a version that is no longer current."""


class PayloadTooLarge(ProblemError):
    """A body over MAX_BODY_BYTES (MAX_BULK_BODY_BYTES for bulk uploads)."""


class UnsupportedMediaType(ProblemError):
    """A body in a media type the endpoint does not read."""


class Unprocessable(ProblemError):
    """Well-formed but invalid; `errors` names each bad field."""


class TooManyRequests(ProblemError):
    """Over the rate limit; `Retry-After` says when to come back."""


class ServiceUnavailable(ProblemError):
    """The database is down or the pool exhausted; `Retry-After` says when to retry."""


# The one table from a kind of problem to its HTTP status, title and type (RFC 9457).
PROBLEMS: dict[type[ProblemError], tuple[int, str, str]] = {
    BadRequest: (400, "Bad request", "bad-request"),
    Unauthorized: (401, "Unauthorized", "unauthorized"),
    Forbidden: (403, "Forbidden", "forbidden"),
    NotFound: (404, "Not found", "not-found"),
    Gone: (410, "Gone", "gone"),
    RequestTimeout: (408, "Request timeout", "request-timeout"),
    Conflict: (409, "Conflict", "conflict"),
    PreconditionFailed: (412, "Precondition failed", "precondition-failed"),
    PayloadTooLarge: (413, "Payload too large", "payload-too-large"),
    UnsupportedMediaType: (415, "Unsupported media type", "unsupported-media-type"),
    Unprocessable: (422, "Validation failed", "validation"),
    TooManyRequests: (429, "Too many requests", "rate-limited"),
    ServiceUnavailable: (503, "Service unavailable", "unavailable"),
}


def field_error(field: str, message: str, value: Any = None) -> dict[str, Any]:
    """One entry of a problem's `errors` list."""
    entry: dict[str, Any] = {"field": field, "message": message}
    if value is not None:
        entry["value"] = value
    return entry


def invalid(field: str, message: str, value: Any = None) -> Unprocessable:
    """A 422 naming one bad field."""
    return Unprocessable(f"{field}: {message}", errors=[field_error(field, message, value)])


def dumps(obj: Any) -> bytes:
    """JSON bytes; falls back to the stdlib for what orjson refuses (integers beyond 64 bits
    sent by a client, echoed back in an error)."""
    try:
        return orjson.dumps(obj, default=str)
    except TypeError:
        return json.dumps(obj, default=str).encode()


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": TYPE_BASE + (slug or str(status)),
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return Response(
        content=dumps(body),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


def _loc_to_field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _safe_value(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value if not isinstance(value, str) or len(value) <= 200 else value[:200]
    return None


def validation_errors(raw: list[Any]) -> list[dict[str, Any]]:
    """Pydantic's error list, reduced to {field, message[, value]} per bad field."""
    out: list[dict[str, Any]] = []
    for err in raw:
        loc = err.get("loc", ())
        ctx_error = (err.get("ctx") or {}).get("error")
        nested = getattr(ctx_error, "field_errors", None)
        if nested:
            # A model validator's cross-field errors, each naming its own field.
            base = _loc_to_field(loc)
            for field, message in nested:
                name = field if base == "body" else f"{base}.{field}"
                out.append({"field": name, "message": message})
            continue
        msg = str(err.get("msg", "invalid"))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        entry = {"field": _loc_to_field(loc), "message": msg}
        value = _safe_value(err.get("input"))
        if value is not None and err.get("type") != "missing":
            entry["value"] = value
        out.append(entry)
    return out


def _is_db_unavailable(exc: BaseException) -> bool:
    unavailable = (
        OSError,
        ConnectionError,
        asyncpg.exceptions.CannotConnectNowError,
        asyncpg.exceptions.ConnectionDoesNotExistError,
        asyncpg.exceptions.InterfaceError,
        asyncpg.exceptions.AdminShutdownError,
        asyncpg.exceptions.TooManyConnectionsError,
        TimeoutError,
    )
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            break
        if isinstance(seen, (*unavailable, OperationalError, InterfaceError)):
            return True
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _find_cause(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """The first exception of `kind` in a chain (SQLAlchemy wraps asyncpg's errors)."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return None
        if isinstance(seen, kind):
            return seen
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return None


def _is_statement_timeout(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            break
        if isinstance(seen, asyncpg.exceptions.QueryCanceledError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def problem_of(exc: ProblemError) -> Response:
    """The problem+json response for `exc` (its kind's status, title and type)."""
    return problem_response(
        exc.status,
        exc.title,
        exc.detail,
        slug=exc.slug,
        errors=exc.errors,
        headers=exc.headers,
        extra=exc.extra,
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> Response:
        return problem_of(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> Response:
        raw = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in raw):
            return problem_response(
                400,
                "Malformed JSON",
                "The request body is not valid JSON.",
                slug="malformed-json",
                errors=[{"field": "body", "message": "invalid JSON"}],
            )
        errors = validation_errors(raw)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem_response(422, "Validation failed", detail, slug="validation", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> Response:
        titles = {404: "Not found", 405: "Method not allowed", 400: "Bad request"}
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed"
        return problem_response(
            exc.status_code,
            titles.get(exc.status_code, "Error"),
            detail,
            headers=getattr(exc, "headers", None),
        )

    def _data_problem(exc: BaseException) -> Response:
        # e.g. a NUL character or a number PostgreSQL cannot hold: the input, not the server.
        return problem_response(
            422,
            "Validation failed",
            "A value could not be stored or compared (for instance it contains a NUL "
            "character or is out of range).",
            slug="validation",
            errors=[{"field": "request", "message": type(exc).__name__}],
        )

    @app.exception_handler(asyncpg.exceptions.DataError)
    async def _data(_: Request, exc: asyncpg.exceptions.DataError) -> Response:
        return _data_problem(exc)

    async def _unexpected(request: Request, exc: Exception) -> Response:
        data_error = _find_cause(exc, asyncpg.exceptions.DataError)
        if data_error is not None:
            return _data_problem(data_error)
        if _is_statement_timeout(exc):
            return problem_response(
                503,
                "Query timed out",
                "The query took longer than the statement timeout; narrow the filters.",
                slug="query-timeout",
                headers={"Retry-After": "1"},
            )
        if _is_db_unavailable(exc):
            return problem_response(
                503,
                "Service unavailable",
                "The database is unavailable; retry shortly.",
                slug="unavailable",
                headers={"Retry-After": "2"},
            )
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "Internal error", "An unexpected error occurred.")

    # Database and network errors are classified (422 bad value, 503 unavailable or timed
    # out) by handlers of their own, so they never reach the generic 500 path; anything else
    # still gets a problem body without details.
    for kind in (
        DBAPIError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        OSError,
        TimeoutError,
        Exception,
    ):
        app.add_exception_handler(kind, _unexpected)


class FieldProblem(BaseModel):
    field: str
    message: str
    value: Any = None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] | None = None


def problem_doc(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "model": Problem,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }


# Documented on every /v1 route: any of them can answer these.
COMMON_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: problem_doc("Malformed request (bad JSON, bad cursor, bad header)"),
    401: problem_doc("No key, or an unknown or revoked key"),
    403: problem_doc("The key lacks the scope this request needs"),
    404: problem_doc("Not found"),
    413: problem_doc("Body too large"),
    415: problem_doc("Body is not in a supported media type"),
    422: problem_doc("Invalid input; `errors` names each bad field"),
    429: problem_doc("Rate limited; see Retry-After"),
    503: problem_doc(
        "Database unavailable, query timed out, or the server at capacity; see Retry-After"
    ),
}
