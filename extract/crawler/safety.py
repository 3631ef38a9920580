"""Refusing non-public addresses (SSRF protection), checked after DNS resolution and pinned for the connection.

How the pin works: every TCP connection the crawler's httpx client opens goes through ``PinnedNetworkBackend``.
It asks ``AddressGuard.resolve`` for the host's addresses, which resolves the name once per crawl (async
``getaddrinfo``), refuses the host if ANY address is non-public (unless allow-listed), caches the checked answer, and
then connects to one of exactly those checked IP addresses. The URL keeps the host name, so the Host header and TLS
SNI / certificate checks still use the name. A DNS answer that changes between the check and the connect (DNS
rebinding) therefore cannot switch the connection to another address: no second lookup happens. Redirects are
followed by the crawler one hop at a time and each new host goes through the same guard; address literals in any
spelling (``2130706433``, ``0x7f.1``, ``[::ffff:127.0.0.1]``) are caught because the check runs on what the
resolver returns, not on the URL text.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

from extract.crawler.records import FetchRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]

NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")


class NonPublicAddress(FetchRefused):
    def __init__(self, host: str, detail: str) -> None:
        super().__init__("non_public_address", f"{host}: {detail}")


async def system_resolver(host: str, port: int) -> list[str]:
    """All addresses the system resolver gives for ``host`` (IP literals come back as themselves)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, 6to4, NAT64), which is where packets really go."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64_PREFIX:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def non_public_kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address (``loopback``, ``private``, ...), or None when it is public."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        kind = non_public_kind(embedded)
        return f"{kind} (embedded in {ip})" if kind else None
    for kind in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private", "site_local"):
        if getattr(ip, f"is_{kind}", False):
            return kind
    if not ip.is_global:  # shared address space 100.64/10, documentation and benchmark ranges, ...
        return "not_global"
    return None


class AddressAllowList:
    """CIDRs, single addresses and host names for which non-public addresses are permitted (tests, intranets)."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.hosts: set[str] = set()
        for entry in entries:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.lower().rstrip("."))

    def allows_host(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts

    def allows_address(self, ip: IPAddress) -> bool:
        return any(ip in net for net in self.networks if net.version == ip.version)


class AddressGuard:
    """Resolves each host once, refuses it if any address is non-public and not allowed, and remembers the answer."""

    def __init__(self, allow: Iterable[str] = (), resolver: Resolver = system_resolver) -> None:
        self.allow = AddressAllowList(allow)
        self._resolver = resolver
        self._checked: dict[str, asyncio.Future[tuple[str, ...]]] = {}

    async def resolve(self, host: str, port: int) -> tuple[str, ...]:
        """The checked addresses to connect to; raises NonPublicAddress. Concurrent callers share one lookup."""
        key = host.lower().strip("[]").rstrip(".")
        if key not in self._checked:
            self._checked[key] = asyncio.ensure_future(self._resolve_and_check(key, port))
        return await asyncio.shield(self._checked[key])

    async def _resolve_and_check(self, host: str, port: int) -> tuple[str, ...]:
        try:
            addresses = await self._resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise FetchRefused("dns_error", f"{host}: {exc}") from None
        if not addresses:
            raise FetchRefused("dns_error", f"{host}: no addresses")
        if self.allow.allows_host(host):
            return tuple(addresses)
        for text in addresses:
            ip = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id
            kind = non_public_kind(ip)
            if kind and not self.allow.allows_address(ip):
                raise NonPublicAddress(host, f"resolves to {ip} ({kind}); add it to allow_addresses to crawl it")
        return tuple(addresses)


class PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend that connects only to addresses the guard has checked (see the module doc)."""

    def __init__(self, guard: AddressGuard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._guard = guard
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._guard.resolve(host, port)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None  # addresses is never empty
        raise error

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
        raise NonPublicAddress(path, "unix sockets are never crawled")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's own HTTP transport with one change: its connection pool uses ``PinnedNetworkBackend``.

    No proxies (``trust_env`` off): a proxy would resolve and connect on our behalf, bypassing the check.
    """

    def __init__(self, guard: AddressGuard, limits: httpx.Limits, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedNetworkBackend(guard),
        )
