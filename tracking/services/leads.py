"""Leads: record state and statistic changes of events (qualified, converted, turnover …) and deliver each
to the Webmarketer connections the event went to, with the retry and attempt rules of event deliveries.

A change waits until its event has a Webmarketer id (the update addresses the event by that id), then goes.
Changes of one lane (event × connection × kind × storageKey) keep their order: at most one is in flight
(a partial unique index says so), and an older change is never sent once a newer one exists: it is
superseded, since Webmarketer keeps one value per state or statistic, with its date.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db import connection as db_connection
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from ..models import Delivery, Event, LeadAttempt, LeadChange, LeadDelivery, VendorConnection, VendorKind
from ..vendors.base import ConfigurationError, Result, VendorRequest
from ..vendors.http import TokenError, VendorSession
from ..vendors.webmarketer import classify_update
from .audit import audit_record
from .delivery import (
    Sent,
    attempt_fields,
    circuit_update,
    claimed_settle,
    connections_due,
    exchange_send,
    sending_take_back,
    session_for,
)
from .rollups import lead_change_counted
from .wake import lead_changes_wake

log = logging.getLogger(__name__)

# A change dated later than this is refused (clocks of the browser and the server may differ a little).
FUTURE_SLACK = timedelta(minutes=5)
CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("999999999999.99")  # what LeadChange.value holds (14 digits, 2 decimals)
# What a newer change of the same lane replaces at once (a change in flight is left to finish).
SUPERSEDABLE = (
    LeadDelivery.Status.WAITING,
    LeadDelivery.Status.PENDING,
    LeadDelivery.Status.RETRYING,
    LeadDelivery.Status.FAILED,
)
# Waiting changes the sweep resolves per page (it pages through every one that can move).
WAITING_PER_SWEEP = 1000
# Event delivery statuses that may still give the event its Webmarketer id.
UNDER_WAY = (Delivery.Status.PENDING, Delivery.Status.SENDING, Delivery.Status.RETRYING)


class LeadChangeError(ValueError):
    """A change that cannot be recorded or retried; the message says why, for the person who asked."""


# -- reading a lead's type ------------------------------------------------------------------------------------
def lead_fields(event: Event, kind: str) -> list[dict[str, Any]]:
    """The states (or statistics) the event's type declares."""
    if event.event_type is None:
        return []
    return event.event_type.states if kind == LeadChange.Kind.STATE else event.event_type.statistics


def is_lead(event: Event) -> bool:
    """An event is a lead when it is valid and its type declares states."""
    return event.status == Event.Status.OK and bool(lead_fields(event, LeadChange.Kind.STATE))


def _lane(change: LeadChange) -> QuerySet[LeadChange]:
    return LeadChange.objects.filter(event_id=change.event_id, kind=change.kind, storage_key=change.storage_key)


# -- validating input ---------------------------------------------------------------------------------------
def _value(kind: str, value: Any, label: str) -> Decimal:
    if kind == LeadChange.Kind.STATE:
        if str(value) not in ("0", "1"):
            raise LeadChangeError(f"A state is set (1) or undone (0), not {value!r}.")
        return Decimal(str(value)).quantize(CENT)
    text = str(value).strip().replace(" ", "").replace("\u202f", "").replace(",", ".")
    if not text:
        raise LeadChangeError(f"Enter the {label} amount.")
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise LeadChangeError(f"{value!r} is not an amount: write it like 4000 or 4000.50.") from None
    if not amount.is_finite():
        raise LeadChangeError(f"{value!r} is not an amount: write it like 4000 or 4000.50.")
    if amount < 0:
        raise LeadChangeError(f"The {label} cannot be negative.")
    if amount != amount.quantize(CENT):
        raise LeadChangeError(f"The {label} takes at most 2 decimals.")
    if amount > MAX_AMOUNT:
        raise LeadChangeError(f"The {label} is too large (at most {MAX_AMOUNT}).")
    return amount.quantize(CENT)


