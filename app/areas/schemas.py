from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from app.core.geojson import KHANAQIN_POLYGON, PolygonGeometry
from app.core.pagination import Page
from app.core.schemas import input_config


class AreaIn(BaseModel):
    """A named polygon, e.g. a disputed territory or a governorate from HDX COD-AB."""

    model_config = input_config(
        {
            "name": "Khanaqin surroundings",
            "geometry": KHANAQIN_POLYGON,
            "properties": {"note": "disputed territory"},
        }
    )

    name: Annotated[str, Field(min_length=1, max_length=200)]
    geometry: PolygonGeometry
    properties: dict[str, Any] = {}


class AreaOut(BaseModel):
    id: str
    name: str
    kind: str = Field(description="country, admin1 or custom")
    code: str | None
    iso_a2: str | None
    iso_a3: str | None
    alt_names: list[str]
    properties: dict[str, Any]
    source: str | None
    bbox: list[float]
    created_at: str


class AreaPage(Page[AreaOut]):
    pass


class AreaFeature(BaseModel):
    type: str
    id: str
    geometry: dict[str, Any]
    properties: AreaOut
