"""The field registry: every column of an incident, declared once.

Each `IncidentField` says what the column is in PostgreSQL, in JSON, in ACLED's vocabulary, in
CSV, how a client writes it and how it can be filtered. Everything else is derived from
`FIELDS`: the incident JSON built in SQL (`app.incidents.sql`), the create/patch/output models
(`app.incidents.schemas`), the CSV columns (`app.search.formats`), the bulk staging table and
upsert (`app.incidents.importers.pipeline`), the ACLED row mapping (`...importers.mappings`),
the search parameters (`app.search.params`) and the OGC queryables.

Adding a field: one `IncidentField(...)` line here plus a migration adding the column.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, HttpUrl

from app.core.config import MAX_UNCERTAINTY_KM
from app.incidents.uncertainty import effective_sql
from app.taxonomy.data import (
    DISORDER_TYPES,
    EVENT_TYPES,
    SUB_EVENT_TO_EVENT,
    canonical_disorder_type,
    canonical_event_type,
)

EARLIEST = dt.date(1800, 1, 1)
LATEST = dt.date(2200, 12, 31)


class Kind(enum.StrEnum):
    """How a value travels: its JSON Schema type/format and how text input is parsed."""

    text = "text"
    integer = "integer"
    number = "number"
    boolean = "boolean"
    date = "date"
    datetime = "datetime"
    tags = "tags"  # a list of strings
    sources = "sources"  # a list of {name, url, published}
    ids = "ids"  # a list of incident ids


class Filter(enum.StrEnum):
    """How `/v1` search filters on a field (the parameter is named after the field unless the
    kind says otherwise)."""

    values = "values"  # `field=a,b`: exact (canonical) values, comma-separated
    taxonomy = "taxonomy"  # like values, checked against the event taxonomy
    names = "names"  # `field=a,b`: case- and accent-insensitive names
    country = "country"  # `country=`: a name, alpha-2 or alpha-3
    dates = "dates"  # `start` / `end`, inclusive
    minimum = "minimum"  # `min_<field>`
    actor = "actor"  # `actor=`: any actor field, with known aliases
    text = "text"  # `q=`: full-text search


@dataclass(frozen=True)
class IncidentField:
    name: str
    kind: Kind
    sql_type: str  # the column's type (also the staging table's, for writable fields)
    description: str = ""
    select: str | None = None  # SQL for the value (alias `i`); default `i.<name>`
    column: bool = True  # stored in `incidents` under its name (geometry parts are not)
    in_json: bool = True  # part of the incident JSON
    write: Literal["required", "optional"] | None = None  # how a client writes it
    default: Any = None  # the value when a create leaves it out
    annotation: Any = None  # pydantic type for input (constraints included)
    acled: str | None = None  # ACLED's column name, when ACLED has the same field
    csv: bool = True  # a column of CSV exports: ACLED's first, then ours, in registry order
    csv_select: str | None = None  # SQL for the CSV cell, when not `select`
    filter: Filter | None = None
    queryable: bool = False  # OGC API queryable / ACLED-API filter
    nullable: bool = True  # may be null in output

    @property
    def sql(self) -> str:
        return self.select or f"i.{self.name}"

    @property
    def csv_sql(self) -> str:
        return self.csv_select or self.sql

    @property
    def csv_name(self) -> str:
        return self.acled or self.name


def _event_type(value: str) -> str:
    canonical = canonical_event_type(value)
    if canonical is None:
        raise ValueError(f"unknown event_type; one of: {', '.join(EVENT_TYPES)}")
    return canonical


def _disorder_type(value: str) -> str:
    canonical = canonical_disorder_type(value)
    if canonical is None:
        raise ValueError("unknown disorder_type; see GET /v1/taxonomy")
    return canonical


def _date_range(value: dt.date) -> dt.date:
    if not EARLIEST <= value <= LATEST:
        raise ValueError(f"date must be between {EARLIEST} and {LATEST}")
    return value


def _upper(value: str) -> str:
    return value.upper()


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class SourceRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=500)]
    url: HttpUrl | None = None
    published: dt.date | None = None


ShortText = Annotated[str, Field(max_length=500)]
Count = Annotated[int, Field(ge=0, le=10_000_000)]
Precision = Literal[1, 2, 3]
UncertaintyKm = Annotated[float, Field(ge=0, le=MAX_UNCERTAINTY_KM)]
EventDate = Annotated[dt.date, AfterValidator(_date_range)]
TagList = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=100)]],
    Field(max_length=100),
    AfterValidator(_dedupe),
]
SourceList = Annotated[list[SourceRef], Field(max_length=100)]


def _actor(name: str, description: str) -> IncidentField:
    """One of ACLED's four actor fields (same name in ACLED), all searched by `actor`."""
    return IncidentField(
        name,
        Kind.text,
        "text",
        description + "; searched by `actor` with known aliases",
        write="optional",
        annotation=ShortText,
        acled=name,
        filter=Filter.actor,
        queryable=True,
    )


