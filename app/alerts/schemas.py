"""Subscription and delivery models: the bodies clients send and the shapes /docs shows."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from app.core.schemas import input_config
from app.search.params import SearchBody

EXAMPLE = {
    "name": "Khanaqin office",
    "filter": {"near": "Khanaqin", "radius_km": 25, "min_fatalities": 1},
    "webhook_url": "https://alerts.example.org/hooks/incidents",
}


class SubscriptionIn(BaseModel):
    model_config = input_config(EXAMPLE)

    name: str = Field(min_length=1, max_length=200)
    filter: SearchBody = Field(
        default_factory=SearchBody,
        description="Any search parameter of GET /v1/incidents (near + radius_km, bbox, "
        "within, start, end, event_type, actor, country, admin1, min_fatalities, q, ...) and "
        "a GeoJSON `geometry`, validated as a search is",
    )
    webhook_url: str = Field(
        min_length=1,
        max_length=2000,
        description="http(s) URL of a public address (or a host in WEBHOOK_ALLOWED_HOSTS)",
    )


class SubscriptionPatch(BaseModel):
    model_config = input_config({"status": "active"})

    name: str | None = Field(default=None, min_length=1, max_length=200)
    filter: SearchBody | None = None
    webhook_url: str | None = Field(default=None, min_length=1, max_length=2000)
    status: Literal["active", "disabled"] | None = Field(
        default=None, description="`active` re-enables a disabled subscription"
    )


class SubscriptionOut(BaseModel):
    id: str
    name: str
    webhook_url: str
    filter: dict[str, Any]
    status: Literal["active", "disabled"]
    disabled_reason: str | None = Field(
        description="Why it stopped: a 410 from the receiver, the retries spent, or its owner"
    )
    disabled_at: dt.datetime | None
    previous_secret_expires_at: dt.datetime | None = Field(
        description="After a rotation: until when the previous secret signs too"
    )
    created_at: dt.datetime
    updated_at: dt.datetime


class SubscriptionCreated(SubscriptionOut):
    secret: str = Field(description="The signing secret (`whsec_...`), shown only here")


class RotatedSecret(BaseModel):
    id: str
    secret: str = Field(description="The new signing secret, shown only here")
    previous_secret_expires_at: dt.datetime | None = Field(
        description="Until then events are signed with both secrets"
    )


class Attempt(BaseModel):
    attempt: int
    at: dt.datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class Delivery(BaseModel):
    id: str = Field(description="The `webhook-id` of every attempt of this event")
    type: Literal["incident.created", "incident.updated", "incident.deleted"] | None
    incident_id: str | None
    version: int | None
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    log: list[Attempt]
