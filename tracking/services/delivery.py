"""Delivery: claim due deliveries of a connection, send them through its vendor module, record attempts,
and decide delivered / retry later / failed. At-least-once; the vendor's dedup key makes it exactly-once
where the vendor dedups (Webmarketer nonce)."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..models import Attempt, Delivery, LeadDelivery, VendorConnection, VendorKind
from ..vendors import vendor_class
from ..vendors.base import ConfigurationError, OutgoingEvent, Result, Vendor, VendorRequest, excerpt, redact
from ..vendors.http import Exchange, TokenError, VendorSession

log = logging.getLogger(__name__)

# Consecutive transient failures that open a connection's circuit, and for how long.
CIRCUIT_THRESHOLD = 10
CIRCUIT_COOLDOWN = timedelta(seconds=30)


# -- waking dispatchers --------------------------------------------------------------------------------
def connections_wake(connection_ids: set[int] | list[int]) -> None:
    """After the current transaction commits, start a dispatch run for each connection (one message each)."""
    from ..tasks import dispatch_connection

    for connection_id in sorted(set(connection_ids)):
        transaction.on_commit(lambda cid=connection_id: dispatch_connection.delay(cid))


# -- vendor sessions (per process) ------------------------------------------------------------------------
_sessions: dict[int, tuple[datetime, VendorSession]] = {}
_sessions_lock = threading.Lock()


def vendor_for(connection: VendorConnection) -> Vendor:
    return vendor_class(connection.kind)(
        base_url=connection.base_url,
        auth_url=connection.auth_url,
        settings=connection.settings,
        secrets=connection.secrets,
    )


def session_for(connection: VendorConnection) -> VendorSession:
    """The process's pooled session for this connection, rebuilt when the connection was edited."""
    with _sessions_lock:
        cached = _sessions.get(connection.pk)
        if cached and cached[0] == connection.updated_at:
            return cached[1]
        if cached:
            cached[1].close()
        session = VendorSession(
            vendor_for(connection),
            timeout=connection.timeout_seconds,
            max_rate=connection.max_rate,
            max_connections=settings.HUB_DISPATCH_CONCURRENCY,
        )
        _sessions[connection.pk] = (connection.updated_at, session)
        return session


# -- claiming --------------------------------------------------------------------------------------------
def deliveries_claim(*, connection_id: int, limit: int) -> list[Delivery]:
    """Mark up to `limit` due deliveries of a connection as `sending`, atomically: no two workers get the
    same one (SKIP LOCKED on PostgreSQL; on SQLite the IMMEDIATE transaction holds the write lock and
    the conditional update re-checks the status)."""
    now = timezone.now()
    due = Delivery.objects.filter(
        connection_id=connection_id, status__in=Delivery.DUE_STATUSES, next_attempt_at__lte=now
    ).order_by("next_attempt_at", "id")
    with transaction.atomic():
        if db_connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        ids = list(due.values_list("id", flat=True)[:limit])
        if not ids:
            return []
        Delivery.objects.filter(id__in=ids, status__in=Delivery.DUE_STATUSES).update(
            status=Delivery.Status.SENDING, claimed_at=now
        )
    return list(
        Delivery.objects.filter(id__in=ids, status=Delivery.Status.SENDING, claimed_at=now)
        .select_related("event", "route")
        .order_by("id")
    )


def outgoing_event(delivery: Delivery) -> OutgoingEvent:
    event, route = delivery.event, delivery.route
    return OutgoingEvent(
        key=delivery.pk,
        nonce=delivery.nonce,
        event_type=event.event_type_ref,
        event_date=event.event_date,
        data=event.data,
        tracker_id=event.tracker_id,
        vendor_event_name=route.vendor_event_name if route else "",
        mapping=route.mapping if route else {},
        options=route.options if route else {},
    )


# -- sending ---------------------------------------------------------------------------------------------
@dataclass
class Sent:
    """What happened to the deliveries of one vendor request: its exchanges and the final result."""

    keys: tuple[int, ...]
    result: Result
    exchanges: list[tuple[Exchange, Result]] = field(default_factory=list)


def exchange_send(
    session: VendorSession,
    request: VendorRequest,
    token: str | None,
    rebuild: Callable[[str | None], VendorRequest],
    classify: Callable[[VendorRequest, httpx.Response], Result] | None = None,
) -> tuple[Result, list[tuple[Exchange, Result]]]:
    """Send one request; on a 401 take a fresh token and send it once more, rebuilt with that token.
    Returns the final result and every exchange with its own result. No ORM: runs in worker threads."""
    classify = classify or session.vendor.classify
    exchanges: list[tuple[Exchange, Result]] = []
    for refreshed in (False, True):
        exchange = session.send(request)
        result = Result("retry", exchange.error) if exchange.response is None else classify(request, exchange.response)
        exchanges.append((exchange, result))
        if not result.auth_expired or refreshed:
            return result, exchanges
        try:
            token = session.token(stale=token)
        except TokenError as exc:
            failed = Result("retry", f"authentication failed: {exc}")
            if exc.exchange:
                exchanges.append((exc.exchange, failed))
            return failed, exchanges
        request = rebuild(token)
    raise AssertionError("unreachable")


