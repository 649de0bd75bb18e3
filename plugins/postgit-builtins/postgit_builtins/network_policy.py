"""Which hosts HitEndpoint may reach: allow and deny lists of host names and networks.

Checked when a connection is opened, after DNS resolution, so a name that resolves to a denied address is refused
and the connection goes to the very address that was checked (no second lookup an attacker could answer
differently); redirects open new connections and are checked the same way.

``POSTGIT_HTTP_DENY`` (default: link-local networks, where cloud metadata endpoints live, plus the few other
metadata addresses) and ``POSTGIT_HTTP_ALLOW`` (default: everything) are comma-separated lists of host names
(``api.example.com``, ``*.example.com``) and networks (``10.0.0.0/8``, ``127.0.0.1``). Deny wins over allow.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import typing
from dataclasses import dataclass

import anyio
import httpcore
import httpx

DEFAULT_DENY = "169.254.0.0/16,fe80::/10,100.100.100.200/32,fd00:ec2::254/128"
ALLOW_VARIABLE = "POSTGIT_HTTP_ALLOW"
DENY_VARIABLE = "POSTGIT_HTTP_DENY"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedHost(Exception):
    """A request's host, or an address it resolves to, is not allowed."""


@dataclass(frozen=True)
class Rules:
    """One list: host-name patterns and networks."""

    names: tuple[str, ...] = ()
    networks: tuple[Network, ...] = ()

    @classmethod
    def parse(cls, text: str, variable: str) -> Rules:
        names: list[str] = []
        networks: list[Network] = []
        for raw in text.split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                if not all(part.isalnum() or part in "-.*" for part in entry):
                    raise ValueError(f"{variable}: '{entry}' is neither a host name nor a network") from None
                names.append(entry)
        return cls(tuple(names), tuple(networks))

    def matches_name(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == name or (name.startswith("*.") and host.endswith(name[1:])) for name in self.names)

    def matches_address(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)


@dataclass(frozen=True)
class NetworkPolicy:
    """The allow and deny lists; ``allow`` None means every host not denied."""

    deny: Rules
    allow: Rules | None = None

    @classmethod
    def from_env(cls) -> NetworkPolicy:
        allow = os.environ.get(ALLOW_VARIABLE)
        return cls(
            deny=Rules.parse(os.environ.get(DENY_VARIABLE, DEFAULT_DENY), DENY_VARIABLE),
            allow=Rules.parse(allow, ALLOW_VARIABLE) if allow else None,
        )

    def check(self, host: str, addresses: list[str]) -> None:
        """BlockedHost unless ``host`` and every one of its ``addresses`` may be reached."""
        if self.deny.matches_name(host):
            raise BlockedHost(f"host {host} is denied by {DENY_VARIABLE}")
        for address in addresses:
            if self.deny.matches_address(address):
                raise BlockedHost(f"host {host} resolves to {address}, which {DENY_VARIABLE} denies")
        if self.allow is None or self.allow.matches_name(host):
            return
        for address in addresses:
            if not self.allow.matches_address(address):
                raise BlockedHost(f"host {host} ({address}) is not in {ALLOW_VARIABLE}")


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the policy checked between DNS resolution and connecting."""

    def __init__(self, policy: NetworkPolicy):
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        self.policy.check(host, addresses)
        failure: Exception | None = None
        for address in addresses:  # every address was checked; connect to the first that answers
            try:
                return await self.inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport whose connections all go through :class:`GuardedBackend`."""

    def __init__(self, policy: NetworkPolicy):
        super().__init__()
        # httpx builds its httpcore pool without a way to pass a network backend: build an equivalent one.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(policy),
        )
