"""Declarative base shared by every domain's tables (Alembic reads its metadata)."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass
