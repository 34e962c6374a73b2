"""The incident contract: what clients send (validated here) and what they get back.

The models are built from the field registry (`app.incidents.fields`): a field declared there is
accepted on create and patch, and documented in responses, with no edit here. What lives here
are the rules between fields (sub-event type of the event type, end after start, estimates
around the best one, where the point comes from).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, create_model, field_validator, model_validator

from app.core.geojson import PointGeometry
from app.core.schemas import input_config
from app.incidents.fields import (
    JSON_FIELDS,
    OPTIONAL_TEXT,
    OUTPUT_TYPE,
    WRITABLE,
    IncidentField,
    Kind,
)
from app.taxonomy.data import EVENT_TYPES, canonical_sub_event_type, default_disorder_type

DARA_EXAMPLE: dict[str, Any] = {
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
    "notes": "ISIS militants stormed the village of Dara, killing six Kakai Kurds and a member "
    "of the security forces.",
    "tags": ["kakai"],
}


class FieldErrors(ValueError):
    """Raised by model validators; carries each (field, message) pair."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.field_errors = errors


class IncidentFields(BaseModel):
    """What create and patch share: the point as GeoJSON, blank text as no value."""

    model_config = input_config()

    geometry: PointGeometry | None = Field(
        default=None, description="A GeoJSON Point; an alternative to latitude/longitude"
    )

    if TYPE_CHECKING:
        # The registry's fields are added by create_model below.
        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...

    @field_validator(*OPTIONAL_TEXT, mode="after", check_fields=False)
    @classmethod
    def _blank_is_missing(cls, value: str | None) -> str | None:
        """An empty text is no value: stored as null, so it is grouped and filtered as one."""
        return value or None


class IncidentRules(IncidentFields):
    """A new incident. The point is `latitude`+`longitude`, or `geometry`, or `location` alone
    (a place name resolved through the gazetteer)."""

    model_config = input_config(DARA_EXAMPLE)

    @model_validator(mode="after")
    def _consistent(self) -> IncidentRules:
        errors: list[tuple[str, str]] = []
        data: Any = self  # the registry's fields, added by create_model
        if data.sub_event_type is not None:
            sub = canonical_sub_event_type(data.sub_event_type)
            allowed = EVENT_TYPES[data.event_type][1]
            if sub is None or sub not in allowed:
                errors.append(
                    (
                        "sub_event_type",
                        f"not a sub-event type of '{data.event_type}'; one of: "
                        + ", ".join(allowed),
                    )
                )
            else:
                data.sub_event_type = sub
        if data.disorder_type is None:
            data.disorder_type = default_disorder_type(data.event_type)
        if data.event_date_end is not None and data.event_date_end < data.event_date:
            errors.append(("event_date_end", "must not be before event_date"))
        if data.fatalities_low is not None and data.fatalities_low > data.fatalities:
            errors.append(("fatalities_low", "must not exceed fatalities"))
        if data.fatalities_high is not None and data.fatalities_high < data.fatalities:
            errors.append(("fatalities_high", "must not be below fatalities"))
        if (data.latitude is None) != (data.longitude is None):
            missing = "longitude" if data.longitude is None else "latitude"
            errors.append((missing, "latitude and longitude go together"))
        if self.geometry is not None:
            lon, lat = self.geometry.coordinates[0], self.geometry.coordinates[1]
            if data.latitude is not None and (data.latitude, data.longitude) != (lat, lon):
                errors.append(("geometry", "disagrees with latitude/longitude"))
            data.latitude, data.longitude = lat, lon
            self.geometry = None
        if data.latitude is None and not data.location:
            errors.append(("latitude", "give latitude+longitude, geometry, or location"))
        if errors:
            raise FieldErrors(errors)
        return self


class IncidentPatchFields(IncidentFields):
    """Partial update: only the fields sent change; `null` clears an optional field."""

    model_config = input_config({"fatalities": 8, "notes": "Toll revised."})


def _input_field(field: IncidentField, *, patch: bool) -> tuple[Any, Any]:
    annotation = field.annotation
    if patch or field.write == "optional" and field.default is None:
        return annotation | None, Field(default=None, description=field.description)
    if field.write == "required":
        return annotation, Field(description=field.description)
    if isinstance(field.default, list):
        return annotation, Field(default_factory=list, description=field.description)
    return annotation, Field(default=field.default, description=field.description)


class SourceOut(BaseModel):
    name: str
    url: str | None = None
    published: str | None = None


def _output_field(field: IncidentField) -> tuple[Any, Any]:
    kind = list[SourceOut] if field.kind is Kind.sources else OUTPUT_TYPE[field.kind]
    if field.kind in (Kind.tags, Kind.sources, Kind.ids):
        return kind, Field(default_factory=list, description=field.description)
    if field.nullable:
        return kind | None, Field(description=field.description)
    return kind, Field(description=field.description)


if TYPE_CHECKING:

    class IncidentIn(IncidentRules): ...

    class IncidentPatch(IncidentPatchFields): ...

    class IncidentOut(BaseModel):
        def __getattr__(self, name: str) -> Any: ...

else:
    IncidentIn = create_model(
        "IncidentIn",
        __base__=IncidentRules,
        __doc__=IncidentRules.__doc__,
        **{f.name: _input_field(f, patch=False) for f in WRITABLE},
    )
    IncidentPatch = create_model(
        "IncidentPatch",
        __base__=IncidentPatchFields,
        __doc__=IncidentPatchFields.__doc__,
        **{f.name: _input_field(f, patch=True) for f in WRITABLE},
    )
    IncidentOut = create_model(
        "IncidentOut",
        __doc__="An incident as the API returns it.",
        **{f.name: _output_field(f) for f in JSON_FIELDS},
        distance_km=(
            float | None,
            Field(default=None, description="Geodesic distance from `near`, when searched"),
        ),
    )


class RevisionOut(BaseModel):
    version: int
    op: Literal["create", "update", "delete"]
    changed_by: str | None = Field(description="Name of the API key that made the change")
    changed_at: dt.datetime
    changed_fields: list[str]
    incident: dict[str, Any] = Field(description="The incident as it was after this change")