def _date(event: Event, date: datetime | None, now: datetime) -> datetime:
    if date is None:
        return now
    if timezone.is_naive(date):
        raise LeadChangeError("The date needs a timezone.")
    if date > now + FUTURE_SLACK:
        raise LeadChangeError("The date is in the future: a change is dated when it happened.")
    if date < event.event_date:
        came = timezone.localtime(event.event_date).strftime("%Y-%m-%d %H:%M:%S %Z")
        raise LeadChangeError(f"The lead came in on {came}: a change cannot be dated before that.")
    return date


# -- where the event stands at a connection ------------------------------------------------------------------
@dataclass(frozen=True)
class Standing:
    """The event's Webmarketer id at one connection, or why there is none: still on its way (both empty),
    or never getting there (`problem`)."""

    vendor_ref: str = ""
    problem: str = ""


def _standings(pairs: set[tuple[int, int]]) -> dict[tuple[int, int], Standing]:
    """For (event id, connection id) pairs: the Webmarketer id of the event the newest generation sends. A
    fixed event replayed from the trash goes under a new nonce, so it is a new event at Webmarketer: changes
    wait for its id, never take the trashed one's. Generations under the same nonce (plain replays) are one
    event there: any of them delivered gives the id."""
    if not pairs:
        return {}
    rows = (
        Delivery.objects.filter(event_id__in={e for e, _ in pairs}, connection_id__in={c for _, c in pairs})
        .select_related("connection")
        .order_by("-generation", "-id")
    )
    by_pair: dict[tuple[int, int], list[Delivery]] = {}
    for row in rows:
        by_pair.setdefault((row.event_id, row.connection_id), []).append(row)
    standings = {}
    for pair in pairs:
        deliveries = by_pair.get(pair, [])
        if not deliveries:
            standings[pair] = Standing(problem="The event has no delivery to this connection any more.")
            continue
        newest = deliveries[0]
        same_event = [d for d in deliveries if d.nonce == newest.nonce]
        delivered = next((d for d in same_event if d.status == Delivery.Status.DELIVERED and d.vendor_ref), None)
        if delivered:
            standings[pair] = Standing(vendor_ref=delivered.vendor_ref)
        elif any(d.status in UNDER_WAY for d in same_event):
            standings[pair] = Standing()  # pending, sending or retrying: wait for it
        else:
            why = newest.last_error or newest.get_status_display().lower()
            standings[pair] = Standing(
                problem=f"The event itself did not reach {newest.connection.name} ({why}): replay the event, "
                "then retry this change."
            )
    return standings


def _lead_wake(connection_ids: set[int]) -> None:
    """After the current transaction commits, start a lead dispatch run for each connection (debounced)."""
    lead_changes_wake(connection_ids)


def _waiting_resolve(waiting: QuerySet[LeadDelivery], *, wake: bool = True) -> int:
    """Move waiting deliveries on: pending once their event has its Webmarketer id, failed when the event
    will not get there; the others keep waiting. Returns how many became pending (their connections are
    woken unless the caller wakes them itself)."""
    rows = list(waiting.filter(status=LeadDelivery.Status.WAITING).values_list("id", "event_id", "connection_id"))
    if not rows:
        return 0
    standings = _standings({(e, c) for _, e, c in rows})
    now = timezone.now()
    ready: list[int] = []
    woken: set[int] = set()
    with transaction.atomic():
        for pk, event_id, connection_id in rows:
            standing = standings[(event_id, connection_id)]
            still_waiting = LeadDelivery.objects.filter(pk=pk, status=LeadDelivery.Status.WAITING)
            if standing.vendor_ref:
                still_waiting.update(
                    status=LeadDelivery.Status.PENDING, queued_at=now, next_attempt_at=now, last_error=""
                )
                ready.append(pk)
                woken.add(connection_id)
            elif standing.problem:
                still_waiting.update(status=LeadDelivery.Status.FAILED, last_error=standing.problem)
        if wake:
            _lead_wake(woken)
    return len(ready)


