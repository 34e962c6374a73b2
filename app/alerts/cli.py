"""`incidents subscriptions list|create|test` and `incidents worker`."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import sys
import uuid
from typing import Annotated, Any

import orjson
import typer

from app.core.config import get_settings

subscriptions_cli = typer.Typer(
    help="Alert subscriptions (webhooks signed as Standard Webhooks specify).",
    no_args_is_help=True,
)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


@subscriptions_cli.command("list")
def subscriptions_list() -> None:
    """Every subscription: id, name, owner key, status, URL, deliveries pending/delivered/failed."""
    from app.alerts.service import all_subscriptions
    from app.core.db import Database

    async def run() -> list[Any]:
        db = Database(get_settings())
        try:
            async with db.read() as conn:
                return list(await all_subscriptions(conn))
        finally:
            await db.close()

    for row in asyncio.run(run()):
        status = row["status"]
        if row["disabled_reason"]:
            status += f" ({row['disabled_reason']})"
        typer.echo(
            f"{row['id']}\t{row['name']}\t{row['key_name']}\t{status}\t{row['webhook_url']}\t"
            f"{row['pending']}/{row['delivered']}/{row['failed']}"
        )


@subscriptions_cli.command("create")
def subscriptions_create(
    name: Annotated[str, typer.Option(help="What the subscription is for")],
    webhook_url: Annotated[str, typer.Option(help="Where events are POSTed")],
    key: Annotated[str, typer.Option(help="The owning API key: its id or name")],
    filter: Annotated[
        str,
        typer.Option(
            "--filter", help='Search parameters as JSON: \'{"near": "Khanaqin", "radius_km": 25}\''
        ),
    ] = "{}",
) -> None:
    """Create a subscription; prints its id, then its secret (shown only now)."""
    from app.alerts.checks import check_url, resolved_filter
    from app.alerts.service import Owner, create_subscription
    from app.core.db import Database
    from app.core.errors import ProblemError
    from app.search.params import SearchBody

    try:
        given = orjson.loads(filter)
        body = SearchBody.model_validate(given)
    except (orjson.JSONDecodeError, ValueError) as exc:
        raise _fail(f"--filter: {exc}") from exc
    settings = get_settings()

    async def run() -> tuple[str, str]:
        db = Database(settings)
        try:
            async with db.write() as conn:
                key_id = await conn.fetchval(
                    "SELECT id FROM api_keys WHERE revoked_at IS NULL "
                    "AND (id::text = $1 OR name = $1) ORDER BY id LIMIT 1",
                    key,
                )
                if key_id is None:
                    raise _fail(f"--key: no active key '{key}'")
                url = await check_url(webhook_url, settings.webhook_allowed_hosts)
                doc, secret = await create_subscription(
                    conn,
                    Owner(int(key_id)),
                    name=name,
                    webhook_url=url,
                    filter_doc=body.model_dump(mode="json", exclude_none=True),
                    resolved=await resolved_filter(conn, body),
                    limit=settings.max_subscriptions_per_key,
                )
        finally:
            await db.close()
        return str(orjson.loads(doc)["id"]), secret

    try:
        subscription_id, secret = asyncio.run(run())
    except ProblemError as exc:
        raise _fail(exc.detail) from exc
    sys.stdout.write(f"{subscription_id}\n{secret}\n")


@subscriptions_cli.command("test")
def subscriptions_test(
    subscription_id: Annotated[str, typer.Argument(help="The subscription's id")],
) -> None:
    """Send a signed `ping` event to the subscription's URL now; prints the answer."""
    from app.alerts import signing
    from app.alerts.delivery import new_client, send
    from app.alerts.service import subscription_for_test
    from app.core.db import Database

    try:
        sid = uuid.UUID(subscription_id)
    except ValueError as exc:
        raise _fail("not a subscription id") from exc
    settings = get_settings()

    async def run() -> tuple[int | None, str | None]:
        db = Database(settings)
        try:
            async with db.read() as conn:
                row = await subscription_for_test(conn, sid)
        finally:
            await db.close()
        if row is None:
            raise _fail(f"no subscription {sid}", 1)
        secrets_in_use = [str(row["secret"])]
        if row["previous_secret"]:
            secrets_in_use.append(str(row["previous_secret"]))
        body = orjson.dumps(
            {
                "type": "ping",
                "subscription_id": str(sid),
                "at": dt.datetime.now(dt.UTC).isoformat(),
            }
        ).decode()
        async with new_client(settings) as client:
            outcome = await send(
                client,
                settings,
                url=str(row["webhook_url"]),
                msg_id=signing.message_id(uuid.uuid4().hex),
                body=body,
                secrets_in_use=secrets_in_use,
            )
        return outcome.status_code, outcome.error

    status, error = asyncio.run(run())
    typer.echo(f"{status if status is not None else '-'}\t{error or 'ok'}")
    if status is None or not 200 <= status < 300:
        raise typer.Exit(1)


def worker() -> None:
    """Deliver webhooks (as the API does unless WEBHOOK_WORKER=false) until SIGTERM or SIGINT.
    Any number may run: each delivery is claimed by one."""
    from app.alerts.delivery import DeliveryWorker
    from app.core.db import Database

    settings = get_settings()

    async def run() -> None:
        db = Database(settings)
        delivery = DeliveryWorker(db, settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, delivery.stop)
        typer.echo("webhook worker: delivering", err=True)
        try:
            await delivery.run()
        finally:
            await db.close()
        typer.echo(f"webhook worker: stopped ({delivery.delivered} delivered)", err=True)

    asyncio.run(run())
