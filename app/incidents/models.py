"""The incident table and its revision history.

The point is `geometry(Point, 4326)` with a GiST index. Radius queries in metres do not cast the
column (that would defeat the index): they test the point against a degree envelope that is
sure to contain the circle (`geom && envelope`, index-driven) and then check the exact
spheroid distance on the few candidates. See `app/incidents/filters.py`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

from app.core.models import Base


class XID8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id type."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "xid8"


class Incident(Base):
    __tablename__ = "incidents"
    __table_args__ = (
        CheckConstraint("fatalities >= 0", name="fatalities_non_negative"),
        CheckConstraint("time_precision IN (1, 2, 3)", name="time_precision_range"),
        CheckConstraint(
            "event_date_end IS NULL OR event_date_end >= event_date", name="end_after_start"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    external_id: Mapped[str | None] = mapped_column(Text, unique=True)
    event_date: Mapped[dt.date] = mapped_column(Date, nullable=False)
    event_date_end: Mapped[dt.date | None] = mapped_column(Date)
    time_precision: Mapped[int] = mapped_column(SmallInteger, nullable=False, server_default="1")
    disorder_type: Mapped[str | None] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text, nullable=False)
    sub_event_type: Mapped[str | None] = mapped_column(Text)
    actor1: Mapped[str | None] = mapped_column(Text)
    assoc_actor_1: Mapped[str | None] = mapped_column(Text)
    actor2: Mapped[str | None] = mapped_column(Text)
    assoc_actor_2: Mapped[str | None] = mapped_column(Text)
    civilian_targeting: Mapped[bool] = mapped_column(
        Boolean, nullable=False, server_default="false"
    )
    fatalities: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    fatalities_low: Mapped[int | None] = mapped_column(Integer)
    fatalities_high: Mapped[int | None] = mapped_column(Integer)
    country: Mapped[str | None] = mapped_column(Text)
    country_code: Mapped[str | None] = mapped_column(Text)
    admin1: Mapped[str | None] = mapped_column(Text)
    admin2: Mapped[str | None] = mapped_column(Text)
    admin3: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(Text)
    geom: Mapped[Any] = mapped_column(
        Geometry("POINT", srid=4326, spatial_index=False), nullable=False
    )
    geo_precision: Mapped[int | None] = mapped_column(SmallInteger)
    source: Mapped[str | None] = mapped_column(Text)
    source_scale: Mapped[str | None] = mapped_column(Text)
    sources: Mapped[Any] = mapped_column(JSONB, nullable=False, server_default="[]")
    notes: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    deleted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    possible_duplicates: Mapped[list[int]] = mapped_column(
        ARRAY(BigInteger), nullable=False, server_default="{}"
    )


class IncidentRevision(Base):
    """Every version of every incident: the history, the audit trail and the change feed.

    `txid` is the writing transaction's id; the change feed only hands out rows whose
    transaction is older than every transaction still running, so a row that commits late can
    never be skipped by a client that already moved past it.
    """

    __tablename__ = "incident_revisions"
    __table_args__ = (UniqueConstraint("incident_id", "version"),)

    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("incidents.id", ondelete="CASCADE"), nullable=False
    )
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    op: Mapped[str] = mapped_column(Text, nullable=False)
    changed_by: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("clock_timestamp()")
    )
    changed_fields: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default="{}"
    )
    data: Mapped[Any] = mapped_column(JSONB, nullable=False)
    txid: Mapped[int] = mapped_column(
        XID8(), nullable=False, server_default=text("pg_current_xact_id()")
    )
