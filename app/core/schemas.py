"""What every input model shares."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict


def input_config(example: dict[str, Any] | None = None) -> ConfigDict:
    """Config of a body clients send: unknown fields refused (a typo is a 422 naming it, not
    silently ignored), no NaN or infinities, text stripped; `example` documented."""
    config = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=True)
    if example is not None:
        config["json_schema_extra"] = {"examples": [example]}
    return config