def lead_changes_release(*, connection_id: int, event_ids: list[int]) -> int:
    """Events just reached Webmarketer: their waiting changes go now (called by the delivery service)."""
    return _waiting_resolve(LeadDelivery.objects.filter(connection_id=connection_id, event_id__in=set(event_ids)))


# -- recording and retrying changes ---------------------------------------------------------------------------
@transaction.atomic
def lead_change_record(
    *, event: Event, kind: str, storage_key: str, value: Any, date: datetime | None = None, user: Any = None
) -> LeadChange:
    """Record one change (who, when, value, date) and owe it to every Webmarketer connection the event went
    to: it goes at once if the event has its Webmarketer id there, else it waits for it."""
    if kind not in LeadChange.Kind.values:
        raise LeadChangeError(f"Unknown kind of change {kind!r}: state or statistic.")
    if event.status != Event.Status.OK:
        raise LeadChangeError("This event is invalid: it was never sent, so it is not a lead.")
    declared = {f["storageKey"]: f for f in lead_fields(event, kind)}
    if storage_key not in declared:
        names = ", ".join(declared) or "none"
        raise LeadChangeError(
            f"{storage_key!r} is not a {kind} of the event type {event.event_type_ref} (its {kind}s: {names})."
        )
    label = declared[storage_key].get("label") or storage_key
    now = timezone.now()
    change = LeadChange.objects.create(
        event=event,
        kind=kind,
        storage_key=storage_key,
        value=_value(kind, value, label),
        date=_date(event, date, now),
        user=user if getattr(user, "is_authenticated", False) else None,
        created_at=now,
    )
    lead_change_counted(change)  # rollups (dashboard's lead funnel)
    # Older changes of the lane not yet sent (or failed) never go now: Webmarketer keeps the latest value.
    # (A change in flight finishes first: the claim keeps one in flight per lane.)
    LeadDelivery.objects.filter(event=event, kind=kind, storage_key=storage_key, status__in=SUPERSEDABLE).update(
        status=LeadDelivery.Status.SUPERSEDED
    )
    connection_ids = set(
        event.deliveries.filter(connection__kind=VendorKind.WEBMARKETER).values_list("connection_id", flat=True)
    )
    LeadDelivery.objects.bulk_create(
        LeadDelivery(
            change=change,
            connection_id=connection_id,
            event=event,
            kind=kind,
            storage_key=storage_key,
            status=LeadDelivery.Status.WAITING,
            created_at=now,
            queued_at=now,
            next_attempt_at=now,
        )
        for connection_id in sorted(connection_ids)
    )
    _waiting_resolve(change.deliveries.all())
    audit_record(
        user=user,
        action=f"lead.{kind}",
        target=event,
        details={
            "change": change.pk,
            "storage_key": storage_key,
            "value": str(change.value),
            "date": change.date.isoformat(),
            "connections": sorted(connection_ids),
        },
    )
    return change


@transaction.atomic
def lead_change_retry(*, change: LeadChange, user: Any = None) -> int:
    """Queue the failed deliveries of a change again (the newest change of its lane only: an older value
    must never reach Webmarketer after a newer one). Returns how many were queued."""
    if _lane(change).filter(id__gt=change.pk).exists():
        raise LeadChangeError(
            f"A newer change of {change.storage_key} was made since: that one is what Webmarketer gets."
        )
    failed = change.deliveries.filter(status=LeadDelivery.Status.FAILED)
    ids = list(failed.values_list("id", flat=True))
    if not ids:
        raise LeadChangeError("Nothing to retry: no delivery of this change failed.")
    now = timezone.now()
    LeadDelivery.objects.filter(id__in=ids, status=LeadDelivery.Status.FAILED).update(
        status=LeadDelivery.Status.WAITING, attempts=0, queued_at=now, next_attempt_at=now, claimed_at=None
    )
    _waiting_resolve(LeadDelivery.objects.filter(id__in=ids))
    audit_record(
        user=user,
        action="lead.retry",
        target=change.event,
        details={"change": change.pk, "storage_key": change.storage_key, "deliveries": ids},
    )
    return len(ids)