ExternalId = Annotated[str, Field(min_length=1, max_length=200)]
DisorderType = Annotated[
    str,
    Field(max_length=500, json_schema_extra={"enum": list(DISORDER_TYPES)}),
    AfterValidator(_disorder_type),
]
EventType = Annotated[
    str,
    Field(max_length=500, json_schema_extra={"enum": list(EVENT_TYPES)}),
    AfterValidator(_event_type),
]
# Checked against its event type by the model (app.incidents.schemas).
SubEventType = Annotated[
    str, Field(max_length=500, json_schema_extra={"enum": list(SUB_EVENT_TO_EVENT)})
]
CountryCode = Annotated[str, Field(pattern=r"^[A-Za-z]{2,3}$"), AfterValidator(_upper)]
Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]
SourceText = Annotated[str, Field(max_length=2000)]
Notes = Annotated[str, Field(max_length=50_000)]
_CIVILIAN_CSV = "CASE WHEN i.civilian_targeting THEN 'Civilian targeting' ELSE '' END"
_DUPLICATES = (
    "Ids of incidents within 2 km and 1 day, same event type, a shared actor, found when this "
    "one was ingested; flagged, never merged"
)
Q = True  # queryable (OGC API, ACLED API)

# ACLED's actor types ("inter" codes); files may carry the labels instead of the numbers.
INTER_LABELS = {
    0: "",
    1: "State forces",
    2: "Rebel group",
    3: "Political militia",
    4: "Identity militia",
    5: "Rioters",
    6: "Protesters",
    7: "Civilians",
    8: "External/Other forces",
}
_INTER_BY_LABEL = {label.lower(): code for code, label in INTER_LABELS.items() if label}
_INTER_DOC = ", ".join(f"{code} {label}" for code, label in INTER_LABELS.items() if code)


def _inter_code(value: Any) -> Any:
    """An ACLED actor type as its code: `2`, `"2"` or `"Rebel group"`."""
    if isinstance(value, str) and value.strip().lower() in _INTER_BY_LABEL:
        return _INTER_BY_LABEL[value.strip().lower()]
    return value


InterCode = Annotated[int, Field(ge=0, le=8), BeforeValidator(_inter_code)]

