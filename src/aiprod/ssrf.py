"""Outbound URLs: what the server may be made to fetch or call (the SSRF guard).

Used for webhook endpoints (a user's URL) and for the files an AI provider
hands back (a stock photo's or a generated image's URL).  Such a URL may not
point at loopback, private, link-local or other non-public addresses unless an
admin allowed it for that endpoint (or the operator for the whole server:
``AIPROD_WEBHOOK_ALLOW_PRIVATE_NETWORKS``, ``AIPROD_PROVIDER_ALLOW_PRIVATE_NETWORKS``).
The check runs at registration *and* at every delivery, on the addresses the
name resolves to then, and the request goes to the address that was checked
(TLS still verifies the name), so DNS rebinding cannot slip past it.

Refusals never say what a name resolves to (an internal name's address is
not the caller's business), and a URL with control characters or whitespace
(CR/LF that could split a request) is refused, never stored.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


class WebhookURLError(ValueError):
    """The URL is unusable (scheme, host, credentials, characters)."""


class SSRFBlocked(ValueError):
    """The URL points at an address endpoints may not reach."""


BLOCKED_MESSAGE = (
    "the URL's host is or resolves to a non-public address; webhooks may only reach "
    "public addresses unless an admin approves this URL"
)

IPV6_EMBEDDING_IPV4 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/96",  # IPv4-compatible (deprecated)
        "::ffff:0:0/96",  # IPv4-mapped
        "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
        "64:ff9b::/96",  # NAT64, well-known prefix: the gateway may reach anything
        "64:ff9b:1::/48",  # NAT64, local-use prefix
        "2001::/32",  # Teredo
    )
)
"""IPv6 forms that stand for an IPv4 address: refused outright (a webhook that
means an IPv4 address uses it), whatever the address they carry."""

IPV6_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")


def blocked_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, private, link-local, shared, reserved, multicast, unspecified,
    site-local, IPv4 in IPv6 clothing…: anything that is not a public unicast
    address.  6to4 (``2002::/16``) is judged by the IPv4 address it embeds."""
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in IPV6_SITE_LOCAL or ip.is_site_local:
            return True
        if any(ip in net for net in IPV6_EMBEDDING_IPV4):
            return True
        if ip.sixtofour is not None:
            return blocked_address(ip.sixtofour)
    return False


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    netloc: str


def _bad_character(url: str) -> bool:
    """Whitespace or a control/format/unassigned character anywhere."""
    return any(c.isspace() or unicodedata.category(c).startswith("C") for c in url)


def parse_url(url: str) -> Target:
    if _bad_character(url):
        raise WebhookURLError("the URL may not contain whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookURLError(f"invalid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookURLError("the URL must be http:// or https://")
    if not parts.hostname:
        raise WebhookURLError("the URL has no host")
    if _literal(parts.hostname) is None and not _valid_name(parts.hostname):
        raise WebhookURLError("the URL's host is not a valid DNS name")
    if parts.username is not None or parts.password is not None:
        raise WebhookURLError("credentials in the URL are not allowed; sign-verify instead")
    if parts.fragment:
        raise WebhookURLError("the URL may not have a #fragment")
    default = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, parts.hostname.lower(), port or default, parts.netloc)


def _valid_name(host: str) -> bool:
    """A name DNS can carry: IDNA-encodable, labels of 1-63 bytes, 253 in all
    (the resolver raises on anything else instead of saying "no address")."""
    try:
        encoded = host.rstrip(".").encode("idna")
    except UnicodeError:
        return False
    labels = encoded.split(b".")
    return len(encoded) <= 253 and all(0 < len(label) <= 63 for label in labels)


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _named_local(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


def _allowed(
    addrs: list[ipaddress.IPv4Address | ipaddress.IPv6Address], allow_private: bool
) -> str:
    if not addrs:
        raise OSError("the host has no address")
    if not allow_private and any(blocked_address(a) for a in addrs):
        raise SSRFBlocked(BLOCKED_MESSAGE)
    return str(addrs[0])


def _addresses(infos: list[Any]) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


async def resolve(target: Target, allow_private: bool, timeout: float = 5.0) -> str:
    """The address to connect to: every address the name has must be allowed
    (an attacker controls which one a client would pick)."""
    ip = _literal(target.host)
    if ip is not None:
        return _allowed([ip], allow_private)
    if _named_local(target.host):
        return _allowed([ipaddress.ip_address("127.0.0.1")], allow_private)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    return _allowed(_addresses(infos), allow_private)


def resolve_sync(target: Target, allow_private: bool) -> str:
    """`resolve` for synchronous callers (the engine's provider downloads run in
    the pipeline's thread)."""
    ip = _literal(target.host)
    if ip is not None:
        return _allowed([ip], allow_private)
    if _named_local(target.host):
        return _allowed([ipaddress.ip_address("127.0.0.1")], allow_private)
    infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    return _allowed(_addresses(infos), allow_private)


async def check_endpoint_url(url: str, allow_private: bool) -> str:
    """Validate a URL at registration; returns it as it is to be stored.  A
    name that does not resolve now is accepted (DNS may be down); every
    delivery checks again."""
    target = parse_url(url)
    try:
        await resolve(target, allow_private)
    except SSRFBlocked:
        raise
    except (OSError, TimeoutError):
        pass
    return url
