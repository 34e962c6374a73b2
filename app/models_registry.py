"""Imports every table so `Base.metadata` is complete (for Alembic autogenerate)."""

from app.auth.models import ApiKey
from app.incidents.models import Incident, IncidentRevision, IncidentVersion

__all__ = ["ApiKey", "Incident", "IncidentRevision", "IncidentVersion"]
