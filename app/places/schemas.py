from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from app.core.pagination import Page
from app.core.schemas import input_config


class PlaceIn(BaseModel):
    """A place to add to the gazetteer (e.g. a village GeoNames' packaged extract lacks)."""

    model_config = input_config(
        {
            "name": "Jalawla",
            "alternate_names": ["Jalula", "جلولاء", "Celewla"],
            "latitude": 34.2726,
            "longitude": 45.1633,
            "country_code": "IQ",
            "admin1": "Diyala",
            "admin2": "Khanaqin District",
            "population": 60000,
        }
    )

    name: Annotated[str, Field(min_length=1, max_length=200)]
    alternate_names: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=200)
    ] = []
    latitude: Annotated[float, Field(ge=-90, le=90)]
    longitude: Annotated[float, Field(ge=-180, le=180)]
    country_code: Annotated[str, Field(pattern=r"^[A-Za-z]{2,3}$")] | None = None
    admin1: Annotated[str, Field(max_length=200)] | None = None
    admin2: Annotated[str, Field(max_length=200)] | None = None
    population: Annotated[int, Field(ge=0, le=10**10)] = 0
    feature_code: Annotated[str, Field(max_length=10)] | None = "PPL"


class PlaceOut(BaseModel):
    id: str
    geonameid: int | None
    name: str
    alternate_names: list[str]
    feature_code: str | None
    country_code: str | None
    country_code3: str | None
    admin1: str | None
    admin2: str | None
    latitude: float
    longitude: float
    population: int
    source: str
    score: float = Field(description="Trigram similarity of the best-matching name (0..1)")
    exact: bool = Field(description="The query equals one of the names (accents and case aside)")


class PlacePage(Page[PlaceOut]):
    """The best matches (one page: no cursor)."""
