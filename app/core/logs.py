"""Logging that never shows an API key.

ACLED's clients send the key in the query string (`?key=...`), so every access-log line would
carry it: a filter on the handlers' loggers (uvicorn's access and error logs, ours) rewrites
`key=<anything>` to `key=[redacted]` in the message and its arguments before they are written.
"""

from __future__ import annotations

import logging
import re

_KEY = re.compile(r"(?i)((?:^|[?&;\s])(?:key|api_key|access_token)=)[^&\s\"']*")
LOGGERS = ("", "uvicorn", "uvicorn.access", "uvicorn.error", "app")


def redact(text: str) -> str:
    return _KEY.sub(r"\1[redacted]", text)


class RedactKeys(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {
                k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()
            }
        return True


def install() -> None:
    """Idempotent: one filter per logger."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactKeys) for f in logger.filters):
            logger.addFilter(RedactKeys())