# -- claiming and sending -----------------------------------------------------------------------------------
def lead_deliveries_claim(*, connection_id: int, limit: int) -> list[LeadDelivery]:
    """Mark up to `limit` due lead deliveries of a connection as `sending`, one transaction each: an older
    change of a lane with a newer one is superseded instead; a change whose lane has one in flight stays due
    (the partial unique index refuses a second one in flight, whichever worker tries)."""
    now = timezone.now()
    candidates = list(
        LeadDelivery.objects.filter(
            connection_id=connection_id, status__in=LeadDelivery.DUE_STATUSES, next_attempt_at__lte=now
        )
        .order_by("change_id")
        .values_list("id", flat=True)[: limit * 4]
    )
    claimed: list[int] = []
    for pk in candidates:
        if len(claimed) >= limit:
            break
        with transaction.atomic():
            due = LeadDelivery.objects.filter(pk=pk, status__in=LeadDelivery.DUE_STATUSES)
            locked = due
            if db_connection.features.has_select_for_update_skip_locked:
                locked = due.select_for_update(skip_locked=True)
            delivery = locked.first()
            if delivery is None:
                continue  # another worker has it
            lane = LeadDelivery.objects.filter(
                event_id=delivery.event_id,
                connection_id=connection_id,
                kind=delivery.kind,
                storage_key=delivery.storage_key,
            )
            if lane.filter(change_id__gt=delivery.change_id).exists():
                due.update(
                    status=LeadDelivery.Status.SUPERSEDED,
                    last_error="A newer change of the same key was made before this one could be sent.",
                )
                continue
            standing = _standings({(delivery.event_id, connection_id)})[(delivery.event_id, connection_id)]
            if not standing.vendor_ref:
                # Sent before? Then the id was there; it can only be missing after a replay: wait again.
                due.update(
                    status=LeadDelivery.Status.FAILED if standing.problem else LeadDelivery.Status.WAITING,
                    last_error=standing.problem,
                )
                continue
            try:
                with transaction.atomic():
                    updated = due.update(
                        status=LeadDelivery.Status.SENDING, claimed_at=now, vendor_ref=standing.vendor_ref
                    )
            except IntegrityError:
                continue  # an older change of this lane is in flight: this one goes after it
            if updated:
                claimed.append(pk)
    return list(
        LeadDelivery.objects.filter(id__in=claimed, status=LeadDelivery.Status.SENDING, claimed_at=now)
        .select_related("change")
        .order_by("change_id")
    )


def _update_request(session: VendorSession, delivery: LeadDelivery, token: str | None) -> VendorRequest:
    vendor = session.vendor
    build = (
        vendor.state_update_request  # type: ignore[attr-defined]
        if delivery.kind == LeadChange.Kind.STATE
        else vendor.statistic_update_request  # type: ignore[attr-defined]
    )
    return build(
        token,
        event_id=delivery.vendor_ref,
        storage_key=delivery.storage_key,
        value=delivery.change.value,
        date=delivery.change.date,
    )


def _update_send(session: VendorSession, delivery: LeadDelivery) -> Sent:
    """Send one update (401: once more with a fresh token); the answer classified for updates."""
    keys = (delivery.pk,)
    try:
        token = session.token()
    except TokenError as exc:
        result = Result("retry", f"authentication failed: {exc}")
        return Sent(keys, result, [(exc.exchange, result)] if exc.exchange else [])
    try:
        request = _update_request(session, delivery, token)
    except ValueError as exc:
        return Sent(keys, Result("failed", f"not sent: {exc}"))
    result, exchanges = exchange_send(
        session,
        request,
        token,
        lambda fresh: _update_request(session, delivery, fresh),
        classify=lambda _, response: classify_update(response, kind=delivery.kind, storage_key=delivery.storage_key),
    )
    return Sent(keys, result, exchanges)


