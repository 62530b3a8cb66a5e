"""Where the hub may send: vendor URLs must be http(s) to public addresses, unless HUB_EGRESS_ALLOW names them.

A connection's base or auth URL pointing at 127.0.0.1, a private range or a cloud metadata address would
make the hub a proxy into the company's network ("Test connection" and the attempts echo the answers).
The host is resolved and every address it resolves to is checked, at save, at "Test connection" and before
sending (a name that resolved to a public address at save may point inward later: DNS rebinding).

HUB_EGRESS_ALLOW lists exceptions, comma-separated: a host name (`tracardi.internal`), a host and port
(`tracardi.internal:8686`, `127.0.0.1:8765`, `[::1]:8765`), an address (`10.1.2.3`) or a network
(`10.0.0.0/8`). HUB_EGRESS_HTTPS_ONLY (production) refuses plain http except to the hosts allowed there.
No ORM here: the rules read two settings and the resolver, so the worker threads can call them.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

SETTING = "HUB_EGRESS_ALLOW"
HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$")
DEFAULT_PORTS = {"http": 80, "https": 443}
# How long a send-time verdict is reused per host and port (a getaddrinfo per request would be the hot path).
SEND_CACHE_SECONDS = 30.0

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


class EgressRefused(ValueError):
    """This URL may not be sent to; the message says why and how to allow it."""


class EgressUnresolved(EgressRefused):
    """The host does not resolve, so where it points cannot be checked."""


def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host (raises OSError when it gives none)."""
    return sorted({info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)})


# Tests replace this (no DNS in the test environment); everything else goes through it.
resolve: Resolver = system_resolve


@dataclass(frozen=True)
class Allow:
    """One HUB_EGRESS_ALLOW entry: a host name, or a network (a single address is a /32 or /128)."""

    host: str = ""
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None

    def names(self, host: str, port: int) -> bool:
        return bool(self.host) and self.host == host and self.port in (None, port)

    def holds(self, address: Address, port: int) -> bool:
        return self.network is not None and address in self.network and self.port in (None, port)


def allow_list_parse(entries: Iterable[str] | str) -> list[Allow]:
    """HUB_EGRESS_ALLOW as rules; raises ValueError naming a malformed entry."""
    if isinstance(entries, str):
        entries = entries.split(",")
    rules = []
    for raw in entries:
        entry = raw.strip().lower()
        if not entry:
            continue
        host, port = entry, None
        if entry.startswith("["):  # [::1] or [::1]:8765
            host, _, rest = entry[1:].partition("]")
            if rest:
                port = _port(rest.removeprefix(":"), raw)
        elif entry.count(":") == 1:  # host:port (a bare IPv6 address has several colons)
            host, text = entry.split(":")
            port = _port(text, raw)
        try:
            network = ipaddress.ip_network(host, strict=False)
        except ValueError:
            if not HOST_NAME.match(host):
                raise ValueError(f"{SETTING}: {raw.strip()!r} is neither a host, a host:port nor a network") from None
            rules.append(Allow(host=host.rstrip("."), port=port))
        else:
            rules.append(Allow(network=network, port=port))
    return rules


def _port(text: str, raw: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{SETTING}: {raw.strip()!r} has no valid port")
    return int(text)


def _configured() -> tuple[list[Allow], bool]:
    return (
        allow_list_parse(getattr(settings, SETTING, []) or []),
        bool(getattr(settings, "HUB_EGRESS_HTTPS_ONLY", False)),
    )


def _why_internal(address: Address) -> str:
    """What kind of non-public address this is ("" for a public one)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    for kind, flag in (
        ("an unspecified", address.is_unspecified),
        ("a loopback", address.is_loopback),
        ("a link-local", address.is_link_local),
        ("a multicast", address.is_multicast),
        ("a reserved", address.is_reserved),
        ("a private", address.is_private),
    ):
        if flag:
            return kind
    return "" if address.is_global else "a non-public"


def url_check(url: str, *, resolver: Resolver | None = None, unresolved_ok: bool = False) -> None:
    """Raise EgressRefused unless the hub may send to url.

    `unresolved_ok`: a host that does not resolve passes (at send time the request then fails by itself);
    at save it is refused, as where it points cannot be checked."""
    rules, https_only = _configured()
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 0)
    except ValueError as exc:
        raise EgressRefused(f"{url!r} is not a valid URL ({exc})") from None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").rstrip(".")
    if scheme not in DEFAULT_PORTS:
        raise EgressRefused(f"Only http and https URLs are allowed, not {scheme or 'no scheme'}://.")
    if not host:
        raise EgressRefused(f"{url!r} names no host.")
    hint = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    how = f"To allow it, add it to the {SETTING} setting (e.g. {SETTING}={hint})."
    named = any(rule.names(host, port) for rule in rules)
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if named and literal is None:
        return  # the operator vouches for this name, wherever it points (a self-hosted Tracardi)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in (resolver or resolve)(host, port)]
        except (OSError, UnicodeError, ValueError):
            if unresolved_ok:
                return
            raise EgressUnresolved(f"Cannot resolve host {host}: check the URL.") from None
        if not addresses:
            if unresolved_ok:
                return
            raise EgressUnresolved(f"Cannot resolve host {host}: check the URL.")
    allowed = [named or any(rule.holds(a, port) for rule in rules) for a in addresses]
    for address, ok in zip(addresses, allowed, strict=True):
        why = _why_internal(address)
        if why and not ok:
            where = f"{host} is" if literal is not None else f"{host} resolves to {address}, which is"
            raise EgressRefused(f"{where} {why} address: the hub does not send inside the network. {how}")
    if https_only and scheme != "https" and not all(allowed):
        raise EgressRefused(f"Only https URLs are allowed (HUB_EGRESS_HTTPS_ONLY), not http://{hint}. {how}")


def url_refusal(url: str, *, resolver: Resolver | None = None) -> str:
    """Why the hub may not save url as a vendor URL ("" when it may)."""
    try:
        url_check(url, resolver=resolver)
    except EgressRefused as exc:
        return str(exc)
    return ""


_send_cache: dict[tuple, tuple[float, str]] = {}
_send_lock = threading.Lock()


def send_refusal(url: str) -> str:
    """Why a request to url may not leave now ("" when it may): the check before each send, the verdict
    reused for a few seconds per scheme, host and port. A host that does not resolve passes (its request
    fails as a transport error)."""
    policy = (repr(getattr(settings, SETTING, None)), getattr(settings, "HUB_EGRESS_HTTPS_ONLY", False))
    try:
        parts = urlsplit(url)
        key = (parts.scheme.lower(), (parts.hostname or "").lower(), parts.port, policy)
    except ValueError:
        key = ("", url, None, policy)
    now = time.monotonic()
    with _send_lock:
        cached = _send_cache.get(key)
    if cached and cached[0] > now:
        return cached[1]
    try:
        url_check(url, unresolved_ok=True)
        refusal = ""
    except EgressRefused as exc:
        refusal = f"refused: {exc}"
    with _send_lock:
        if len(_send_cache) > 1000:
            _send_cache.clear()
        _send_cache[key] = (now + SEND_CACHE_SECONDS, refusal)
    return refusal


def send_cache_clear() -> None:
    with _send_lock:
        _send_cache.clear()
