"""Webhook URLs: http(s) to a public address only.

A URL is refused when its host resolves to a loopback, private, link-local (which holds the
cloud metadata address 169.254.169.254), shared, multicast, reserved or unspecified address,
unless the host (by name, address or network) is listed in `WEBHOOK_ALLOWED_HOSTS`. The check
runs when a subscription is saved and again before every delivery, which then connects to the
address it checked (a name that resolves elsewhere a moment later is not followed).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2000
RESOLVE_TIMEOUT_S = 5.0


class RefusedUrl(ValueError):
    """Why a webhook URL may not be called (a message for the client)."""


@dataclass(frozen=True)
class Target:
    """A checked URL and the address a request to it connects to."""

    url: SplitResult
    host: str
    port: int
    address: IPAddress


@dataclass(frozen=True)
class Allowed:
    """`WEBHOOK_ALLOWED_HOSTS`, parsed: host names and networks."""

    names: frozenset[str]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def parse(cls, entries: list[str]) -> Allowed:
        return _parse_allowed(tuple(entries))

    def covers(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)


@functools.lru_cache(maxsize=8)
def _parse_allowed(entries: tuple[str, ...]) -> Allowed:
    """`Allowed.parse`, once per setting value (it is consulted before every delivery)."""
    names: set[str] = set()
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            names.add(entry.lower().rstrip("."))
    return Allowed(frozenset(names), tuple(networks))


def parse_url(text: str) -> SplitResult:
    """The URL's parts, or RefusedUrl when it is not an absolute http(s) URL."""
    if len(text) > MAX_URL_LENGTH:
        raise RefusedUrl(f"longer than {MAX_URL_LENGTH} characters")
    try:
        url = urlsplit(text)
        url.port  # noqa: B018 (raises on a bad port)
    except ValueError as exc:
        raise RefusedUrl("not a valid URL") from exc
    if url.scheme not in ("http", "https"):
        raise RefusedUrl("must be an http or https URL")
    if not url.hostname:
        raise RefusedUrl("has no host")
    if url.username is not None or url.password is not None:
        raise RefusedUrl("must not carry credentials; authenticate with the signature")
    return url


def _address(text: str) -> IPAddress:
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


# IPv6 ranges that carry an IPv4 address a router may reach (IPv4-compatible, NAT64, 6to4,
# Teredo): refused, whatever the IPv4 address inside.
_TUNNELS = tuple(
    ipaddress.ip_network(n)
    for n in ("::/96", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32")
)


def is_public(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and any(address in n for n in _TUNNELS):
        return False
    return address.is_global and not address.is_multicast


async def resolve(url: SplitResult, allowed: Allowed) -> Target:
    """The address to connect to, checked; RefusedUrl naming the reason otherwise."""
    host = (url.hostname or "").lower().rstrip(".")
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        addresses = [_address(host)]
    except ValueError:  # a name, not an address
        addresses = await _lookup(host, port)
    for address in addresses:
        if host in allowed.names or allowed.covers(address):
            continue
        if not is_public(address):
            # The address itself is not told: it would map the network behind the server.
            raise RefusedUrl(
                f"host '{host}' is not a public address "
                "(list it in WEBHOOK_ALLOWED_HOSTS to allow it)"
            )
    return Target(url=url, host=host, port=port, address=addresses[0])


async def _lookup(host: str, port: int) -> list[IPAddress]:
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM),
            RESOLVE_TIMEOUT_S,
        )
    except (OSError, UnicodeError, TimeoutError) as exc:
        raise RefusedUrl(f"host '{host}' does not resolve") from exc
    addresses = [_address(str(info[4][0])) for info in infos]
    if not addresses:
        raise RefusedUrl(f"host '{host}' does not resolve")
    return addresses
