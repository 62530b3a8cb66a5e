"""Delivery: claim due deliveries of a connection, send them through its vendor module, record attempts,
and decide delivered / retry later / failed. At-least-once; the vendor's dedup key makes it exactly-once
where the vendor dedups (Webmarketer nonce)."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx
from django.conf import settings
from django.db import DatabaseError, OperationalError, transaction
from django.db import connection as db_connection
from django.db.models import BooleanField, CharField, F, QuerySet, TextField, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from ..consent import missing_purposes, suppressed_reason
from ..errors import where
from ..models import Attempt, Delivery, LeadDelivery, VendorConnection, VendorKind
from ..vendors import vendor_class
from ..vendors.base import ConfigurationError, OutgoingEvent, Result, Vendor, VendorRequest, excerpt, storable
from ..vendors.http import Exchange, TokenError, VendorSession, encode_error
from .rollups import deliveries_close, deliveries_finished
from .wake import connections_wake

log = logging.getLogger(__name__)

# Consecutive transient failures that open a connection's circuit, and for how long.
CIRCUIT_THRESHOLD = 10
CIRCUIT_COOLDOWN = timedelta(seconds=30)
# The circuit's first cooldown, doubled per transient failure since the last success up to CIRCUIT_COOLDOWN
# (circuit_cooldown): a flaky vendor whose one probe failed by bad luck waits a second, not half a minute (the
# chaos run, 30 % faults: a failed probe stalled a healthy-enough vendor for 30 s at a time), while a vendor
# that keeps failing (a run stopped by a round of failures already counts several) waits the full cooldown.
CIRCUIT_FIRST_COOLDOWN = timedelta(seconds=1)
# ... and never shorter than this many times what the failed run held its worker for: a hanging vendor's probe
# (one request waiting for its timeout) is followed by ten times as long without one, so a failing connection
# holds at most about a tenth of a worker, however few failures it has counted (Tracify sends a batch in one
# request: one failure per run).
CIRCUIT_BUSY_FACTOR = 10
# Isolation (a hanging vendor must not hold the workers the others need):
# - until a run has delivered something, it starts no more requests once its failures, counting those still in
#   flight as failing, reach this many (at most its threads: one round, RunGuard); the rest of its claim goes
#   back to due, and if they all failed the circuit opens: a vendor that starts hanging costs one timeout of one
#   run, not a batch's worth;
# - a failing connection (transient failures since its last success: circuit_failures > 0) gets a probe, one
#   delivery in one request, never a batch; a failed probe opens the circuit (CIRCUIT_COOLDOWN), a delivered
#   one closes it and the next run takes a full batch;
# - its dispatch does not go again at once after such a run (tasks.dispatch_connection): the next wake, the
#   sweep or the backoff brings the next probe;
# - a failing connection has one run at a time (runs_allowed): it never holds more than one worker process.
RUN_STOP_FAILURES = CIRCUIT_THRESHOLD
# A rate-limited connection's run sends at most one slice of its max_rate (max_rate × RATE_SLICE requests, at once:
# its session's token bucket holds that many) and its next run is queued RATE_SLICE later (dispatch_again_in):
# it never sleeps on its rate limit holding a worker process.
RATE_SLICE = 1.0
# The backoff doubles per attempt up to the connection's cap; past 2**60 the cap has long been reached
# (and 2**1024 overflows a float).
BACKOFF_MAX_EXPONENT = 60
# A reason recorded in last_error is cut here (an exception message may be long).
REASON_LIMIT = 500


# -- vendor sessions (per process) ------------------------------------------------------------------------
_sessions: dict[int, tuple[datetime, VendorSession]] = {}
_sessions_lock = threading.Lock()
# Sessions replaced after a connection edit, with when: another thread may still be sending through one
# (a dispatch run, a paged trash pull), so it is closed only once no run can still be using it.
_retired: list[tuple[float, VendorSession]] = []


def vendor_for(connection: VendorConnection) -> Vendor:
    return vendor_class(connection.kind)(
        base_url=connection.base_url,
        auth_url=connection.auth_url,
        settings=connection.settings,
        secrets=connection.secrets,
    )


def _retired_close(now: float) -> None:
    """Close retired sessions older than a run can live (a run never outlives its claim, see run_deadline);
    called with _sessions_lock held."""
    grace = 2 * settings.HUB_STUCK_AFTER_SECONDS
    keep = []
    for retired_at, session in _retired:
        if now - retired_at > grace:
            session.close()
        else:
            keep.append((retired_at, session))
    _retired[:] = keep


def session_for(connection: VendorConnection) -> VendorSession:
    """The process's pooled session for this connection, rebuilt when the connection was edited. The old one
    is retired, not closed: a thread may still be sending through it."""
    with _sessions_lock:
        now = time.monotonic()
        _retired_close(now)
        cached = _sessions.get(connection.pk)
        if cached and cached[0] == connection.updated_at:
            return cached[1]
        if cached:
            _retired.append((now, cached[1]))
        session = VendorSession(
            vendor_for(connection),
            timeout=connection.timeout_seconds,
            max_rate=connection.max_rate,
            max_connections=settings.HUB_DISPATCH_CONCURRENCY,
            burst=rate_slice_size(connection),
        )
        _sessions[connection.pk] = (connection.updated_at, session)
        return session


def run_deadline(connection: VendorConnection) -> float:
    """The time.monotonic() after which a dispatch run starts no new request: a share of
    HUB_STUCK_AFTER_SECONDS (HUB_RUN_SHARE), less the longest a request started just before may take (a 401
    refresh: a token request and two sends). So a run, even a slow one, ends long before the sweep would
    take its rows back from it as stuck."""
    share = settings.HUB_STUCK_AFTER_SECONDS * settings.HUB_RUN_SHARE
    # A timeout close to the share would leave no time at all: a quarter of the share is always given, so
    # every run makes progress (the timeout is then the connection's problem, and the page says so).
    budget = max(share - 3 * float(connection.timeout_seconds), share / 4)
    return time.monotonic() + budget


def connection_failing(connection: VendorConnection) -> bool:
    """Transient failures only since the connection's last success (its circuit may be closed again): its
    next run is a probe (dispatch_limit)."""
    return connection.circuit_failures > 0


def rate_slice_size(connection: VendorConnection) -> int:
    """Requests a rate-limited connection may send in one RATE_SLICE (its session's burst), 1 without a limit."""
    return max(1, int(connection.max_rate * RATE_SLICE)) if connection.max_rate else 1


def dispatch_limit(connection: VendorConnection) -> int:
    """Deliveries claimed per batch: HUB_DISPATCH_BATCH, or for a vendor that takes several events per request
    enough to fill a request per sending thread (HUB_DISPATCH_CONCURRENCY), whichever is more; the connection's
    batch size lowers it, never raises it, and so does a rate-limited connection's slice (rate_slice_left); one
    (a probe) while the connection is failing."""
    if connection_failing(connection):
        return 1
    try:
        per_request = session_for(connection).vendor.events_per_request()
    except (ConfigurationError, LookupError, ValueError):
        per_request = 1  # the run says what is wrong (_send_run)
    most = settings.HUB_DISPATCH_BATCH
    if per_request > 1:
        most = max(most, per_request * settings.HUB_DISPATCH_CONCURRENCY)
    limit = max(1, min(connection.batch_size or most, most))
    return min(limit, rate_slice_left(connection)) if connection.max_rate else limit


def rate_slice_left(connection: VendorConnection) -> int:
    """Requests a rate-limited connection may still send now: its slice less the requests any process started for
    it within the last RATE_SLICE (its recorded exchanges; one run at a time, so the last run's are recorded). Each
    worker process has its own rate limiter: without this, a wake between two slices started one in the other
    process with a full bucket (the chaos run's replay: 33 requests/s for a max_rate of 25)."""
    since = timezone.now() - timedelta(seconds=RATE_SLICE)
    # Walking the primary key back from the newest attempt (Attempt has no index on started_at).
    floor = Attempt.objects.filter(started_at__lt=since).order_by("-pk").values_list("pk", flat=True).first() or 0
    recent = Attempt.objects.filter(pk__gt=floor, started_at__gte=since, delivery__connection_id=connection.pk)
    sent = recent.order_by().values("started_at").distinct().count()  # a batch request: one exchange, one time
    return max(0, rate_slice_size(connection) - sent)


def dispatch_again_in(connection_id: int) -> float | None:
    """After a run that claimed deliveries: in how many seconds the connection's next run goes (0: at once, behind
    the runs already queued), or None while it is failing (its next probe waits for a wake, the sweep or the
    backoff). A rate-limited connection goes again after RATE_SLICE: its run sent a slice in a burst, and waiting
    for the next slice inside a run held a worker process asleep (the replay phase of the chaos run: a vendor
    draining its backlog at 25/s held one of two workers, the others fell to 0.7x of their rate)."""
    row = VendorConnection.objects.filter(pk=connection_id).values_list("circuit_failures", "max_rate").first()
    if row is None or row[0] > 0:
        return None
    return RATE_SLICE if row[1] else 0.0


# -- claiming --------------------------------------------------------------------------------------------
def deliveries_claim(*, connection_id: int, limit: int, claimed_at: datetime | None = None) -> list[Delivery]:
    """Mark up to `limit` due deliveries of a connection as `sending`, atomically: no two workers get the
    same one (SKIP LOCKED on PostgreSQL; on SQLite the IMMEDIATE transaction holds the write lock and
    the conditional update re-checks the status). `claimed_at`: the run's claim stamp (every batch of a run
    claims with the run's; a row is settled only if it still carries it), default now."""
    now = claimed_at or timezone.now()
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
    # The event's data comes as text and is read per row (outgoing_event): a row Python cannot read back (nested
    # past its recursion limit, stored before ingest's checks) fails alone instead of the whole claim.
    return list(
        Delivery.objects.filter(id__in=ids, status=Delivery.Status.SENDING, claimed_at=now)
        .select_related("event", "route")
        .defer("event__data")
        .annotate(event_data=Cast("event__data", TextField()))
        .order_by("id")
    )


def delivery_consent_missing(delivery: Delivery) -> list[str]:
    """The purposes the delivery's route needs that its event's consent (as it stands) does not grant."""
    return missing_purposes(delivery.route.purposes if delivery.route else (), delivery.event.consent)


class Unreadable(ValueError):
    """An event's stored data that cannot be read back."""


def outgoing_event(delivery: Delivery) -> OutgoingEvent:
    """What the vendor module sees of a claimed delivery; raises Unreadable for data that cannot be read."""
    event, route = delivery.event, delivery.route
    try:
        data = json.loads(delivery.event_data)
    except (ValueError, RecursionError):
        raise Unreadable("not sent: the event's data cannot be read back (nested too deeply or not JSON)") from None
    return OutgoingEvent(
        key=delivery.pk,
        nonce=delivery.nonce,
        event_type=event.event_type_ref,
        event_date=event.event_date,
        data=data,
        tracker_id=event.tracker_id,
        vendor_event_name=route.vendor_event_name if route else "",
        mapping=route.mapping if route else {},
        options=route.options if route else {},
        context=event.context or {},
    )


# -- sending ---------------------------------------------------------------------------------------------
@dataclass
class Sent:
    """What happened to the deliveries of one vendor request: its exchanges and the final result.
    `released`: never sent (the run's time was up); the deliveries go back to due, no attempt counted."""

    keys: tuple[int, ...]
    result: Result
    exchanges: list[tuple[Exchange, Result]] = field(default_factory=list)
    released: bool = False


class RunGuard:
    """Counts a run's requests across its threads. Until one is delivered, a run whose failures, counting the
    requests still in flight as failing, reach `limit` starts no more (`start` says no): with all its threads
    waiting on a hanging vendor, the first timeout stops it, not the next round of requests. What it has not
    sent goes back to due, no attempt counted. `tripped`: it stopped, `limit` requests failed and none was
    delivered (a run that sent all it had counts its failures as usual, CIRCUIT_THRESHOLD)."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.started = 0
        self.finished = 0
        self.failures = 0
        self.delivered = False
        self.refused = 0
        self._lock = threading.Lock()

    def _stopped(self) -> bool:
        in_flight = self.started - self.finished
        return not self.delivered and self.failures > 0 and self.failures + in_flight >= self.limit

    def start(self) -> bool:
        with self._lock:
            if self._stopped():
                self.refused += 1
                return False
            self.started += 1
            return True

    def record(self, outcome: str) -> None:
        with self._lock:
            self.finished += 1
            if outcome == "delivered":
                self.delivered = True
            elif outcome == "retry":
                self.failures += 1

    @property
    def tripped(self) -> bool:
        return self.refused > 0 and not self.delivered and self.failures >= self.limit


def _reason(what: str, exc: BaseException) -> str:
    """A failure's reason for last_error: the exception's type and message, short, storable."""
    if isinstance(exc, UnicodeError | RecursionError):
        return f"{what}: {encode_error(exc)}"
    return storable(f"{what}: {type(exc).__name__}: {exc}")[:REASON_LIMIT]


def _classify(
    classify: Callable[[VendorRequest, httpx.Response], Result], request: VendorRequest, response: httpx.Response
) -> Result:
    """The vendor's reading of an answer; an answer it cannot read fails this request only, with the reason.
    A 2xx is not retried (it may have arrived; a replay is an explicit choice), anything else is retried."""
    try:
        return classify(request, response)
    except Exception as exc:  # noqa: BLE001 (one unexpected answer must not end the run)
        outcome = "failed" if response.is_success else "retry"
        return Result(outcome, _reason(f"HTTP {response.status_code}, answer not understood", exc))


def exchange_send(
    session: VendorSession,
    request: VendorRequest,
    token: str | None,
    rebuild: Callable[[str | None], VendorRequest],
    classify: Callable[[VendorRequest, httpx.Response], Result] | None = None,
) -> tuple[Result, list[tuple[Exchange, Result]]]:
    """Send one request; on a 401 take a fresh token and send it once more, rebuilt with that token.
    Returns the final result and every exchange with its own result. No ORM: runs in worker threads.
    Never raises: a request that cannot be encoded, rebuilt or classified fails with the reason."""
    classify = classify or session.vendor.classify
    exchanges: list[tuple[Exchange, Result]] = []
    for refreshed in (False, True):
        exchange = session.send(request)
        if exchange.unsendable:
            result = Result("failed", exchange.error)
        elif exchange.response is None:
            result = Result("retry", exchange.error)
        else:
            result = _classify(classify, request, exchange.response)
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
        try:
            request = rebuild(token)
        except Exception as exc:  # noqa: BLE001
            return Result("failed", _reason("not sent: the request could not be rebuilt", exc)), exchanges
    raise AssertionError("unreachable")


def _send(
    session: VendorSession,
    request: VendorRequest,
    events: dict[int, OutgoingEvent],
    token: str | None,
    deadline: float,
    guard: RunGuard | None = None,
) -> list[Sent]:
    """Send one request of events (401: once more with a fresh token). Runs in a worker thread: no ORM.
    A request of several events that cannot be encoded is split: each event is built and sent alone, so
    only the event that cannot be encoded fails."""
    if time.monotonic() > deadline:
        return [Sent(request.keys, Result("retry", "the run's time was up"), released=True)]
    if guard and not guard.start():
        reason = f"not sent: the run stopped after {guard.failures} failed requests"
        return [Sent(request.keys, Result("retry", reason), released=True)]
    vendor = session.vendor
    # The same events again, signed with the new token: one request, as before.
    result, exchanges = exchange_send(
        session, request, token, lambda fresh: vendor.build([events[k] for k in request.keys], fresh)[0]
    )
    if guard:
        guard.record(result.outcome)
    if len(request.keys) > 1 and exchanges and exchanges[0][0].unsendable:
        sents: list[Sent] = []
        for key in request.keys:  # each event alone: requests of one event each, never split again
            built = _build(vendor, [events[key]], token)
            sents += built.failed + [
                s for r in built.requests for s in _send(session, r, events, token, deadline, guard)
            ]
        return sents
    return [Sent(request.keys, result, exchanges)]


@dataclass
class _Built:
    requests: list[VendorRequest]
    failed: list[Sent]


def _build(vendor: Vendor, events: list[OutgoingEvent], token: str | None) -> _Built:
    """The requests of these events; if building them together fails, each event is built alone, and an event
    that cannot be built (or that the vendor leaves out) fails with the reason. Pure: no ORM, no I/O."""
    try:
        requests = vendor.build(events, token)
    except Exception as exc:  # noqa: BLE001 (one bad event must not fail the others: build them one by one)
        if len(events) > 1:
            parts = [_build(vendor, [event], token) for event in events]
            return _Built([r for p in parts for r in p.requests], [s for p in parts for s in p.failed])
        reason = _reason("not sent: the request could not be built", exc)
        return _Built([], [Sent(tuple(e.key for e in events), Result("failed", reason))])
    covered = {k for r in requests for k in r.keys}
    failed: list[Sent] = []
    if missing := [e for e in events if e.key not in covered]:
        # A vendor module that cannot build a request for an event says so by leaving it out, and says why.
        try:
            reasons = vendor.refusals(missing)
        except Exception:  # noqa: BLE001
            reasons = {}
        by_reason: dict[str, list[int]] = {}
        for e in missing:
            reason = "the vendor module built no request for this event"
            by_reason.setdefault(f"not sent: {reasons[e.key]}" if reasons.get(e.key) else reason, []).append(e.key)
        failed = [Sent(tuple(ks), Result("failed", storable(reason))) for reason, ks in by_reason.items()]
    return _Built(requests, failed)


def _send_all(
    session: VendorSession,
    events: list[OutgoingEvent],
    deadline: float | None = None,
    guard: RunGuard | None = None,
    pool: ThreadPoolExecutor | None = None,
) -> list[Sent]:
    deadline = time.monotonic() + settings.HUB_STUCK_AFTER_SECONDS if deadline is None else deadline
    by_key = {e.key: e for e in events}
    keys = tuple(by_key)
    try:
        token = session.token()
    except TokenError as exc:
        result = Result("retry", f"authentication failed: {exc}")
        return [Sent(keys, result, [(exc.exchange, result)] if exc.exchange else [])]
    built = _build(session.vendor, events, token)
    requests = built.requests
    workers = max(1, min(settings.HUB_DISPATCH_CONCURRENCY, len(requests)))
    if guard:  # one round of the threads failing is enough to stop
        guard.limit = max(1, min(guard.limit, workers))
    if workers == 1:
        return built.failed + [s for r in requests for s in _send(session, r, by_key, token, deadline, guard)]
    if pool is not None:  # the run's threads, kept from batch to batch
        results = pool.map(lambda r: _send(session, r, by_key, token, deadline, guard), requests)
        return built.failed + [s for sents in results for s in sents]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="send") as own:
        results = own.map(lambda r: _send(session, r, by_key, token, deadline, guard), requests)
        return built.failed + [s for sents in results for s in sents]


# -- outcomes --------------------------------------------------------------------------------------------
def backoff_seconds(*, attempt: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Capped exponential backoff with full jitter; never sooner than the vendor's Retry-After. Finite for any
    attempt number (the exponent is capped before the power is taken)."""
    exponent = min(max(0, attempt - 1), BACKOFF_MAX_EXPONENT)
    ceiling = max(0.0, min(float(cap), float(base) * 2.0**exponent))
    delay = random.uniform(0, ceiling)
    return max(delay, retry_after or 0.0)


def attempt_fields(exchange: Exchange, result: Result, key: int | None = None) -> dict:
    """The recorded columns of one exchange (Attempt, LeadAttempt): secrets redacted (before any cut), answer
    excerpted, every text storable in any database; `key`: the delivery's own part of a request of several."""
    request, response = exchange.request, exchange.response
    return {
        "started_at": exchange.started_at,
        "duration_ms": exchange.duration_ms,
        "method": request.method,
        "url": request.recorded_url(),
        "request_body": request.recorded_body(key),
        "response_status": response.status_code if response is not None else None,
        "response_body": _redacted_excerpt(response, request) if response is not None else "",
        "outcome": Attempt.Outcome.RETRY if result.outcome == "retry" else result.outcome,
        "error": storable(result.error),
    }


def _attempts(item: Sent) -> dict[int, list[Attempt]]:
    """The attempts of each delivery of a request: the exchange's columns worked out once, the body per delivery
    only where the request has parts (a request of several events)."""
    out: dict[int, list[Attempt]] = {key: [] for key in item.keys}
    for exchange, result in item.exchanges:
        shared = attempt_fields(exchange, result)
        for key in item.keys:
            own = {"request_body": exchange.request.recorded_body(key)} if exchange.request.parts else {}
            out[key].append(Attempt(delivery_id=key, **{**shared, **own}))
    return out


ATTEMPT_COLUMNS = (
    "delivery_id",
    "started_at",
    "duration_ms",
    "method",
    "url",
    "request_body",
    "response_status",
    "response_body",
    "outcome",
    "error",
)
# Rows per INSERT (SQLite takes 32,766 parameters a statement).
ATTEMPTS_CHUNK = 2000


def attempts_insert(attempts: list[Attempt]) -> None:
    """A batch's attempts in one multi-row INSERT per ATTEMPTS_CHUNK rows. Raw SQL: bulk_create prepares each value
    through its field, which for a batch of hundreds costs more than the statement; the values here are already
    what the columns hold (text made storable, ints), the dates adapted by the backend."""
    if not attempts:
        return
    quote = db_connection.ops.quote_name
    adapt = db_connection.ops.adapt_datetimefield_value
    row = "(" + ", ".join(["%s"] * len(ATTEMPT_COLUMNS)) + ")"
    columns = ", ".join(quote(c) for c in ATTEMPT_COLUMNS)
    head = f"INSERT INTO {quote(Attempt._meta.db_table)} ({columns}) VALUES "  # noqa: S608 (names from the model)
    with db_connection.cursor() as cursor:
        for start in range(0, len(attempts), ATTEMPTS_CHUNK):
            chunk = attempts[start : start + ATTEMPTS_CHUNK]
            params: list[object] = []
            for a in chunk:
                params += (a.delivery_id, adapt(a.started_at), a.duration_ms, a.method, a.url, a.request_body,
                           a.response_status, a.response_body, a.outcome, a.error)  # fmt: skip
            cursor.execute(head + ", ".join([row] * len(chunk)), params)  # names from the model, values parameters


def _redacted_excerpt(response: httpx.Response, request: VendorRequest) -> str:
    """The answer redacted in full, then cut: a secret the vendor echoes near the cut never shows in part."""
    return storable(excerpt(response, 2000, request.sensitive))


def _release(deliveries: dict[int, Delivery], keys: tuple[int, ...]) -> None:
    """Claimed rows the run had no time to send: due again at once, no attempt counted (only if still ours). One
    statement per claim (a run's rows share one)."""
    by_claim: dict[datetime | None, list[int]] = {}
    for key in keys:
        by_claim.setdefault(deliveries[key].claimed_at, []).append(key)
    for claimed_at, pks in by_claim.items():
        Delivery.objects.filter(pk__in=pks, status=Delivery.Status.SENDING, claimed_at=claimed_at).update(
            status=Delivery.Status.RETRYING, claimed_at=None, next_attempt_at=timezone.now()
        )


def _record(
    connection: VendorConnection, delivery: Delivery, item: Sent, attempts: list[Attempt], now: datetime
) -> str | None:
    """One delivery's attempts and next status (only if still ours: same claim); returns that status, or None
    when the row was no longer ours (the rollups count only what this call moved)."""
    Attempt.objects.bulk_create(attempts)
    return claimed_settle(
        connection, delivery, item.result, max(1, len(item.exchanges)), window_start=delivery.created_at, now=now
    )


def claimed_settle(
    connection: VendorConnection,
    row: Delivery | LeadDelivery,
    result: Result,
    n: int,
    *,
    window_start: datetime,
    now: datetime,
) -> str | None:
    """Move a claimed row (an event's or a lead change's delivery) on after `n` more attempts, only if it is still
    this run's (same claim); returns its new status, or None when it was no longer ours."""
    fields = next_state(connection, attempts=row.attempts, created_at=window_start, result=result, n=n, now=now)
    moved = (
        type(row)
        .objects.filter(pk=row.pk, status="sending", claimed_at=row.claimed_at)
        .update(attempts=F("attempts") + n, claimed_at=None, **fields)
    )
    return fields["status"] if moved else None


@dataclass(frozen=True)
class Settle:
    """A claimed row to move on after `n` more attempts with `result`; its give-up window starts at `window_start`."""

    row: Delivery | LeadDelivery
    result: Result
    n: int
    window_start: datetime


def _update_by_id(
    model: type[Delivery] | type[LeadDelivery], pks: list[int], columns: dict[str, dict[int, object]], increments: dict
) -> int:
    """One UPDATE of the rows `pks` (only those still in `sending`): each column set to its value where the rows
    share it, else to a CASE over their ids; `increments` adds to counters (column → {pk: n}). Raw SQL: the ORM's
    Case/When costs a resolve per row and column, more than the statement itself. Every value is a parameter,
    prepared by its model field."""
    quote = db_connection.ops.quote_name
    sets: list[str] = []
    params: list[object] = []

    def expression(name: str, values: dict[int, object], base: str) -> str:
        field_ = model._meta.get_field(name)
        prepared = {pk: field_.get_db_prep_save(v, connection=db_connection) for pk, v in values.items()}
        distinct = set(prepared.values())
        if len(distinct) == 1:
            params.append(distinct.pop())
            return base + "%s"
        whens = []
        for pk, v in prepared.items():
            whens.append("WHEN %s THEN %s")
            params.extend((pk, v))
        return f"{base}CASE {quote('id')} {' '.join(whens)} END"

    for name, values in columns.items():
        sets.append(f"{quote(name)} = " + expression(name, values, ""))
    for name, values in increments.items():
        sets.append(f"{quote(name)} = " + expression(name, values, f"{quote(name)} + "))
    params += pks
    # Table and column names come from the model; every value is a parameter.
    sql = (
        f"UPDATE {quote(model._meta.db_table)} SET {', '.join(sets)} "  # noqa: S608
        f"WHERE {quote('id')} IN ({', '.join(['%s'] * len(pks))}) AND {quote('status')} = 'sending'"
    )
    with db_connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def claimed_settle_many(
    connection: VendorConnection, model: type[Delivery] | type[LeadDelivery], items: list[Settle], *, now: datetime
) -> list[tuple[Delivery | LeadDelivery, str]]:
    """claimed_settle for a batch, in a constant number of statements: the rows still this run's (same claim) are
    locked and read (one SELECT … FOR UPDATE; on SQLite the IMMEDIATE transaction holds the write lock), then one
    UPDATE per outcome class (delivered, retrying, failed), the columns that differ per row as CASE over the ids.
    Returns (row, new status) for the rows it moved: the others were no longer ours and are left as they are.
    Call it inside a transaction."""
    states = {
        item.row.pk: next_state(
            connection, attempts=item.row.attempts, created_at=item.window_start, result=item.result, n=item.n, now=now
        )
        for item in items
    }
    if not items:
        return []
    claims = dict(
        model.objects.filter(pk__in=list(states), status="sending")
        .select_for_update()
        .order_by()
        .values_list("pk", "claimed_at")
    )
    ours = [item for item in items if item.row.pk in claims and claims[item.row.pk] == item.row.claimed_at]
    classes: dict[tuple[str, ...], list[Settle]] = {}
    for item in ours:  # rows whose next state sets the same columns (its status among them) go in one UPDATE
        fields = states[item.row.pk]
        classes.setdefault((fields["status"], *sorted(fields)), []).append(item)
    for group in classes.values():
        pks = [i.row.pk for i in group]
        columns = {name: {pk: states[pk][name] for pk in pks} for name in states[pks[0]]}
        columns["claimed_at"] = dict.fromkeys(pks)
        moved = _update_by_id(model, pks, columns, {"attempts": {i.row.pk: i.n for i in group}})
        if moved != len(pks):  # locked above: cannot happen short of a bug; say so rather than count wrong
            raise DatabaseError(f"settling {len(pks)} locked rows moved {moved}")
    return [(item.row, states[item.row.pk]["status"]) for item in ours]


def _apply(connection: VendorConnection, deliveries: dict[int, Delivery], sent: list[Sent]) -> None:
    """Record attempts and move each delivery to its next status (only if still ours). All rows in one
    transaction and a constant number of statements (one insert of the attempts, claimed_settle_many, the rollups);
    if a row cannot be written, row by row, so that one row never rolls back the others."""
    now = timezone.now()
    rows: list[tuple[Delivery, Sent, list[Attempt]]] = []
    released: list[int] = []
    for item in sent:
        if item.released:
            released += item.keys
            continue
        for key, attempts in _attempts(item).items():
            rows.append((deliveries[key], item, attempts))
    if released:
        _release(deliveries, tuple(released))
    try:
        with transaction.atomic():
            attempts_insert([a for _, _, attempts in rows for a in attempts])
            settles = [
                Settle(delivery, item.result, max(1, len(item.exchanges)), delivery.created_at)
                for delivery, item, _ in rows
            ]
            outcomes = claimed_settle_many(connection, Delivery, settles, now=now)
            deliveries_finished(outcomes, at=now)  # rollups: two statements per batch
        return
    except OperationalError:
        raise  # the database itself (locked, gone): the task retries the run
    except DatabaseError:
        log.warning("recording a batch of connection %s failed; recording it row by row", connection.pk)
    for delivery, item, attempts in rows:
        try:
            with transaction.atomic():
                for attempt in attempts:
                    attempt.pk = None
                deliveries_finished([(delivery, _record(connection, delivery, item, attempts, now))], at=now)
        except OperationalError:
            raise
        except DatabaseError as exc:
            # Not even this row: fail it without its attempts, and say so (no row data in the log).
            log.warning("delivery %s: its answer could not be recorded (%s)", delivery.pk, type(exc).__name__)
            with transaction.atomic():
                if Delivery.objects.filter(
                    pk=delivery.pk, status=Delivery.Status.SENDING, claimed_at=delivery.claimed_at
                ).update(
                    status=Delivery.Status.FAILED,
                    claimed_at=None,
                    attempts=F("attempts") + 1,
                    last_error=f"the answer could not be recorded ({type(exc).__name__}); it may have been delivered",
                ):
                    deliveries_finished([(delivery, Delivery.Status.FAILED)], at=now)


def _apply_retrying(connection: VendorConnection, deliveries: dict[int, Delivery], sent: list[Sent]) -> None:
    """_apply, tried again while the database is away (restarting, failing over, a SQLite lock held long): the
    requests were sent, so their answers are worth waiting for. Giving up at once (the task's retry) left the rows
    in `sending` for the sweep, which sent them again: a duplicate at the vendor and an unrecorded send for every
    row of the run. It waits at most half of what the run left of HUB_STUCK_AFTER_SECONDS (the rows stay this
    run's until then), then raises for the task's retry as before."""
    budget = settings.HUB_STUCK_AFTER_SECONDS * (1 - settings.HUB_RUN_SHARE) / 2
    until = time.monotonic() + budget
    pause = 0.2
    while True:
        try:
            return _apply(connection, deliveries, sent)
        except OperationalError as exc:
            if time.monotonic() + pause > until:
                raise
            log.warning(
                "recording a run of connection %s: database unavailable (%s), trying again",
                connection.pk,
                type(exc).__name__,
            )
            if not db_connection.in_atomic_block:  # (a test's transaction stays)
                db_connection.close_if_unusable_or_obsolete()  # a broken connection: a new one on the next try
            time.sleep(pause)
            pause = min(2 * pause, 5.0)


def next_state(
    connection: VendorConnection, *, attempts: int, created_at: datetime, result: Result, n: int, now: datetime
) -> dict:
    """The fields that move a delivery (of an event or of a lead change) after `n` more attempts: delivered,
    failed, or retrying after a backoff; failed once the connection's give-up window since `created_at` is over.

    The backoff is clamped to what is left of the window, so the last retry lands inside it rather than the
    delivery giving up early because the jitter overshot; only a Retry-After beyond the window gives up."""
    if result.outcome == "delivered":
        fields = {"status": Delivery.Status.DELIVERED, "delivered_at": now, "last_error": ""}
        if result.vendor_ref:
            fields["vendor_ref"] = result.vendor_ref
        return fields
    error = storable(result.error)
    if result.outcome == "failed":
        return {"status": Delivery.Status.FAILED, "last_error": error}
    attempt = attempts + n
    give_up_at = created_at + timedelta(seconds=connection.give_up_after_seconds)
    left = (give_up_at - now).total_seconds()
    retry_after = min(result.retry_after, left + 1.0) if result.retry_after else None  # finite, bounded
    delay = backoff_seconds(
        attempt=attempt,
        base=connection.retry_base_seconds,
        cap=connection.retry_max_seconds,
        retry_after=retry_after,
    )
    if left <= 0 or (retry_after or 0.0) > left:
        return {"status": Delivery.Status.FAILED, "last_error": f"gave up after {attempt} attempts: {error}"}
    delay = min(delay, left)
    return {
        "status": Delivery.Status.RETRYING,
        "next_attempt_at": now + timedelta(seconds=delay),
        "last_error": error,
    }


def circuit_update(connection: VendorConnection, sent: list[Sent], *, trip: bool = False, busy: float = 0.0) -> None:
    """Open the circuit after CIRCUIT_THRESHOLD transient failures in a row; close it on any success. Counted in
    the database (F()), not from the run's copy of the connection, so concurrent runs add up. `trip`: open it
    on this run's failures whatever the count (a run stopped by its failures, a failed probe of a circuit
    that was open). `busy`: the seconds the run held its worker (circuit_cooldown)."""
    outcomes = [s.result.outcome for s in sent if not s.released]
    conn = VendorConnection.objects.filter(pk=connection.pk)
    if "delivered" in outcomes:
        # Whatever another run counted meanwhile: a success closes the circuit.
        conn.exclude(circuit_failures=0, circuit_open_until=None).update(circuit_failures=0, circuit_open_until=None)
    elif outcomes and all(o == "retry" for o in outcomes):
        now = timezone.now()
        conn.update(circuit_failures=F("circuit_failures") + len(outcomes))
        opening = conn if trip else conn.filter(circuit_failures__gte=CIRCUIT_THRESHOLD)
        failures = conn.values_list("circuit_failures", flat=True).first() or 1
        cooldown = circuit_cooldown(failures, busy=busy)
        opened = opening.exclude(circuit_open_until__gt=now).update(circuit_open_until=now + cooldown)
        if opened:
            log.warning("circuit of connection %s open for %s", connection.name, cooldown)


def circuit_cooldown(failures: int, *, busy: float = 0.0) -> timedelta:
    """How long the circuit stays open after `failures` transient failures in a row: CIRCUIT_FIRST_COOLDOWN,
    doubled per failure after the first, at least CIRCUIT_BUSY_FACTOR times `busy` (the seconds the failed run
    held its worker), at most CIRCUIT_COOLDOWN."""
    exponent = min(max(0, failures - 1), BACKOFF_MAX_EXPONENT)  # a float's power: no overflow
    seconds = max(CIRCUIT_FIRST_COOLDOWN.total_seconds() * 2.0**exponent, CIRCUIT_BUSY_FACTOR * busy)
    return min(CIRCUIT_COOLDOWN, timedelta(seconds=min(seconds, CIRCUIT_COOLDOWN.total_seconds())))


def _send_run(
    connection: VendorConnection,
    events: list[OutgoingEvent],
    deadline: float,
    guard: RunGuard | None = None,
    pool: ThreadPoolExecutor | None = None,
) -> list[Sent]:
    keys = tuple(e.key for e in events)
    try:
        session = session_for(connection)
        session.vendor.check()
    except (ConfigurationError, LookupError, ValueError) as exc:
        # The connection cannot work as configured: keep the deliveries until staff fix it.
        return [Sent(keys, Result("retry", f"connection misconfigured: {exc}"))]
    try:
        return _send_all(session, events, deadline, guard, pool)
    except Exception as exc:  # noqa: BLE001 (a bug of ours: the rows must not stay in sending)
        # Logged by type and place only: an exception's message may quote the event's data.
        log.error("dispatch of connection %s failed: %s at %s", connection.pk, type(exc).__name__, where(exc))
        return [Sent(keys, Result("retry", f"internal error ({type(exc).__name__}), retried later"))]


def run_in_flight(connection_id: int) -> bool:
    """Another run of the connection is sending: rows of it claimed within HUB_STUCK_AFTER_SECONDS (older ones
    are the sweep's to take back)."""
    return _in_flight(connection_id).exists()


def _in_flight(connection_id: int) -> QuerySet:
    since = timezone.now() - timedelta(seconds=settings.HUB_STUCK_AFTER_SECONDS)
    return in_flight_before(Delivery, timezone.now()).filter(connection_id=connection_id, claimed_at__gte=since)


def runs_in_flight(connection_id: int) -> int:
    """Runs of the connection sending now: every row of a run carries the run's claim stamp (in-flight index)."""
    return _in_flight(connection_id).values("claimed_at").distinct().count()


def runs_allowed(connection: VendorConnection, limit: int) -> int:
    """How many runs the connection may have at once: HUB_RUNS_PER_CONNECTION while it is healthy and has at least
    HUB_BACKLOG_BATCHES batches due (a bounded count), else one: a failing connection never holds more than one
    worker process, and a short queue gains nothing from two."""
    most = max(1, settings.HUB_RUNS_PER_CONNECTION)
    if most == 1 or connection_failing(connection):
        return 1
    backlog = max(1, settings.HUB_BACKLOG_BATCHES) * limit
    due = Delivery.objects.filter(
        connection_id=connection.pk, status__in=Delivery.DUE_STATUSES, next_attempt_at__lte=timezone.now()
    )
    return most if due.order_by()[:backlog].count() >= backlog else 1


@dataclass
class _Batch:
    """One claimed batch of a run: its rows (the ones to send), its sending in flight, what it gave."""

    deliveries: dict[int, Delivery]
    guard: RunGuard
    future: Future[list[Sent]] | None
    sent: list[Sent] = field(default_factory=list)
    recorded: bool = False
    busy: float = 0.0  # seconds its sending took (circuit_cooldown)

    def wait(self) -> list[Sent]:
        if self.future is not None:
            sent, self.busy = self.future.result()
            self.sent += sent
            self.future = None
        return self.sent

    @property
    def failing(self) -> bool:
        """A request of it failed transiently (or the run's guard stopped it): the run takes no more."""
        return self.guard.tripped or any(s.result.outcome == "retry" for s in self.sent if not s.released)


def _batch_start(
    connection: VendorConnection,
    claimed: list[Delivery],
    deadline: float,
    sender: ThreadPoolExecutor,
    pool: ThreadPoolExecutor,
) -> _Batch:
    """Cancel the claimed rows whose route was disabled, and start sending the others in the sender thread."""
    # A route disabled while its delivery was in flight or retrying: cancelled, never sent under the old mapping.
    if stopped := [d.pk for d in claimed if d.route is not None and not d.route.enabled]:
        with transaction.atomic():
            Delivery.objects.filter(pk__in=stopped, status=Delivery.Status.SENDING).update(
                status=Delivery.Status.CANCELLED, claimed_at=None, last_error="cancelled: route disabled"
            )
            deliveries_finished([(d, Delivery.Status.CANCELLED) for d in claimed if d.pk in stopped], at=timezone.now())
    # Consent withdrawn after it was queued (consent_update suppresses the due ones; this catches a race with it).
    if refused := {d.pk: m for d in claimed if d.pk not in stopped and (m := delivery_consent_missing(d))}:
        with transaction.atomic():
            for pk, missing in refused.items():
                Delivery.objects.filter(pk=pk, status=Delivery.Status.SENDING).update(
                    status=Delivery.Status.SUPPRESSED, claimed_at=None, last_error=suppressed_reason(missing)
                )
            deliveries_finished(
                [(d, Delivery.Status.SUPPRESSED) for d in claimed if d.pk in refused], at=timezone.now()
            )
    deliveries = {d.pk: d for d in claimed if d.pk not in stopped and d.pk not in refused}
    events, unreadable = [], []
    for d in deliveries.values():
        try:
            events.append(outgoing_event(d))
        except Unreadable as exc:
            unreadable.append(Sent((d.pk,), Result("failed", str(exc))))
    guard = RunGuard(RUN_STOP_FAILURES)
    future = sender.submit(_send_timed, connection, events, deadline, guard, pool) if events else None
    return _Batch(deliveries, guard, future, unreadable)


def _send_timed(*args) -> tuple[list[Sent], float]:
    """_send_run, and the seconds it held the run (a hanging vendor's: its circuit stays open that much longer)."""
    started = time.monotonic()
    sent = _send_run(*args)
    return sent, time.monotonic() - started


def _batch_record(connection: VendorConnection, batch: _Batch, *, probe: bool) -> None:
    """Record a sent batch: attempts and next statuses, the circuit, and (Webmarketer) the lead changes that were
    waiting for these events' ids."""
    sent = batch.wait()
    if not batch.deliveries:
        batch.recorded = True
        return
    _apply_retrying(connection, batch.deliveries, sent)
    batch.recorded = True
    # A failed probe (the connection was failing already), or a run its failures stopped: the circuit opens.
    circuit_update(connection, sent, trip=batch.guard.tripped or probe, busy=batch.busy)
    if connection.kind == VendorKind.WEBMARKETER:
        # Lead changes made before these events reached Webmarketer were waiting for their ids.
        delivered = [
            batch.deliveries[k].event_id for s in sent if s.result.vendor_ref and not s.released for k in s.keys
        ]
        if delivered:
            from .leads import lead_changes_release

            lead_changes_release(connection_id=connection.pk, event_ids=delivered)


def connection_dispatch(*, connection_id: int) -> int:
    """Claim and send batches of a connection's due deliveries; returns how many were claimed. The run is
    time-boxed (run_deadline): what it had no time to send goes back to due, no attempt counted.

    A connection has one run at a time, or HUB_RUNS_PER_CONNECTION while it is healthy with a long queue
    (runs_allowed; claims are row-level, so runs never share a row): a run that sees room for one more queues it.

    Pipelined: while one batch is being sent (the sender thread and the request threads, no ORM), this thread
    records the previous batch and claims the next, so the vendor does not wait on the database. A healthy
    connection's run goes on for HUB_RUN_SLICE_SECONDS, batch after batch, and stops at the first batch with a
    transient failure (the next one, already claimed, goes back to due unsent); a failing connection's run is
    one probe. All of a run's rows carry its claim stamp: a row is settled only if it still carries it."""
    connection = VendorConnection.objects.filter(pk=connection_id, enabled=True).first()
    # Paused: its deliveries stay due, nothing is sent until it is resumed (which wakes this again).
    if connection is None or connection.circuit_open or connection.paused:
        return 0
    deadline = run_deadline(connection)
    probe = connection_failing(connection)
    limit = dispatch_limit(connection)
    stamp = timezone.now()
    with transaction.atomic():
        if db_connection.features.has_select_for_update:
            # One check and claim at a time per connection (SQLite: the IMMEDIATE transaction already is).
            list(VendorConnection.objects.select_for_update().filter(pk=connection_id).values_list("pk"))
        running = runs_in_flight(connection_id)
        allowed = runs_allowed(connection, limit)
        if running >= allowed:
            # One run per connection at a time (two for a healthy one with a long queue, runs_allowed): a failing
            # connection never holds more than one worker process, however slow its vendor; the run in flight
            # goes again when it is done.
            return 0
        claimed = deliveries_claim(connection_id=connection_id, limit=limit, claimed_at=stamp)
        # Room for one more run beside this one (a healthy connection with a long queue): queue it.
        another = bool(claimed) and running + 1 < allowed
    if not claimed:
        return 0
    if another:
        connections_wake([connection_id], committed=True)
    slice_end = min(deadline, time.monotonic() + settings.HUB_RUN_SLICE_SECONDS)
    total = 0
    batch: _Batch | None = None
    ahead: list[Delivery] = []
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch") as sender,
        ThreadPoolExecutor(max_workers=max(1, settings.HUB_DISPATCH_CONCURRENCY), thread_name_prefix="send") as pool,
    ):
        try:
            while claimed:
                total += len(claimed)
                previous, batch = batch, _batch_start(connection, claimed, deadline, sender, pool)
                claimed = []
                # While this batch is being sent: record the previous one, then claim the next.
                if previous is not None:
                    _batch_record(connection, previous, probe=probe)
                # A rate-limited connection's run is one slice (dispatch_limit); its next goes RATE_SLICE later.
                more = not probe and not connection.max_rate and time.monotonic() < slice_end
                if more and not (previous and previous.failing):
                    try:
                        ahead = deliveries_claim(connection_id=connection_id, limit=limit, claimed_at=stamp)
                    except OperationalError:
                        # The database is away (restarting): this run ends with the batch in flight, recorded
                        # once the database is back (_apply_retrying); the next run claims the rest.
                        ahead = []
                batch.wait()
                if ahead and batch.failing:
                    # The vendor started failing: what was claimed ahead goes back to due, never sent.
                    _release({d.pk: d for d in ahead}, tuple(d.pk for d in ahead))
                    ahead = []
                claimed, ahead = ahead, []
            if batch is not None:
                _batch_record(connection, batch, probe=probe)
        except BaseException:
            # Leave no row of this run in `sending` for the sweep (which would count a take-back): what was
            # claimed ahead goes back to due; the batch in flight is recorded once it is back.
            _run_abandon(connection, batch, ahead or claimed, probe=probe)
            raise
    return total