def _send(session: VendorSession, request: VendorRequest, events: dict[int, OutgoingEvent], token: str | None) -> Sent:
    """Send one request of events (401: once more with a fresh token). Runs in a worker thread: no ORM."""
    vendor = session.vendor
    # The same events again, signed with the new token: one request, as before.
    result, exchanges = exchange_send(
        session, request, token, lambda fresh: vendor.build([events[k] for k in request.keys], fresh)[0]
    )
    return Sent(request.keys, result, exchanges)


def _send_all(session: VendorSession, events: list[OutgoingEvent]) -> list[Sent]:
    by_key = {e.key: e for e in events}
    keys = tuple(by_key)
    try:
        token = session.token()
    except TokenError as exc:
        result = Result("retry", f"authentication failed: {exc}")
        return [Sent(keys, result, [(exc.exchange, result)] if exc.exchange else [])]
    requests = session.vendor.build(events, token)
    covered = {k for r in requests for k in r.keys}
    sent: list[Sent] = []
    if missing := [k for k in keys if k not in covered]:
        # A vendor module that cannot build a request for an event says so by leaving it out, and says why.
        reasons = session.vendor.refusals([by_key[k] for k in missing])
        by_reason: dict[str, list[int]] = {}
        for k in missing:
            reason = "the vendor module built no request for this event"
            by_reason.setdefault(f"not sent: {reasons[k]}" if reasons.get(k) else reason, []).append(k)
        sent += [Sent(tuple(ks), Result("failed", reason)) for reason, ks in by_reason.items()]
    workers = max(1, min(settings.HUB_DISPATCH_CONCURRENCY, len(requests)))
    if workers == 1:
        return sent + [_send(session, r, by_key, token) for r in requests]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="send") as pool:
        return sent + list(pool.map(lambda r: _send(session, r, by_key, token), requests))