def _apply(connection: VendorConnection, deliveries: dict[int, LeadDelivery], sent: list[Sent]) -> None:
    """Record attempts and move each lead delivery on (only if still ours), by the event delivery rules."""
    now = timezone.now()
    attempts = [
        LeadAttempt(delivery_id=key, **attempt_fields(exchange, result))
        for item in sent
        for key in item.keys
        for exchange, result in item.exchanges
    ]
    with transaction.atomic():
        LeadAttempt.objects.bulk_create(attempts)
        for item in sent:
            n = max(1, len(item.exchanges))
            for key in item.keys:
                delivery = deliveries[key]
                claimed_settle(connection, delivery, item.result, n, window_start=delivery.queued_at, now=now)


def _send_allowed(delivery: LeadDelivery) -> bool:
    """Just before its PATCH: is the row still this run's, still the newest of its lane, still addressed to the
    event's current Webmarketer id? A row taken back by the sweep (and perhaps superseded and sent by another
    worker since) must not go: an older value would reach Webmarketer after a newer one. Rows that must not
    go are moved on here (superseded, waiting again, failed); the caller skips them."""
    ours = LeadDelivery.objects.filter(
        pk=delivery.pk, status=LeadDelivery.Status.SENDING, claimed_at=delivery.claimed_at
    )
    if not ours.exists():
        return False  # taken back: whatever it became is no longer this run's to send
    newer = LeadDelivery.objects.filter(
        event_id=delivery.event_id,
        connection_id=delivery.connection_id,
        kind=delivery.kind,
        storage_key=delivery.storage_key,
        change_id__gt=delivery.change_id,
    )
    if newer.exists():
        ours.update(
            status=LeadDelivery.Status.SUPERSEDED,
            claimed_at=None,
            last_error="A newer change of the same key was made before this one could be sent.",
        )
        return False
    pair = (delivery.event_id, delivery.connection_id)
    standing = _standings({pair})[pair]
    if not standing.vendor_ref:
        # The event was replayed (fixed) since the claim: wait for the new event's id, or fail with why.
        ours.update(
            status=LeadDelivery.Status.FAILED if standing.problem else LeadDelivery.Status.WAITING,
            claimed_at=None,
            last_error=standing.problem,
        )
        return False
    if standing.vendor_ref != delivery.vendor_ref:
        ours.update(vendor_ref=standing.vendor_ref)
        delivery.vendor_ref = standing.vendor_ref
    return True


def _unsent_release(deliveries: list[LeadDelivery]) -> None:
    """Rows a time-boxed run had no time for go back to due, as they were (if still this run's)."""
    now = timezone.now()
    for delivery in deliveries:
        LeadDelivery.objects.filter(
            pk=delivery.pk, status=LeadDelivery.Status.SENDING, claimed_at=delivery.claimed_at
        ).update(
            status=LeadDelivery.Status.RETRYING if delivery.attempts else LeadDelivery.Status.PENDING,
            claimed_at=None,
            next_attempt_at=now,
        )


# The run's clock (monotonic); tests replace it to play a slow run without waiting.
_clock = time.monotonic


