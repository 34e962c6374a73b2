"""The incident table and its revision history.

The point is `geometry(Point, 4326)` with a GiST index. Radius queries in metres do not cast the
column (that would defeat the index): they test the point against a degree envelope that is
sure to contain the circle (`geom && envelope`, index-driven) and then check the exact
spheroid distance on the few candidates. See `app/search/query.py`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from geoalchemy2 import Geometry
from sqlalchemy import (
    REAL,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Identity,
    Integer,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSTZRANGE
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import UserDefinedType

from app.core.models import Base
from app.incidents.fields import FIELDS, IncidentField, Kind


class XID8(UserDefinedType[int]):
    """PostgreSQL's 64-bit transaction id type."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "xid8"


# Column types of the registry's SQL types.
SQL_TYPES: dict[str, Any] = {
    "text": Text,
    "date": Date,
    "smallint": SmallInteger,
    "real": REAL,
    "integer": Integer,
    "bigint": BigInteger,
    "boolean": Boolean,
    "jsonb": JSONB,
    "text[]": ARRAY(Text),
    "bigint[]": ARRAY(BigInteger),
    "timestamptz": DateTime(timezone=True),
}
_SERVER_DEFAULTS = {"created_at": func.now(), "updated_at": func.now(), "version": text("1")}


def _server_default(field: IncidentField) -> Any:
    if field.name in _SERVER_DEFAULTS:
        return _SERVER_DEFAULTS[field.name]
    if field.default is None:
        return "{}" if field.kind is Kind.ids else None
    if isinstance(field.default, list):
        return "[]" if field.sql_type == "jsonb" else "{}"
    return str(field.default).lower()


def _registry_columns() -> list[Column[Any]]:
    """The registry's stored fields (the id is the primary key, declared below)."""
    return [
        Column(
            f.name,
            SQL_TYPES[f.sql_type],
            # A writable field with no default may be left out (its output may still never be
            # null: uncertainty_km shows its precision's default).
            nullable=f.nullable or (f.write == "optional" and f.default is None),
            unique=f.name == "external_id" or None,
            server_default=_server_default(f),
        )
        for f in FIELDS
        if f.column and f.name != "id"
    ]


incidents_table = Table(
    "incidents",
    Base.metadata,
    Column("id", BigInteger, Identity(always=True), primary_key=True),
    *_registry_columns(),
    Column("geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
    Column("deleted_at", DateTime(timezone=True)),
    CheckConstraint("fatalities >= 0", name="fatalities_non_negative"),
    CheckConstraint("time_precision IN (1, 2, 3)", name="time_precision_range"),
    CheckConstraint("uncertainty_km >= 0", name="incidents_uncertainty_km_check"),
    CheckConstraint(
        "event_date_end IS NULL OR event_date_end >= event_date", name="end_after_start"
    ),
)


class Incident(Base):
    """An incident: the registry's columns (`app.incidents.fields`), its point and tombstone."""

    __table__ = incidents_table


incident_history_table = Table(
    "incident_history",
    Base.metadata,
    Column("id", BigInteger, primary_key=True),
    *(c for c in _registry_columns() if c.name != "version"),
    Column("version", Integer, primary_key=True),
    Column("geom", Geometry("POINT", srid=4326, spatial_index=False), nullable=False),
    Column("deleted_at", DateTime(timezone=True)),
    Column("valid", TSTZRANGE, nullable=False),
)


class IncidentVersion(Base):
    """A superseded version of an incident (migration 0011): its columns, and `valid`, the
    time it was the current version. The current version is the row in `incidents`."""

    __table__ = incident_history_table


class IncidentRevision(Base):
    """Every change of every incident: the audit trail and the change feed. A revision names
    a version; its state is that version's row (`incidents` or `incident_history`).

    `txid` is the writing transaction's id; the change feed only hands out rows whose
    transaction is older than every transaction still running, so a row that commits late can
    never be skipped by a client that already moved past it.
    """

    __tablename__ = "incident_revisions"
    __table_args__ = (UniqueConstraint("incident_id", "version"),)

    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    incident_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    op: Mapped[str] = mapped_column(Text, nullable=False)
    changed_by: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=text("clock_timestamp()")
    )
    changed_fields: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default="{}"
    )
    txid: Mapped[int] = mapped_column(
        XID8(), nullable=False, server_default=text("pg_current_xact_id()")
    )
