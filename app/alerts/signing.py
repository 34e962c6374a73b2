"""Standard Webhooks signatures (https://www.standardwebhooks.com), by the `standardwebhooks`
library: `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, keyed with
the bytes of the subscription's `whsec_` secret. During a rotation's grace period the message
carries a signature by each secret, space-separated, so a receiver verifies with either.
"""

from __future__ import annotations

import base64
import datetime as dt
import secrets

from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
USER_AGENT = "conflict-incidents-webhooks/0.1"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def message_id(uuid_hex: str) -> str:
    return "msg_" + uuid_hex.replace("-", "")


def headers(
    msg_id: str, body: str, secrets_in_use: list[str], at: dt.datetime | None = None
) -> dict[str, str]:
    """The headers of one attempt: a new timestamp each time, the same id on every retry."""
    at = at or dt.datetime.now(dt.UTC)
    signatures = " ".join(Webhook(secret).sign(msg_id, at, body) for secret in secrets_in_use)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signatures,
    }