def lead_changes_dispatch(*, connection_id: int) -> int:
    """Claim and send one batch of a connection's due lead deliveries; returns how many were claimed.

    The PATCHes go one after the other, so a run is time-boxed: it starts no PATCH once it has used
    HUB_RUN_SHARE of HUB_STUCK_AFTER_SECONDS (what is left goes back to due), so the sweep never takes back a
    row of a run that is only slow. Each row is checked again just before its PATCH (_send_allowed)."""
    started = _clock()
    budget = settings.HUB_STUCK_AFTER_SECONDS * settings.HUB_RUN_SHARE
    connection = VendorConnection.objects.filter(pk=connection_id, enabled=True, kind=VendorKind.WEBMARKETER).first()
    if connection is None or connection.circuit_open or connection.paused:  # paused: changes stay due
        return 0
    claimed = {d.pk: d for d in lead_deliveries_claim(connection_id=connection_id, limit=connection.batch_size)}
    if not claimed:
        return 0
    try:
        session = session_for(connection)
        session.vendor.check()
    except (ConfigurationError, LookupError, ValueError) as exc:
        # The connection cannot work as configured: keep the changes until staff fix it.
        sent = [Sent(tuple(claimed), Result("retry", f"connection misconfigured: {exc}"))]
    else:
        # Human-paced volume: one request after the other over the pooled client is plenty.
        sent, unsent = [], []
        for delivery in claimed.values():
            if unsent or _clock() - started >= budget:
                unsent.append(delivery)
            elif _send_allowed(delivery):
                sent.append(_update_send(session, delivery))
        if unsent:
            log.info("lead dispatch of %s: time is up, %d changes go back to due", connection.name, len(unsent))
            _unsent_release(unsent)
    _apply(connection, claimed, sent)
    circuit_update(connection, sent)
    return len(claimed)


# -- sweeping (beat) --------------------------------------------------------------------------------------------
def _waiting_movable() -> QuerySet[LeadDelivery]:
    """Waiting rows the sweep can move: on an enabled connection, and their event's newest generation there
    is over (delivered, failed, cancelled), gone, or shares its nonce with a delivered one. Rows still
    waiting for an event under way (or on a disabled connection) are not looked at, so they never crowd
    out the ones that can go."""
    pair = Delivery.objects.filter(event_id=OuterRef("event_id"), connection_id=OuterRef("connection_id"))
    newest = pair.order_by("-generation", "-id")
    return (
        LeadDelivery.objects.filter(status=LeadDelivery.Status.WAITING, connection__enabled=True)
        .annotate(
            newest_status=Subquery(newest.values("status")[:1]),
            newest_nonce=Subquery(newest.values("nonce")[:1]),
        )
        .filter(
            Q(newest_status__isnull=True)
            | ~Q(newest_status__in=UNDER_WAY)
            | Exists(
                Delivery.objects.filter(
                    event_id=OuterRef("event_id"),
                    connection_id=OuterRef("connection_id"),
                    nonce=OuterRef("newest_nonce"),
                    status=Delivery.Status.DELIVERED,
                ).exclude(vendor_ref="")
            )
        )
    )


def waiting_release_all(*, page: int = WAITING_PER_SWEEP) -> int:
    """Resolve every waiting row that can move, page after page (keyset on id, over the partial index of
    waiting rows); returns how many became pending. Also what retries a release that ran before the
    transaction that delivered the event had committed."""
    movable, last, released = _waiting_movable(), 0, 0
    while True:
        ids = list(movable.filter(id__gt=last).order_by("id").values_list("id", flat=True)[:page])
        if not ids:
            return released
        released += _waiting_resolve(LeadDelivery.objects.filter(id__in=ids), wake=False)
        last = ids[-1]


def lead_changes_sweep() -> dict[str, int]:
    """Take back lead deliveries stuck in `sending`, release waiting ones whose event arrived (or fail them
    when it never will), and wake every connection with due lead deliveries."""
    recovered = sending_take_back(LeadDelivery, now=timezone.now())
    released = waiting_release_all()
    woken = connections_due(LeadDelivery, now=timezone.now())  # the released ones are due from now
    lead_changes_wake(woken, committed=True)
    return {"lead_recovered": recovered, "lead_released": released, "lead_woken": len(woken)}
