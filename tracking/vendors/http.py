"""The only place that builds httpx clients: pooled, with timeouts and a User-Agent, plus token caching
and pacing per connection. Sending never retries by itself: the delivery service decides."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from . import egress
from .base import Token, Vendor, VendorRequest

USER_AGENT = "event-hub/0.1 (+server-side marketing event hub)"


@dataclass
class Exchange:
    """One request sent: its answer or the transport error, and how long it took."""

    request: VendorRequest
    started_at: datetime
    duration_ms: int
    response: httpx.Response | None = None
    error: str = ""
    # The request could not even be encoded (e.g. a lone surrogate in a JSON string): it never left, and
    # sending it again cannot help.
    unsendable: bool = False


class RateLimiter:
    """At most `rate` requests per second in this process, in bursts of at most `burst` after a pause (a token
    bucket; burst 1: evenly spaced) (thread-safe)."""

    def __init__(self, rate: float | None, burst: float = 1.0) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.burst = max(1.0, burst)
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            # The schedule may lag `now` by the bucket's size: that many requests go at once after a pause.
            slot = max(now - (self.burst - 1) * self.interval, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


def build_client(*, timeout: float, max_connections: int = 16) -> httpx.Client:
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=False,
    )


class VendorSession:
    """A connection's pooled client, cached token and pacing, shared by the threads of a process."""

    def __init__(
        self, vendor: Vendor, *, timeout: float, max_rate: float | None, max_connections: int, burst: float = 1.0
    ) -> None:
        self.vendor = vendor
        self.client = build_client(timeout=timeout, max_connections=max_connections)
        self.limiter = RateLimiter(max_rate, burst)
        self._token: Token | None = None
        self._token_lock = threading.Lock()

    def send(self, request: VendorRequest) -> Exchange:
        """Send one request; every failure comes back as an Exchange, never as an exception: a transport
        error (retry later) or a request that cannot be encoded (`unsendable`, never retried)."""
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            prepared = self.client.build_request(
                request.method,
                request.url,
                params=request.params,
                json=request.json,
                data=request.form,
                headers=request.headers,
            )
        except Exception as exc:  # noqa: BLE001 (whatever the encoder raises, only this request fails)
            return Exchange(request, started, _ms(t0), error=f"not sent: {encode_error(exc)}", unsendable=True)
        # -- egress (tracking/vendors/egress.py): the host is resolved and checked again right before it leaves
        # (a name may point inward since it was saved); refused = failed, not retried.
        if refusal := egress.send_refusal(str(prepared.url)):
            return Exchange(request, started, _ms(t0), error=f"not sent: {refusal}", unsendable=True)
        # -- end egress
        self.limiter.wait()
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            response = self.client.send(prepared)
            response.read()
        except httpx.TimeoutException as exc:
            return Exchange(request, started, _ms(t0), error=f"timeout ({type(exc).__name__})")
        except (httpx.HTTPError, OSError, RuntimeError) as exc:
            # RuntimeError: the client was closed under this thread (a retired session); OSError: a socket
            # error httpx did not wrap. Both are transport errors: the delivery is retried.
            return Exchange(request, started, _ms(t0), error=f"connection error ({type(exc).__name__}: {exc})")
        return Exchange(request, started, _ms(t0), response=response)

    def token(self, *, stale: str | None = None) -> str | None:
        """A valid access token, None if the vendor has none. Raises TokenError if the endpoint fails.

        `stale`: a token a 401 was answered with; it is replaced, unless another thread already did."""
        with self._token_lock:
            now = datetime.now(UTC)
            current = self._token
            if current and current.expires_at > now and current.value != stale:
                return current.value
            request = self.vendor.token_request(now)
            if request is None:
                return None
            exchange = self.send(request)
            if exchange.response is None:
                raise TokenError(f"token endpoint unreachable: {exchange.error}", exchange)
            if not exchange.response.is_success:
                raise TokenError(f"token endpoint answered HTTP {exchange.response.status_code}", exchange)
            try:
                self._token = self.vendor.parse_token(exchange.response, now)
            except (ValueError, KeyError, TypeError) as exc:
                raise TokenError(f"token endpoint answered unexpectedly: {exc}", exchange) from None
            return self._token.value

    def close(self) -> None:
        self.client.close()


class TokenError(Exception):
    def __init__(self, message: str, exchange: Exchange | None = None) -> None:
        super().__init__(message)
        self.exchange = exchange


def encode_error(exc: BaseException) -> str:
    """Why a request could not be encoded, without the body (some encoder messages quote the input)."""
    if isinstance(exc, UnicodeError):
        return f"the request cannot be encoded ({type(exc).__name__}: {getattr(exc, 'reason', '')})"
    if isinstance(exc, RecursionError):
        return "the request cannot be encoded (RecursionError: nested too deeply)"
    return f"the request cannot be encoded ({type(exc).__name__}: {str(exc)[:200]})"


def _ms(t0: float) -> int:
    return int((time.perf_counter() - t0) * 1000)
