"""Which hosts HitEndpoint may reach: allow and deny lists of host names and networks.

Checked when a connection is opened, before and after DNS resolution, so a name that resolves to a denied address
is refused and the connection goes to the very address that was checked (no second lookup an attacker could answer
differently); redirects open new connections and are checked the same way.

An address is judged by where the operating system will connect, however it is spelled: the unspecified address
(``0.0.0.0``, ``0``, ``[::]``) connects to the local host, so it counts as loopback; an IPv4-mapped or
IPv4-compatible IPv6 address (``[::ffff:127.0.0.1]``, ``[::127.0.0.1]``), a NAT64 (``64:ff9b::/96``) or 6to4
(``2002::/16``) one counts as the IPv4 address inside it too; the shorthand, decimal, octal and hexadecimal forms
the C library accepts (``127.1``, ``2130706433``, ``0177.0.0.1``, ``0x7f.1``) are read as it reads them, without a
DNS lookup; host names are compared without case and trailing dots.

``POSTGIT_HTTP_DENY`` (default: link-local networks, where cloud metadata endpoints live, plus the few other
metadata addresses) and ``POSTGIT_HTTP_ALLOW`` (default: everything) are comma-separated lists of host names
(``api.example.com``, ``*.example.com``) and networks (``10.0.0.0/8``, ``127.0.0.1``). Deny wins over allow.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import ssl
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
                names.append(canonical_name(entry))
        return cls(tuple(names), tuple(networks))

    def matches_name(self, host: str) -> bool:
        host = canonical_name(host)
        return any(host == name or (name.startswith("*.") and host.endswith(name[1:])) for name in self.names)

    def matches_address(self, address: str) -> bool:
        """Whether any address a connection to ``address`` may reach is in one of the networks."""
        return any(self._contains(ip) for ip in destinations(address))

    def contains_all(self, address: str) -> bool:
        """Whether every address a connection to ``address`` may reach is in one of the networks."""
        return all(self._contains(ip) for ip in destinations(address))

    def _contains(self, ip: IPAddress) -> bool:
        return any(ip.version == network.version and ip in network for network in self.networks)


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

    def check_name(self, host: str) -> None:
        """BlockedHost if the host name is denied (before DNS)."""
        if self.deny.matches_name(host):
            raise BlockedHost(f"host {host} is denied by {DENY_VARIABLE}")

    def check(self, host: str, addresses: list[str]) -> None:
        """BlockedHost unless ``host`` and every one of its ``addresses`` may be reached."""
        self.check_name(host)
        for address in addresses:
            if self.deny.matches_address(address):
                raise BlockedHost(f"host {host} resolves to {_describe(address)}, which {DENY_VARIABLE} denies")
        if self.allow is None or self.allow.matches_name(host):
            return
        for address in addresses:
            if not self.allow.contains_all(address):
                raise BlockedHost(f"host {host} ({_describe(address)}) is not in {ALLOW_VARIABLE}")


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_LOCAL_HOST = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NUMERIC_IPV4 = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}", re.IGNORECASE)


def canonical_name(host: str) -> str:
    """A host name as DNS compares it: lower case, without the trailing dots of a fully qualified name."""
    return host.lower().rstrip(".")


def ip_literal(host: str) -> str | None:
    """The address ``host`` spells, in canonical form, when it is an IP address in any spelling; else None.

    IPv4 is read as the C library's ``inet_aton`` reads it (``127.1``, ``2130706433``, ``0177.0.0.1``,
    ``0x7f.1``), which is how ``getaddrinfo`` and so the connection would read it.
    """
    host = host.strip("[]")
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        pass
    name = host.rstrip(".")
    if _NUMERIC_IPV4.fullmatch(name):
        try:
            return socket.inet_ntoa(socket.inet_aton(name))
        except OSError:
            return None
    return None


def destinations(address: str) -> tuple[IPAddress, ...]:
    """Every address a connection to ``address`` may reach: itself, the IPv4 address inside it, the local host."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return destinations(str(ip.ipv4_mapped))
        if ip.is_unspecified:
            return (ip, *_LOCAL_HOST)
        inner: ipaddress.IPv4Address | None = None
        compatible = ip.packed[:12] == bytes(12) and not ip.is_loopback  # ::a.b.c.d
        if compatible or ip in _NAT64:
            inner = ipaddress.IPv4Address(ip.packed[12:])
        elif ip.sixtofour is not None:
            inner = ip.sixtofour
        return (ip, *destinations(str(inner))) if inner is not None else (ip,)
    if ip in _THIS_NETWORK:  # 0.0.0.0 connects to the local host
        return (ip, *_LOCAL_HOST)
    return (ip,)


def _describe(address: str) -> str:
    reached = [str(ip) for ip in destinations(address) if str(ip) != address]
    return f"{address} (which reaches {', '.join(reached)})" if reached else address


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
        literal = ip_literal(host)
        if literal is not None:  # an address in any spelling: checked as the address it is, no lookup
            addresses = [literal]
        else:
            self.policy.check_name(host)
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

    def __init__(self, policy: NetworkPolicy, ssl_context: ssl.SSLContext):
        super().__init__(verify=ssl_context)
        # httpx builds its httpcore pool without a way to pass a network backend: build an equivalent one.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=GuardedBackend(policy),
        )