# One line per field. Order: JSON order; CSV has ACLED's columns first, then ours.
FIELDS: tuple[IncidentField, ...] = (
    IncidentField(
        "id",
        Kind.text,
        "bigint",
        "Server-assigned, opaque, stable",
        select="i.id::text",
        nullable=False,
    ),
    IncidentField(
        "external_id",
        Kind.text,
        "text",
        "Id in the source system (ACLED event_id_cnty, UCDP id); unique when set",
        write="optional",
        annotation=ExternalId,
        acled="event_id_cnty",
        queryable=Q,
    ),
    IncidentField(
        "event_date",
        Kind.date,
        "date",
        "Day the event happened (or began)",
        write="required",
        annotation=EventDate,
        acled="event_date",
        filter=Filter.dates,
        queryable=Q,
        nullable=False,
    ),
    IncidentField(
        "event_date_end",
        Kind.date,
        "date",
        "Last day of a multi-day event",
        write="optional",
        annotation=EventDate,
        queryable=Q,
    ),
    IncidentField(
        "year",
        Kind.integer,
        "integer",
        "Year of event_date",
        select="extract(year FROM i.event_date)::int",
        column=False,
        in_json=False,
        acled="year",
    ),
    IncidentField(
        "time_precision",
        Kind.integer,
        "smallint",
        "1 day, 2 week, 3 month (ACLED)",
        write="optional",
        default=1,
        annotation=Precision,
        acled="time_precision",
        queryable=Q,
        nullable=False,
    ),
    IncidentField(
        "disorder_type",
        Kind.text,
        "text",
        "ACLED disorder type; derived from event_type",
        write="optional",
        annotation=DisorderType,
        acled="disorder_type",
        filter=Filter.taxonomy,
        queryable=Q,
    ),
    IncidentField(
        "event_type",
        Kind.text,
        "text",
        "ACLED event type (GET /v1/taxonomy)",
        write="required",
        annotation=EventType,
        acled="event_type",
        filter=Filter.taxonomy,
        queryable=Q,
        nullable=False,
    ),
    IncidentField(
        "sub_event_type",
        Kind.text,
        "text",
        "ACLED sub-event type of the event type",
        write="optional",
        annotation=SubEventType,
        acled="sub_event_type",
        filter=Filter.taxonomy,
        queryable=Q,
    ),
    _actor("actor1", "Main actor"),
    _actor("assoc_actor_1", "Associated with actor1"),
    IncidentField(
        "inter1",
        Kind.integer,
        "smallint",
        "ACLED actor type of actor1: " + _INTER_DOC,
        write="optional",
        annotation=InterCode,
        acled="inter1",
        queryable=Q,
    ),
    _actor("actor2", "Other main actor"),
    _actor("assoc_actor_2", "Associated with actor2"),
    IncidentField(
        "inter2",
        Kind.integer,
        "smallint",
        "ACLED actor type of actor2 (0: none)",
        write="optional",
        annotation=InterCode,
        acled="inter2",
        queryable=Q,
    ),
    IncidentField(
        "civilian_targeting",
        Kind.boolean,
        "boolean",
        "Civilians were the target",
        write="optional",
        default=False,
        annotation=bool,
        acled="civilian_targeting",
        csv_select=_CIVILIAN_CSV,
        queryable=Q,
        nullable=False,
    ),
    IncidentField(
        "country_code",
        Kind.text,
        "text",
        "ISO 3166-1 alpha-3; from the point when not given",
        write="optional",
        annotation=CountryCode,
        acled="iso3",
        queryable=Q,
    ),
    IncidentField(
        "country",
        Kind.text,
        "text",
        "Country name; from the point when not given",
        write="optional",
        annotation=ShortText,
        acled="country",
        filter=Filter.country,
        queryable=Q,
    ),
    IncidentField(
        "admin1",
        Kind.text,
        "text",
        "First-level division (governorate, province)",
        write="optional",
        annotation=ShortText,
        acled="admin1",
        filter=Filter.names,
        queryable=Q,
    ),
    IncidentField(
        "admin2",
        Kind.text,
        "text",
        "Second-level division (district)",
        write="optional",
        annotation=ShortText,
        acled="admin2",
        filter=Filter.names,
        queryable=Q,
    ),
    IncidentField(
        "admin3",
        Kind.text,
        "text",
        "Third-level division",
        write="optional",
        annotation=ShortText,
        acled="admin3",
        queryable=Q,
    ),
    IncidentField(
        "location",
        Kind.text,
        "text",
        "Place name (resolved through the gazetteer when alone)",
        write="optional",
        annotation=ShortText,
        acled="location",
        queryable=Q,
    ),
    IncidentField(
        "latitude",
        Kind.number,
        "float8",
        "WGS84 latitude, degrees",
        select="ST_Y(i.geom)",
        column=False,
        write="optional",
        annotation=Latitude,
        acled="latitude",
        nullable=False,
    ),
    IncidentField(
        "longitude",
        Kind.number,
        "float8",
        "WGS84 longitude, degrees",
        select="ST_X(i.geom)",
        column=False,
        write="optional",
        annotation=Longitude,
        acled="longitude",
        nullable=False,
    ),
    IncidentField(
        "geo_precision",
        Kind.integer,
        "smallint",
        "1 exact, 2 near, 3 region (ACLED)",
        write="optional",
        annotation=Precision,
        acled="geo_precision",
        queryable=Q,
    ),
    IncidentField(
        "uncertainty_km",
        Kind.number,
        "real",
        "How far from its point the incident may have happened, km: as given, else the "
        "default for its geo_precision (1: 1, 2: 10, 3: 50; a setting)",
        select=effective_sql(),
        write="optional",
        annotation=UncertaintyKm,
        queryable=Q,
        nullable=False,
    ),
    IncidentField(
        "source",
        Kind.text,
        "text",
        "Sources, as ACLED lists them",
        write="optional",
        annotation=SourceText,
        acled="source",
        queryable=Q,
    ),
    IncidentField(
        "source_scale",
        Kind.text,
        "text",
        "ACLED source scale",
        write="optional",
        annotation=ShortText,
        acled="source_scale",
        queryable=Q,
    ),
    IncidentField(
        "sources",
        Kind.sources,
        "jsonb",
        "Structured sources: name, url, published",
        write="optional",
        default=[],
        annotation=SourceList,
        nullable=False,
        csv=False,
    ),
    IncidentField(
        "notes",
        Kind.text,
        "text",
        "Narrative; full-text searchable with `q`",
        write="optional",
        annotation=Notes,
        acled="notes",
        filter=Filter.text,
        queryable=Q,
    ),
    IncidentField(
        "fatalities",
        Kind.integer,
        "integer",
        "Best estimate of deaths",
        write="optional",
        default=0,
        annotation=Count,
        acled="fatalities",
        filter=Filter.minimum,
        queryable=Q,
        nullable=False,
    ),
    IncidentField(
        "fatalities_low",
        Kind.integer,
        "integer",
        "Low estimate of deaths",
        write="optional",
        annotation=Count,
        queryable=Q,
    ),
    IncidentField(
        "fatalities_high",
        Kind.integer,
        "integer",
        "High estimate of deaths",
        write="optional",
        annotation=Count,
        queryable=Q,
    ),
    IncidentField(
        "tags",
        Kind.tags,
        "text[]",
        "Free tags",
        write="optional",
        default=[],
        annotation=TagList,
        acled="tags",
        csv_select="array_to_string(i.tags, '; ')",
        nullable=False,
    ),
    IncidentField(
        "timestamp",
        Kind.integer,
        "bigint",
        "Last change, Unix seconds (ACLED)",
        select="extract(epoch FROM i.updated_at)::bigint",
        column=False,
        in_json=False,
        acled="timestamp",
    ),
    IncidentField("created_at", Kind.datetime, "timestamptz", "First stored", nullable=False),
    IncidentField(
        "updated_at", Kind.datetime, "timestamptz", "Last changed", queryable=Q, nullable=False
    ),
    IncidentField("version", Kind.integer, "integer", "Increments on every change", nullable=False),
    IncidentField(
        "possible_duplicates",
        Kind.ids,
        "bigint[]",
        _DUPLICATES,
        select="i.possible_duplicates::text[]",
        nullable=False,
        csv=False,
    ),
)

