"""The query parameters of `/ogc/collections/incidents/items`, parsed into the shared search.

OGC API - Features says a bad parameter is a 400 and an unknown one too: every parameter is
read here as text and checked here (not by the framework, whose errors are 422s), each problem
naming its parameter. What maps onto the search filter goes there (`datetime` → dates on
`event_date`, `bbox` → envelopes, our `near`/`actor`/`within`/`q`/... as on /v1, simple
queryables with a /v1 filter of the same name); the rest (other simple queryables, `filter`)
becomes SQL conditions.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import BadRequest, Unprocessable, field_error
from app.incidents.fields import Kind
from app.ogc import cql
from app.search.params import BY_NAME as SEARCH_PARAMS
from app.search.params import build_raw_filter
from app.search.query import Params

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CRS84_ALIASES = {CRS84, "http://www.opengis.net/def/crs/OGC/1.3/CRS84h", "CRS84"}
DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000

# Our own search parameters that also work on /items (the OGC ones replace bbox and dates).
EXTRA_SEARCH = tuple(name for name in SEARCH_PARAMS if name not in ("bbox", "start", "end"))
# Simple queryables: `property=value`, equality (parameters of the same name above win).
SIMPLE = tuple(name for name in cql.QUERYABLES if name not in SEARCH_PARAMS)
OGC = ("bbox", "bbox-crs", "crs", "datetime", "limit", "filter", "filter-lang", "filter-crs")
OWN = ("f", "cursor")
KNOWN = frozenset((*OGC, *OWN, *EXTRA_SEARCH, *SIMPLE))

_INSTANT = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](.*))?$")


def bad(parameter: str, message: str, value: Any = None) -> BadRequest:
    return BadRequest(f"{parameter}: {message}", errors=[field_error(parameter, message, value)])


@dataclass
class ItemsQuery:
    values: dict[str, Any]  # search parameters for build_raw_filter
    conditions: list[Callable[[Params], str]] = field(default_factory=list)
    described: dict[str, Any] = field(default_factory=dict)
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None
    fingerprint: str = ""


def parse_items_query(query: Mapping[str, str], keys: list[str]) -> ItemsQuery:
    """`query`: the query string (last value of each key); `keys`: every key sent, repeats
    included."""
    unknown = sorted({k for k in keys if k not in KNOWN})
    if unknown:
        raise BadRequest(
            f"{unknown[0]}: unknown parameter; see /ogc/api",
            errors=[field_error(k, "unknown parameter") for k in unknown],
        )
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise bad(repeated[0], "given more than once")
    out = ItemsQuery(values={})
    for crs_param in ("bbox-crs", "crs", "filter-crs"):
        if crs_param in query and query[crs_param].strip("<>") not in CRS84_ALIASES:
            raise bad(crs_param, f"only {CRS84} is supported", query[crs_param])
    out.limit = parse_limit(query.get("limit"))
    out.cursor = query.get("cursor") or None
    if "bbox" in query:
        out.values["bbox"] = parse_bbox(query["bbox"])
    if "datetime" in query:
        start, end = parse_datetime(query["datetime"])
        if start is not None:
            out.values["start"] = start
        if end is not None:
            out.values["end"] = end
        out.described["datetime"] = query["datetime"]
    for name in EXTRA_SEARCH:
        if name in query:
            out.values[name] = query[name]
    for name in SIMPLE:
        if name in query:
            out.conditions.append(_equals(name, query[name]))
            out.described[name] = query[name]
    if "filter" in query:
        lang = query.get("filter-lang", "cql2-text")
        tree = cql.parse(query["filter"], lang)
        cql.translate(tree, Params())  # checked now: a bad filter is a 400 before any query
        out.conditions.append(lambda p: cql.translate(tree, p))
        out.described["filter"] = query["filter"]
    elif "filter-lang" in query:
        cql.parse("true", query["filter-lang"])  # an unsupported language is still a 400
    # Ties a cursor to its query: everything but the paging itself.
    basis = sorted((k, v) for k, v in query.items() if k not in ("cursor", "limit", "f"))
    out.fingerprint = hashlib.sha256(repr(basis).encode()).hexdigest()[:16]
    return out


def parse_as_of(text: str | None) -> dt.datetime | None:
    """`as_of` on one feature (on /items it is a search parameter like the others), read as
    the search reads it; a problem is OGC's 400."""
    if text is None:
        return None
    try:
        return build_raw_filter({"as_of": text}).as_of
    except Unprocessable as exc:
        raise bad("as_of", exc.detail.removeprefix("as_of: "), text[:50]) from exc