# -- outcomes --------------------------------------------------------------------------------------------
def backoff_seconds(*, attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Capped exponential backoff with full jitter; never sooner than the vendor's Retry-After."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    delay = random.uniform(0, ceiling)
    return max(delay, retry_after or 0.0)


def attempt_fields(exchange: Exchange, result: Result) -> dict:
    """The recorded columns of one exchange (Attempt, LeadAttempt): secrets redacted, answer excerpted."""
    request, response = exchange.request, exchange.response
    return {
        "started_at": exchange.started_at,
        "duration_ms": exchange.duration_ms,
        "method": request.method,
        "url": request.recorded_url(),
        "request_body": request.recorded_body(),
        "response_status": response.status_code if response is not None else None,
        "response_body": _redacted_excerpt(response, request) if response is not None else "",
        "outcome": Attempt.Outcome.RETRY if result.outcome == "retry" else result.outcome,
        "error": result.error,
    }


def _attempt(delivery_id: int, exchange: Exchange, result: Result) -> Attempt:
    return Attempt(delivery_id=delivery_id, **attempt_fields(exchange, result))


def _redacted_excerpt(response: httpx.Response, request: VendorRequest) -> str:
    return redact(excerpt(response, 2000), request.sensitive)


def _apply(connection: VendorConnection, deliveries: dict[int, Delivery], sent: list[Sent]) -> None:
    """Record attempts and move each delivery to its next status (only if still ours)."""
    now = timezone.now()
    attempts: list[Attempt] = []
    for item in sent:
        for key in item.keys:
            attempts += [_attempt(key, exchange, result) for exchange, result in item.exchanges]
    with transaction.atomic():
        Attempt.objects.bulk_create(attempts)
        for item in sent:
            n_attempts = max(1, len(item.exchanges))
            for key in item.keys:
                delivery = deliveries[key]
                Delivery.objects.filter(pk=key, status=Delivery.Status.SENDING, claimed_at=delivery.claimed_at).update(
                    attempts=F("attempts") + n_attempts,
                    claimed_at=None,
                    **next_state(
                        connection,
                        attempts=delivery.attempts,
                        created_at=delivery.created_at,
                        result=item.result,
                        n=n_attempts,
                        now=now,
                    ),
                )


def next_state(
    connection: VendorConnection, *, attempts: int, created_at: datetime, result: Result, n: int, now: datetime
) -> dict:
    """The fields that move a delivery (of an event or of a lead change) after `n` more attempts: delivered,
    failed, or retrying after a backoff; failed once the connection's give-up window since `created_at` is over."""
    if result.outcome == "delivered":
        fields = {"status": Delivery.Status.DELIVERED, "delivered_at": now, "last_error": ""}
        if result.vendor_ref:
            fields["vendor_ref"] = result.vendor_ref
        return fields
    if result.outcome == "failed":
        return {"status": Delivery.Status.FAILED, "last_error": result.error}
    attempt = attempts + n
    delay = backoff_seconds(
        attempt=attempt,
        base=connection.retry_base_seconds,
        cap=connection.retry_max_seconds,
        retry_after=result.retry_after,
    )
    give_up_at = created_at + timedelta(seconds=connection.give_up_after_seconds)
    if now + timedelta(seconds=delay) > give_up_at:
        return {"status": Delivery.Status.FAILED, "last_error": f"gave up after {attempt} attempts: {result.error}"}
    return {
        "status": Delivery.Status.RETRYING,
        "next_attempt_at": now + timedelta(seconds=delay),
        "last_error": result.error,
    }


def circuit_update(connection: VendorConnection, sent: list[Sent]) -> None:
    """Open the circuit after CIRCUIT_THRESHOLD transient failures in a row; close it on any success."""
    outcomes = [s.result.outcome for s in sent]
    conn = VendorConnection.objects.filter(pk=connection.pk)
    if "delivered" in outcomes:
        if connection.circuit_failures or connection.circuit_open_until:
            conn.update(circuit_failures=0, circuit_open_until=None)
    elif outcomes and all(o == "retry" for o in outcomes):
        failures = connection.circuit_failures + len(outcomes)
        if failures >= CIRCUIT_THRESHOLD:
            log.warning("circuit of connection %s open for %s", connection.name, CIRCUIT_COOLDOWN)
            conn.update(circuit_failures=failures, circuit_open_until=timezone.now() + CIRCUIT_COOLDOWN)
        else:
            conn.update(circuit_failures=failures)


def connection_dispatch(*, connection_id: int) -> int:
    """Claim and send one batch of a connection's due deliveries; returns how many were claimed."""
    connection = VendorConnection.objects.filter(pk=connection_id, enabled=True).first()
    if connection is None or connection.circuit_open:
        return 0
    deliveries = {d.pk: d for d in deliveries_claim(connection_id=connection_id, limit=connection.batch_size)}
    if not deliveries:
        return 0
    events = [outgoing_event(d) for d in deliveries.values()]
    try:
        session = session_for(connection)
        session.vendor.check()
    except (ConfigurationError, LookupError, ValueError) as exc:
        # The connection cannot work as configured: keep the deliveries until staff fix it.
        sent = [Sent(tuple(deliveries), Result("retry", f"connection misconfigured: {exc}"))]
    else:
        sent = _send_all(session, events)
    _apply(connection, deliveries, sent)
    circuit_update(connection, sent)
    if connection.kind == VendorKind.WEBMARKETER:
        # Lead changes made before these events reached Webmarketer were waiting for their ids.
        delivered = [deliveries[k].event_id for s in sent if s.result.vendor_ref for k in s.keys]
        if delivered:
            from .leads import lead_changes_release

            lead_changes_release(connection_id=connection.pk, event_ids=delivered)
    return len(deliveries)


# -- sweeping (beat) --------------------------------------------------------------------------------------
def sending_take_back(model: type[Delivery] | type[LeadDelivery], *, now: datetime) -> int:
    """Rows of `model` stuck in `sending` (their worker died before recording an answer) become due again."""
    stuck_before = now - timedelta(seconds=settings.HUB_STUCK_AFTER_SECONDS)
    recovered = model.objects.filter(status="sending", claimed_at__lt=stuck_before).update(
        status="retrying",
        claimed_at=None,
        next_attempt_at=now,
        last_error="taken back: the worker sending it stopped before recording an answer",
    )
    if recovered:
        log.warning("recovered %d %s stuck in sending", recovered, model._meta.verbose_name_plural)
    return recovered


def connections_due(model: type[Delivery] | type[LeadDelivery], *, now: datetime) -> list[int]:
    """Enabled connections with rows of `model` due now, leaving out those whose circuit is open."""
    due = set(
        model.objects.filter(status__in=model.DUE_STATUSES, next_attempt_at__lte=now, connection__enabled=True)
        .values_list("connection_id", flat=True)
        .distinct()
    )
    open_circuits = set(
        VendorConnection.objects.filter(pk__in=due, circuit_open_until__gt=now).values_list("pk", flat=True)
    )
    return sorted(due - open_circuits)


def deliveries_sweep() -> dict[str, int]:
    """Take back deliveries stuck in `sending` (their worker died) and wake every connection with due work."""
    now = timezone.now()
    recovered = sending_take_back(Delivery, now=now)
    woken = connections_due(Delivery, now=now)
    from ..tasks import dispatch_connection

    for connection_id in woken:
        dispatch_connection.delay(connection_id)
    return {"recovered": recovered, "woken": len(woken)}
