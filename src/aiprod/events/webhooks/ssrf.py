"""Webhook URLs: what an endpoint may point at (the SSRF guard).

Endpoints may not point at loopback, private, link-local or other non-public
addresses unless an admin allowed it for that endpoint (or the operator for
the whole server: ``AIPROD_WEBHOOK_ALLOW_PRIVATE_NETWORKS``, used by tests).
The check runs at registration *and* at every delivery, on the addresses the
name resolves to then, and the request goes to the address that was checked
(TLS still verifies the name), so DNS rebinding cannot slip past it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


class WebhookURLError(ValueError):
    """The URL is unusable (scheme, host, credentials)."""


class SSRFBlocked(ValueError):
    """The URL points at an address endpoints may not reach."""


def blocked_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, private, link-local, shared, reserved, multicast, unspecified…:
    anything that is not a public unicast address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    netloc: str


def parse_url(url: str) -> Target:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise WebhookURLError(f"invalid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookURLError("the URL must be http:// or https://")
    if not parts.hostname:
        raise WebhookURLError("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise WebhookURLError("credentials in the URL are not allowed; sign-verify instead")
    if parts.fragment:
        raise WebhookURLError("the URL may not have a #fragment")
    default = 443 if parts.scheme == "https" else 80
    return Target(parts.scheme, parts.hostname.lower(), port or default, parts.netloc)


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


async def resolve(target: Target, allow_private: bool, timeout: float = 5.0) -> str:
    """The address to connect to: every address the name has must be allowed
    (an attacker controls which one a client would pick)."""
    ip = _literal(target.host)
    if ip is not None:
        addrs = [ip]
    else:
        if target.host == "localhost" or target.host.endswith(".localhost"):
            addrs = [ipaddress.ip_address("127.0.0.1")]
        else:
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
            addrs = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not addrs:
            raise OSError(f"{target.host} has no address")
    if not allow_private:
        for a in addrs:
            if blocked_address(a):
                raise SSRFBlocked(
                    f"{target.host} resolves to {a}, a non-public address; webhooks may "
                    "only reach public addresses unless an admin allows private ones"
                )
    return str(addrs[0])


async def check_endpoint_url(url: str, allow_private: bool) -> str:
    """Validate a URL at registration; returns it normalised.  A name that does
    not resolve now is accepted (DNS may be down); every delivery checks again."""
    target = parse_url(url)
    try:
        await resolve(target, allow_private)
    except SSRFBlocked:
        raise
    except (OSError, TimeoutError):
        pass
    return url.strip()
