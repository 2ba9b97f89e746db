"""Requests to addresses a customer chose (webhooks): never into our own network.

A registered URL could otherwise aim the server at its loopback, the LAN or a cloud
metadata service (SSRF). Addresses are judged where the connection is made: the
`GuardedResolver` drops refused addresses from every name it resolves, so a name that
pointed somewhere public at registration and at 127.0.0.1 later (DNS rebinding) still
reaches nothing, and no redirect or retry escapes it. aiohttp connects to an address
literal without asking the resolver, so `url_refusal` judges literals before each request.
"""
from __future__ import annotations

import ipaddress
import re
import socket

import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

MAX_URL = 2000
# Each refused kind of address, in the order a message names them.
REFUSED_KINDS = (("is_loopback", "loopback"), ("is_unspecified", "unspecified"),
                 ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                 ("is_private", "private"), ("is_reserved", "reserved"))
NAT64 = ipaddress.ip_network("64:ff9b::/96")
_HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$",
                        re.IGNORECASE)
_NUMBER = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)


class RefusedAddress(OSError):
    """Every address a host resolved to is one webhooks may not reach."""


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (::ffff:a.b.c.d, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


def address_refusal(address: str) -> str | None:
    """Why connecting to `address` is refused; None for a public address."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
    except ValueError:
        return f"{address} is not an IP address"
    judged = ip
    if isinstance(ip, ipaddress.IPv6Address):
        judged = _embedded_ipv4(ip) or ip
    for attribute, kind in REFUSED_KINDS:
        if getattr(judged, attribute):
            return f"{address} is a {kind} address"
    if not judged.is_global:
        return f"{address} is not a public address"
    return None


def literal_address(host: str) -> str | None:
    """The host as an IP address when it is one (`::1`, `10.0.0.1`), else None."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def url_refusal(url: str, allow_private: bool) -> str | None:
    """Why webhooks may not be sent to `url`; None when they may."""
    if len(url) > MAX_URL:
        return f"the URL is longer than {MAX_URL} characters"
    if not url.startswith(("http://", "https://")):
        return "the URL must start with http:// or https://"
    try:
        parsed = yarl.URL(url)
    except ValueError as error:
        return f"not a usable URL ({error})"
    host = parsed.host
    if not parsed.is_absolute() or not host:
        return "the URL needs a host"
    if parsed.raw_user is not None or parsed.raw_password is not None:
        return "the URL may not carry a user name or password"
    literal = literal_address(host)
    if literal is None:
        if not _HOST_NAME.match(parsed.raw_host or ""):
            return f"{host!r} is not a valid host name"
        if _NUMBER.match(host.rstrip(".").rsplit(".", 1)[-1]):
            return f"{host} is not a canonical IP address (write it as a.b.c.d)"
        return None
    if allow_private:
        return None
    problem = address_refusal(literal)
    if problem is None:
        return None
    return f"{problem}; webhooks only go to public addresses"


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver, keeping only the addresses webhooks may reach (all with
    `allow_private`); a host with none left fails with RefusedAddress, saying why."""

    def __init__(self, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()
        self._allow_private = allow_private

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if self._allow_private:
            return found
        kept = [result for result in found if address_refusal(result["host"]) is None]
        if not kept:
            reasons = sorted({str(address_refusal(result["host"])) for result in found})
            raise RefusedAddress(f"refused: {host} resolves only to addresses webhooks may not "
                                 f"reach ({'; '.join(reasons)})")
        return kept

    async def close(self) -> None:
        await self._inner.close()