# Views of the registry the rest of the code imports (computed by `_derive`).
BY_NAME: dict[str, IncidentField]
JSON_FIELDS: tuple[IncidentField, ...]
WRITABLE: tuple[IncidentField, ...]
# Writable fields stored in a column of their own (the point is `geom`, from lat/lon).
WRITABLE_COLUMNS: tuple[str, ...]
CSV_FIELDS: tuple[IncidentField, ...]
# Optional text fields: an empty string is no value (stored as null).
OPTIONAL_TEXT: tuple[str, ...]
ACTOR_FIELDS: tuple[str, ...]
QUERYABLE: tuple[IncidentField, ...]


def _derive() -> None:
    global BY_NAME, JSON_FIELDS, WRITABLE, WRITABLE_COLUMNS, CSV_FIELDS, OPTIONAL_TEXT
    global ACTOR_FIELDS, QUERYABLE
    BY_NAME = {f.name: f for f in FIELDS}
    JSON_FIELDS = tuple(f for f in FIELDS if f.in_json)
    WRITABLE = tuple(f for f in FIELDS if f.write)
    WRITABLE_COLUMNS = tuple(f.name for f in WRITABLE if f.column)
    CSV_FIELDS = tuple(f for f in FIELDS if f.csv and f.acled) + tuple(
        f for f in FIELDS if f.csv and not f.acled
    )
    OPTIONAL_TEXT = tuple(f.name for f in WRITABLE if f.kind is Kind.text and f.write == "optional")
    ACTOR_FIELDS = tuple(f.name for f in FIELDS if f.filter is Filter.actor)
    QUERYABLE = tuple(f for f in FIELDS if f.queryable)


_derive()


def extend(*extra: IncidentField) -> None:
    """Add fields to the registry at start-up, before any other module of the app is imported
    (they read the views when they load): a deployment's own columns, added with a
    migration. Everything derived from the registry then carries them."""
    global FIELDS
    FIELDS = (*FIELDS, *extra)
    _derive()


# The JSON Schema of each kind (OpenAPI, OGC queryables).
JSON_SCHEMA: dict[Kind, dict[str, Any]] = {
    Kind.text: {"type": "string"},
    Kind.integer: {"type": "integer"},
    Kind.number: {"type": "number"},
    Kind.boolean: {"type": "boolean"},
    Kind.date: {"type": "string", "format": "date"},
    Kind.datetime: {"type": "string", "format": "date-time"},
    Kind.tags: {"type": "array", "items": {"type": "string"}},
    Kind.sources: {"type": "array", "items": {"type": "object"}},
    Kind.ids: {"type": "array", "items": {"type": "string"}},
}

# The Python type of each kind in responses.
OUTPUT_TYPE: dict[Kind, Any] = {
    Kind.text: str,
    Kind.integer: int,
    Kind.number: float,
    Kind.boolean: bool,
    Kind.date: dt.date,
    Kind.datetime: dt.datetime,
    Kind.tags: list[str],
    Kind.sources: list[dict[str, Any]],
    Kind.ids: list[str],
}