def _run_abandon(connection: VendorConnection, batch: _Batch | None, unsent: list[Delivery], *, probe: bool) -> None:
    """Best effort after an error in a run (the database gone or locked): record the batch in flight and release
    the rows claimed ahead. What cannot be written stays for the sweep."""
    # The batch in flight first: its requests were sent, and recording it waits for the database (_apply_retrying);
    # rows left in `sending` unrecorded would be sent again by the sweep, a duplicate the vendor sees.
    if batch is not None and not batch.recorded:
        try:
            _batch_record(connection, batch, probe=probe)
        except Exception as exc:  # noqa: BLE001 (the first error is the one raised)
            log.warning("connection %s: a sent batch could not be recorded (%s)", connection.pk, type(exc).__name__)
    if unsent:
        try:
            _release({d.pk: d for d in unsent}, tuple(d.pk for d in unsent))
        except Exception as exc:  # noqa: BLE001
            log.warning("connection %s: unsent rows left for the sweep (%s)", connection.pk, type(exc).__name__)


# -- sweeping (beat) --------------------------------------------------------------------------------------
# The partial indexes' conditions, written literally: a planner uses a partial index only when the query's
# WHERE implies its condition, which it cannot prove of a bound parameter (SQLite, PostgreSQL generic plans).
IN_FLIGHT = RawSQL("status = 'sending'", (), output_field=BooleanField())
DUE_NOW = RawSQL("status IN ('pending', 'retrying')", (), output_field=BooleanField())