def parse_limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not text.strip().isdigit():
        raise bad("limit", "must be an integer", text[:50])
    limit = int(text)
    if not 1 <= limit <= MAX_LIMIT:
        raise bad("limit", f"must be between 1 and {MAX_LIMIT}", limit)
    return limit


def parse_bbox(text: str) -> str:
    """`minLon,minLat,maxLon,maxLat` (or with heights, 6 numbers) in CRS84, returned in the
    4-number form the search takes; minLon > maxLon crosses the antimeridian."""
    parts = text.split(",")
    try:
        numbers = [float(p) for p in parts]
    except ValueError as exc:
        raise bad("bbox", "expected 4 or 6 comma-separated numbers", text[:100]) from exc
    if len(numbers) == 6:
        numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
    elif len(numbers) != 4:
        raise bad("bbox", "expected 4 or 6 comma-separated numbers", text[:100])
    if any(n != n or abs(n) == float("inf") for n in numbers):
        raise bad("bbox", "numbers must be finite", text[:100])
    lon0, lat0, lon1, lat1 = numbers
    if not (-180 <= lon0 <= 180 and -180 <= lon1 <= 180 and -90 <= lat0 <= lat1 <= 90):
        raise bad(
            "bbox",
            "out of range: longitudes in [-180, 180], latitudes ascending in [-90, 90]",
            text[:100],
        )
    return ",".join(repr(n) for n in numbers)


def parse_datetime(text: str) -> tuple[dt.date | None, dt.date | None]:
    """An RFC 3339 date or date-time, or an interval `start/end` with `..` (or nothing) for an
    open end, as inclusive days of `event_date`. Bounds beyond the calendar (QGIS sends years
    0000 and 9999) are open."""
    if "/" in text:
        parts = text.split("/")
        if len(parts) != 2:
            raise bad("datetime", "an instant or start/end", text[:100])
        start, end = (_instant(p, text) for p in parts)
        if start is not None and end is not None and end < start:
            raise bad("datetime", "the interval ends before it starts", text[:100])
        return start, end
    day = _instant(text, text)
    if day is None:
        raise bad("datetime", "an instant or start/end", text[:100])
    return day, day


def _instant(part: str, whole: str) -> dt.date | None:
    part = part.strip()
    if part in ("", ".."):
        return None
    match = _INSTANT.match(part)
    if not match:
        raise bad("datetime", "not an RFC 3339 date or date-time", whole[:100])
    year, month, day = (int(g) for g in match.groups()[:3])
    rest = match.group(4)
    if rest and not re.match(r"^\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|z|[+-]\d{2}:\d{2})?$", rest):
        raise bad("datetime", "not an RFC 3339 date-time", whole[:100])
    if year < 1 or year > 9998:
        return None  # a placeholder for "no bound"
    try:
        return dt.date(year, month, day)
    except ValueError as exc:
        raise bad("datetime", "not a calendar date", whole[:100]) from exc


def _equals(name: str, text: str) -> Callable[[Params], str]:
    """`property=value` as a condition: the value read as the property's type."""
    field_ = cql.QUERYABLES[name]
    value: Any = text
    try:
        if field_.kind is Kind.integer:
            value = int(text)
        elif field_.kind is Kind.number:
            value = float(text)
        elif field_.kind is Kind.boolean:
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            value = text.lower() == "true"
        elif field_.kind is Kind.date:
            value = dt.date.fromisoformat(text)
        elif field_.kind is Kind.datetime:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise bad(name, f"expected a {field_.kind.value}", text[:100]) from exc
    return lambda p: f"({field_.sql} = {p.add(value)})"


def raw_filter(items: ItemsQuery) -> Any:
    return build_raw_filter(items.values)
