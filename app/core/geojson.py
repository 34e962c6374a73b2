"""GeoJSON geometry input models (RFC 7946: positions are `[longitude, latitude]`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class PointGeometry(BaseModel):
    """A GeoJSON Point: `coordinates` is `[longitude, latitude]`."""

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


class PolygonGeometry(BaseModel):
    """A GeoJSON Polygon or MultiPolygon in lon/lat; PostGIS checks it is valid."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    type: Annotated[str, Field(pattern="^(Polygon|MultiPolygon)$")]
    coordinates: list[Any]


# The example polygon of the API documentation: around Khanaqin, Diyala.
KHANAQIN_POLYGON: dict[str, Any] = {
    "type": "Polygon",
    "coordinates": [[[45.1, 34.2], [45.6, 34.2], [45.6, 34.6], [45.1, 34.6], [45.1, 34.2]]],
}
