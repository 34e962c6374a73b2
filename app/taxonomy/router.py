from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.taxonomy.data import taxonomy_document

router = APIRouter(tags=["taxonomy"])


@router.get("/taxonomy", summary="Event types and sub-event types (ACLED's taxonomy)")
async def get_taxonomy() -> dict[str, Any]:
    """The vocabulary `event_type`, `sub_event_type` and `disorder_type` are checked against."""
    return taxonomy_document()
