"""Resource ids: bigints shown as strings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

from app.core.errors import NotFound

MAX_ID = 2**63 - 1
# What the OpenAPI schema says an id looks like (a too-long or non-numeric id is a 404).
ID_PATTERN = r"^[1-9][0-9]{0,18}$"


def parse_id(raw: str, *, what: str = "incident") -> int:
    """The internal key of an id; an id that cannot exist is simply not found."""
    if not raw.isdigit() or len(raw) > 19 or not 0 < int(raw) <= MAX_ID:
        raise NotFound(f"No {what} with id '{raw[:64]}'.")
    return int(raw)


# A resource id in a path: documented with its pattern, an impossible one is a 404.
IdPath = Annotated[
    str,
    Path(
        max_length=30,
        description="The id, as returned on create",
        json_schema_extra={"pattern": ID_PATTERN},
    ),
]
