"""The incident contract: what clients send (validated here) and what they get back.

Field names follow ACLED's event fields so ACLED users' scripts work unchanged.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from app.taxonomy.data import (
    EVENT_TYPES,
    canonical_disorder_type,
    canonical_event_type,
    canonical_sub_event_type,
    default_disorder_type,
)

ShortText = Annotated[str, Field(max_length=500)]
Latitude = Annotated[float, Field(ge=-90, le=90, description="WGS84 latitude, degrees")]
Longitude = Annotated[float, Field(ge=-180, le=180, description="WGS84 longitude, degrees")]
Count = Annotated[int, Field(ge=0, le=10_000_000)]
EARLIEST = dt.date(1800, 1, 1)
LATEST = dt.date(2200, 12, 31)


TagList = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=100)
]


class SourceRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=500)]
    url: HttpUrl | None = None
    published: dt.date | None = None


class PointGeometry(BaseModel):
    """A GeoJSON Point: `coordinates` is `[longitude, latitude]` (RFC 7946)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    type: Literal["Point"]
    coordinates: Annotated[list[float], Field(min_length=2, max_length=3)]

    @field_validator("coordinates")
    @classmethod
    def _in_range(cls, value: list[float]) -> list[float]:
        lon, lat = value[0], value[1]
        if not -180 <= lon <= 180:
            raise ValueError("longitude (coordinates[0]) must be between -180 and 180")
        if not -90 <= lat <= 90:
            raise ValueError("latitude (coordinates[1]) must be between -90 and 90")
        return value


OPTIONAL_TEXT = (
    "disorder_type",
    "sub_event_type",
    "actor1",
    "assoc_actor_1",
    "actor2",
    "assoc_actor_2",
    "country",
    "admin1",
    "admin2",
    "admin3",
    "location",
    "source",
    "source_scale",
    "notes",
)


class _IncidentFieldsBase(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=True)

    external_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    event_date_end: dt.date | None = None
    time_precision: Literal[1, 2, 3] = 1
    disorder_type: ShortText | None = None
    sub_event_type: ShortText | None = None
    actor1: ShortText | None = None
    assoc_actor_1: ShortText | None = None
    actor2: ShortText | None = None
    assoc_actor_2: ShortText | None = None
    civilian_targeting: bool = False
    fatalities: Count = 0
    fatalities_low: Count | None = None
    fatalities_high: Count | None = None
    country: ShortText | None = None
    country_code: Annotated[str, Field(pattern=r"^[A-Za-z]{2,3}$")] | None = None
    admin1: ShortText | None = None
    admin2: ShortText | None = None
    admin3: ShortText | None = None
    location: ShortText | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    geometry: PointGeometry | None = Field(
        default=None, description="A GeoJSON Point; an alternative to latitude/longitude"
    )
    geo_precision: Literal[1, 2, 3] | None = None
    source: Annotated[str, Field(max_length=2000)] | None = None
    source_scale: ShortText | None = None
    sources: Annotated[list[SourceRef], Field(max_length=100)] = []
    notes: Annotated[str, Field(max_length=50_000)] | None = None
    tags: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=100)]], Field(max_length=100)
    ] = []

    @field_validator(*OPTIONAL_TEXT, mode="after")
    @classmethod
    def _blank_is_missing(cls, value: str | None) -> str | None:
        """An empty text is no value: stored as null, so it is grouped and filtered as one."""
        return value or None