def in_flight_before(model: type[Delivery] | type[LeadDelivery], before: datetime) -> QuerySet:
    """Rows in `sending` claimed before `before`. No ordering: the model's default (-id) would steer the planner
    to a scan in id order instead of the partial index."""
    return model.objects.filter(IN_FLIGHT, claimed_at__lt=before).order_by()


def due_now(model: type[Delivery] | type[LeadDelivery], now: datetime) -> QuerySet:
    """Rows due at `now`. No ordering: with the default (-id), DISTINCT would also be over the id (one row per
    delivery instead of per connection) and the planner would scan in id order."""
    return model.objects.filter(DUE_NOW, next_attempt_at__lte=now).order_by()


def sending_take_back(model: type[Delivery] | type[LeadDelivery], *, now: datetime) -> int:
    """Rows of `model` stuck in `sending` (their worker died before recording an answer) become due again;
    a row taken back HUB_MAX_TAKE_BACKS times fails instead (something in it may stop the worker each time).
    Uses the in-flight partial index (delivery_in_flight, lead_delivery_in_flight)."""
    stuck_before = now - timedelta(seconds=settings.HUB_STUCK_AFTER_SECONDS)
    stuck = in_flight_before(model, stuck_before)
    last = max(1, settings.HUB_MAX_TAKE_BACKS) - 1
    with transaction.atomic():
        give_up = {
            "claimed_at": None,
            "take_backs": F("take_backs") + 1,
            "last_error": Concat(
                Value("worker stopped while sending, "),
                Cast(F("take_backs") + 1, output_field=CharField()),
                Value(" times"),
                output_field=CharField(),
            ),
        }
        if model is Delivery:  # counted in the dashboard's rollups as they fail
            failed = deliveries_close(stuck.filter(take_backs__gte=last), "failed", **give_up)
        else:
            failed = stuck.filter(take_backs__gte=last).update(status="failed", **give_up)
        recovered = stuck.update(
            status="retrying",
            claimed_at=None,
            take_backs=F("take_backs") + 1,
            next_attempt_at=now,
            last_error="taken back: the worker sending it stopped before recording an answer",
        )
    if recovered or failed:
        name = model._meta.verbose_name_plural
        log.warning("recovered %d %s stuck in sending, failed %d taken back too often", recovered, name, failed)
    return recovered + failed