class IncidentIn(_IncidentFieldsBase):
    """A new incident. The point is `latitude`+`longitude`, or `geometry`, or `location` alone
    (a place name resolved through the gazetteer)."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "external_id": "IRQ-DARA-2020-06",
                    "event_date": "2020-06-30",
                    "event_type": "Violence against civilians",
                    "sub_event_type": "Attack",
                    "actor1": "Islamic State (Iraq)",
                    "actor2": "Civilians (Iraq)",
                    "civilian_targeting": True,
                    "fatalities": 7,
                    "country": "Iraq",
                    "admin1": "Diyala",
                    "admin2": "Khanaqin",
                    "location": "Dara",
                    "latitude": 34.40,
                    "longitude": 45.33,
                    "geo_precision": 2,
                    "source": "Rudaw",
                    "notes": "ISIS militants stormed the village of Dara, killing six Kakai "
                    "Kurds and a member of the security forces.",
                    "tags": ["kakai"],
                }
            ]
        },
    )

    event_date: dt.date
    event_type: ShortText

    @field_validator("event_date", "event_date_end")
    @classmethod
    def _date_range(cls, value: dt.date | None) -> dt.date | None:
        if value is not None and not EARLIEST <= value <= LATEST:
            raise ValueError(f"date must be between {EARLIEST} and {LATEST}")
        return value

    @field_validator("event_type")
    @classmethod
    def _event_type(cls, value: str) -> str:
        canonical = canonical_event_type(value)
        if canonical is None:
            raise ValueError(f"unknown event_type; one of: {', '.join(EVENT_TYPES)}")
        return canonical

    @field_validator("disorder_type")
    @classmethod
    def _disorder_type(cls, value: str | None) -> str | None:
        if value is None:
            return None
        canonical = canonical_disorder_type(value)
        if canonical is None:
            raise ValueError("unknown disorder_type; see GET /v1/taxonomy")
        return canonical

    @field_validator("country_code")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value

    @field_validator("tags")
    @classmethod
    def _dedupe_tags(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _consistent(self) -> IncidentIn:
        errors: list[tuple[str, str]] = []
        if self.sub_event_type is not None:
            sub = canonical_sub_event_type(self.sub_event_type)
            allowed = EVENT_TYPES[self.event_type][1]
            if sub is None or sub not in allowed:
                errors.append(
                    (
                        "sub_event_type",
                        f"not a sub-event type of '{self.event_type}'; one of: "
                        + ", ".join(allowed),
                    )
                )
            else:
                self.sub_event_type = sub
        if self.disorder_type is None:
            self.disorder_type = default_disorder_type(self.event_type)
        if self.event_date_end is not None and self.event_date_end < self.event_date:
            errors.append(("event_date_end", "must not be before event_date"))
        if self.fatalities_low is not None and self.fatalities_low > self.fatalities:
            errors.append(("fatalities_low", "must not exceed fatalities"))
        if self.fatalities_high is not None and self.fatalities_high < self.fatalities:
            errors.append(("fatalities_high", "must not be below fatalities"))
        if (self.latitude is None) != (self.longitude is None):
            missing = "longitude" if self.longitude is None else "latitude"
            errors.append((missing, "latitude and longitude go together"))
        if self.geometry is not None:
            lon, lat = self.geometry.coordinates[0], self.geometry.coordinates[1]
            if self.latitude is not None and (self.latitude, self.longitude) != (lat, lon):
                errors.append(("geometry", "disagrees with latitude/longitude"))
            self.latitude, self.longitude = lat, lon
            self.geometry = None
        if self.latitude is None and not self.location:
            errors.append(("latitude", "give latitude+longitude, geometry, or location"))
        if errors:
            raise _FieldErrors(errors)
        return self


class _FieldErrors(ValueError):
    """Raised by model validators; carries each (field, message) pair."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.field_errors = errors


class IncidentPatch(_IncidentFieldsBase):
    """Partial update: only the fields sent change; `null` clears an optional field."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"fatalities": 8, "notes": "Toll revised."}]},
    )

    event_date: dt.date | None = None
    event_type: ShortText | None = None
    time_precision: Literal[1, 2, 3] | None = None  # type: ignore[assignment]
    civilian_targeting: bool | None = None  # type: ignore[assignment]
    fatalities: Count | None = None  # type: ignore[assignment]
    sources: Annotated[list[SourceRef], Field(max_length=100)] | None = None  # type: ignore[assignment]
    tags: TagList | None = None  # type: ignore[assignment]


REQUIRED_ON_PATCH = (
    "event_date",
    "event_type",
    "time_precision",
    "civilian_targeting",
    "fatalities",
    "sources",
    "tags",
)


class SourceOut(BaseModel):
    name: str
    url: str | None = None
    published: str | None = None


class IncidentOut(BaseModel):
    """An incident as the API returns it."""

    id: str = Field(description="Server-assigned, opaque, stable")
    external_id: str | None
    event_date: dt.date
    event_date_end: dt.date | None
    time_precision: int
    disorder_type: str | None
    event_type: str
    sub_event_type: str | None
    actor1: str | None
    assoc_actor_1: str | None
    actor2: str | None
    assoc_actor_2: str | None
    civilian_targeting: bool
    fatalities: int
    fatalities_low: int | None
    fatalities_high: int | None
    country: str | None
    country_code: str | None
    admin1: str | None
    admin2: str | None
    admin3: str | None
    location: str | None
    latitude: float
    longitude: float
    geo_precision: int | None
    source: str | None
    source_scale: str | None
    sources: list[SourceOut]
    notes: str | None
    tags: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime
    version: int
    possible_duplicates: list[str] = Field(
        default_factory=list,
        description="Ids of incidents within 2 km and 1 day, same event type, a shared actor, "
        "found when this one was ingested; flagged, never merged",
    )
    distance_km: float | None = Field(
        default=None, description="Geodesic distance from `near`, when the search had one"
    )


class RevisionOut(BaseModel):
    version: int
    op: Literal["create", "update", "delete"]
    changed_by: str | None = Field(description="Name of the API key that made the change")
    changed_at: dt.datetime
    changed_fields: list[str]
    incident: dict[str, Any] = Field(description="The incident as it was after this change")


class RevisionPage(BaseModel):
    items: list[RevisionOut]
    next_cursor: str | None