def connections_due(model: type[Delivery] | type[LeadDelivery], *, now: datetime) -> list[int]:
    """Enabled, unpaused connections with rows of `model` due now, leaving out those whose circuit is open. Uses
    the due-now partial index (delivery_due_now, lead_delivery_due_now)."""
    due = set(due_now(model, now).values_list("connection_id", flat=True).distinct())
    usable = VendorConnection.objects.filter(pk__in=due, enabled=True, paused=False).exclude(circuit_open_until__gt=now)
    return sorted(usable.values_list("pk", flat=True))


# Due deliveries ended per connection and sweep once their give-up window is over (deliveries_expire), and how
# often the sweep looks when it found none: the look reads every due row of a connection (created_at is in no
# index), 100,000 of them for a vendor down an hour; a minute late on a window of hours is no matter.
EXPIRE_CHUNK = 10_000
EXPIRE_EVERY = 60.0
_expire_next = 0.0  # time.monotonic() of this process's next look


def deliveries_expire(*, now: datetime) -> int:
    """Due deliveries of enabled, unpaused connections whose give-up window (give_up_after_seconds since created)
    is over fail with the reason, without another send, up to EXPIRE_CHUNK per connection and sweep.

    Found by the back-pressure run: a vendor down longer than its window gets probes only (one delivery per run,
    a cooldown between them), so next_state alone would end 100,000 due deliveries one probe at a time, over
    days; the rows would stay `retrying` and keep the connection's queue long past the window."""
    global _expire_next
    if time.monotonic() < _expire_next:
        return 0
    expired = 0
    windows = VendorConnection.objects.filter(enabled=True, paused=False).values_list("pk", "give_up_after_seconds")
    for pk, window in windows:
        before = now - timedelta(seconds=window)
        due = Delivery.objects.filter(DUE_NOW, connection_id=pk, created_at__lt=before).order_by()
        ids = list(due.values_list("pk", flat=True)[:EXPIRE_CHUNK])
        if ids:
            expired += deliveries_close(
                Delivery.objects.filter(DUE_NOW, pk__in=ids),
                "failed",
                claimed_at=None,
                last_error=f"gave up: not delivered within the connection's give-up window ({window} s)",
            )
    if expired:
        log.warning("failed %d deliveries past their connection's give-up window", expired)
    else:  # none: not again for a while (after a chunk, the next sweep goes on with the rest)
        _expire_next = time.monotonic() + EXPIRE_EVERY
    return expired


def deliveries_sweep() -> dict[str, int]:
    """Take back deliveries stuck in `sending` (their worker died), end those past their give-up window, and wake
    every connection with due work."""
    now = timezone.now()
    recovered = sending_take_back(Delivery, now=now)
    expired = deliveries_expire(now=now)
    woken = connections_due(Delivery, now=now)
    connections_wake(woken, committed=True)
    return {"recovered": recovered, "expired": expired, "woken": len(woken)}
