"""The delivery state machine under faults: poison events, answers no one can read, rows that cannot be written,
workers that stop, overflowing backoffs, stale circuit counts, closed clients, slow runs, the sweep's plans."""

from __future__ import annotations

import types
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from django.db import DataError, OperationalError
from django.db import connection as db
from django.utils import timezone

from tests.factories import (
    PURCHASE,
    event_store,
    event_type_make,
    route_make,
    vendor_connection_make,
)
from tests.services.conftest import EVENTS_URL, TOKEN, contact_forms_ingest, dispatch
from tracking.demo import PURCHASE_ROUTES, purchase_data
from tracking.models import Attempt, Delivery, Event, LeadChange, LeadDelivery, Route, VendorConnection
from tracking.services import delivery as service
from tracking.vendors.base import Result, VendorRequest, excerpt_text, parse_retry_after
from tracking.vendors.http import VendorSession
from tracking.vendors.webmarketer import Webmarketer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_sessions")]

TRACIFY_URL = "https://api.tracify.ai/api/v1/events"
LONE_SURROGATE = "\ud800"
# PostgreSQL's jsonb refuses a lone surrogate outright; such an event can only exist on SQLite (or in a row
# from before the check), so the tests that store one run there.
sqlite_only = pytest.mark.skipif(db.vendor != "sqlite", reason="jsonb cannot hold a lone surrogate")


def contact(connection, datas: list[dict]) -> list[Event]:
    route = route_make(event_type_make(), connection)
    return [event_store(route.event_type, data, nonce=f"n-{i}", routes=[route]) for i, data in enumerate(datas)]


def good(i: int) -> dict:
    return {"email": f"p{i}@example.com", "message": "hi"}


def status_of(event: Event) -> Delivery:
    return Delivery.objects.get(event=event)


def accept(vendor_mock):
    return vendor_mock.post(EVENTS_URL).mock(
        side_effect=lambda request: httpx.Response(200, json=f"id-{len(vendor_mock.calls)}")
    )


# -- P1: a poison event fails alone ----------------------------------------------------------------------------
@sqlite_only
def test_a_poison_event_fails_alone_and_the_others_of_the_run_are_delivered(connection, vendor):
    accept(vendor)
    events = contact(connection, [good(0), {"email": "x@example.com", "message": LONE_SURROGATE}, good(2), good(3)])

    assert dispatch(connection) == 4

    poison = status_of(events[1])
    assert poison.status == "failed"
    assert "cannot be encoded" in poison.last_error and "surrogates not allowed" in poison.last_error
    assert [status_of(e).status for e in events if e != events[1]] == ["delivered"] * 3
    assert not Delivery.objects.filter(status="sending").exists()
    (attempt,) = poison.attempt_set.all()  # recorded: what could not be sent, and why
    assert attempt.outcome == "failed" and attempt.response_status is None
    assert "\\ud800" in attempt.request_body


@sqlite_only
def test_a_batch_request_that_cannot_be_encoded_is_sent_per_event_and_only_the_poison_fails():
    connection = vendor_connection_make("tracify")
    route = route_make(
        event_type_make(PURCHASE), connection, vendor_event_name="purchase", mapping=PURCHASE_ROUTES["tracify"][1]
    )
    datas = [purchase_data("Kate", "Austen", i) for i in range(3)]
    datas[1]["items"][0]["name"] = "Trail " + LONE_SURROGATE  # builds fine, cannot be encoded as UTF-8
    events = [event_store(route.event_type, d, nonce=f"p-{i}", routes=[route]) for i, d in enumerate(datas)]
    with respx.mock() as mock:
        sent = mock.post(TRACIFY_URL).mock(return_value=httpx.Response(200, json={"status": "ok"}))

        assert dispatch(connection) == 3

    assert [status_of(e).status for e in events] == ["delivered", "failed", "delivered"]
    assert "cannot be encoded" in status_of(events[1]).last_error
    assert sent.call_count == 2  # the two good events, each alone


@sqlite_only
def test_a_batch_that_cannot_be_built_is_built_per_event_and_only_the_poison_fails():
    connection = vendor_connection_make("tracify")
    route = route_make(
        event_type_make(PURCHASE), connection, vendor_event_name="purchase", mapping=PURCHASE_ROUTES["tracify"][1]
    )
    datas = [purchase_data("Kate", "Austen", i) for i in range(3)]
    datas[2]["email"] = LONE_SURROGATE + "@example.com"  # the identity hash cannot encode it: build() raises
    events = [event_store(route.event_type, d, nonce=f"p-{i}", routes=[route]) for i, d in enumerate(datas)]
    with respx.mock() as mock:
        sent = mock.post(TRACIFY_URL).mock(return_value=httpx.Response(200, json={"status": "ok"}))

        assert dispatch(connection) == 3

    assert [status_of(e).status for e in events] == ["delivered", "delivered", "failed"]
    assert status_of(events[2]).last_error.startswith("not sent: the request could not be built: ")
    assert sent.call_count == 2
    assert not Attempt.objects.filter(delivery__event=events[2]).exists()  # never sent, nothing to record


def test_a_vendor_module_that_raises_while_building_fails_only_that_event(connection, vendor, monkeypatch):
    accept(vendor)
    events = contact(connection, [good(0), {"email": "boom@example.com", "message": "x"}, good(2)])
    original = Webmarketer.build

    def build(self, outgoing, token):
        if any(e.data["email"] == "boom@example.com" for e in outgoing):
            raise KeyError("a mapping the module did not expect")
        return original(self, outgoing, token)

    monkeypatch.setattr(Webmarketer, "build", build)

    dispatch(connection)

    assert [status_of(e).status for e in events] == ["delivered", "failed", "delivered"]
    assert "KeyError" in status_of(events[1]).last_error


def test_an_answer_the_vendor_module_cannot_read_fails_only_its_request(connection, vendor, monkeypatch):
    accept(vendor)
    events = contact(connection, [good(0), {"email": "odd@example.com", "message": "x"}, good(2)])
    original = Webmarketer.classify

    def classify(self, request, response):
        if request.json["data"]["email"] == "odd@example.com":
            raise TypeError("unexpected answer shape")
        return original(self, request, response)

    monkeypatch.setattr(Webmarketer, "classify", classify)

    dispatch(connection)

    odd = status_of(events[1])
    assert [status_of(e).status for e in events] == ["delivered", "failed", "delivered"]
    assert odd.last_error == "HTTP 200, answer not understood: TypeError: unexpected answer shape"
    assert odd.attempt_set.get().response_status == 200


def test_an_unreadable_error_answer_is_retried(connection, vendor, monkeypatch):
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(503))
    (event,) = contact(connection, [good(0)])
    monkeypatch.setattr(Webmarketer, "classify", lambda self, request, response: 1 / 0)

    dispatch(connection)

    assert status_of(event).status == "retrying"
    assert "ZeroDivisionError" in status_of(event).last_error


def test_one_row_that_cannot_be_recorded_does_not_roll_back_the_others(connection, vendor, monkeypatch):
    accept(vendor)
    events = contact(connection, [good(0), good(1), good(2)])
    bad = status_of(events[1])
    original = service.next_state

    def next_state(conn, *, created_at, **kwargs):
        if created_at == bad.created_at:
            raise DataError("value too long")
        return original(conn, created_at=created_at, **kwargs)

    monkeypatch.setattr(service, "next_state", next_state)

    dispatch(connection)

    assert [status_of(e).status for e in events] == ["delivered", "failed", "delivered"]
    assert status_of(events[1]).last_error.startswith("the answer could not be recorded (DataError)")
    assert Attempt.objects.filter(delivery__event__in=[events[0], events[2]]).count() == 2


# -- P2: taken back too often ----------------------------------------------------------------------------------
def _stick(model, pk):
    model.objects.filter(pk=pk).update(status="sending", claimed_at=timezone.now() - timedelta(hours=1))


def test_a_delivery_taken_back_too_often_fails_instead_of_looping(connection, settings):
    settings.HUB_MAX_TAKE_BACKS = 3
    (event,) = contact(connection, [good(0)])
    delivery = status_of(event)

    for expected in (1, 2):
        _stick(Delivery, delivery.pk)
        service.deliveries_sweep()
        delivery.refresh_from_db()
        assert (delivery.status, delivery.take_backs) == ("retrying", expected)

    _stick(Delivery, delivery.pk)
    service.deliveries_sweep()

    delivery.refresh_from_db()
    assert (delivery.status, delivery.take_backs, delivery.claimed_at) == ("failed", 3, None)
    assert delivery.last_error == "worker stopped while sending, 3 times"


def test_a_lead_delivery_taken_back_too_often_fails_too(connection, settings):
    settings.HUB_MAX_TAKE_BACKS = 2
    (event,) = contact(connection, [good(0)])
    now = timezone.now()
    change = LeadChange.objects.create(
        event=event, kind="state", storage_key="qualified", value=1, date=now, created_at=now
    )
    row = LeadDelivery.objects.create(
        change=change, connection=connection, event=event, kind="state", storage_key="qualified",
        status="sending", claimed_at=now - timedelta(hours=1), take_backs=1, created_at=now, queued_at=now,
    )  # fmt: skip

    assert service.sending_take_back(LeadDelivery, now=timezone.now()) == 1

    row.refresh_from_db()
    assert (row.status, row.take_backs, row.last_error) == ("failed", 2, "worker stopped while sending, 2 times")


# -- C2, C11: backoff and Retry-After that cannot overflow; the window kept ------------------------------------
@pytest.mark.parametrize("attempt", [1_025, 10**6, 10**18])
def test_backoff_is_finite_for_any_attempt(attempt):
    assert 0 <= service.backoff_seconds(attempt=attempt, base=10.0, cap=600.0) <= 600  # floats, as stored


@pytest.mark.parametrize(
    "header, seconds",
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("999999999999", 86_400.0),
        ("9" * 400, 86_400.0),
        ("²", None),
        ("１２", None),
        ("-5", None),
        ("1e3", None),
        ("inf", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
        ("Sat, 01 Jan 10000 00:00:00 GMT", None),
        ("tomorrow", None),
    ],
)
def test_retry_after_is_parsed_strictly(header, seconds):
    assert parse_retry_after(header, datetime(2026, 1, 1, tzinfo=UTC)) == seconds


@pytest.mark.parametrize("header", ["999999999999", "²"])
def test_any_retry_after_leaves_the_run_standing(connection, vendor, header):
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(429, headers={"Retry-After": header.encode()}))
    (event,) = contact(connection, [good(0)])

    assert dispatch(connection) == 1

    delivery = status_of(event)
    if header == "²":  # ignored: the plain backoff
        assert delivery.status == "retrying"
        assert delivery.next_attempt_at <= timezone.now() + timedelta(seconds=10)
    else:  # longer than the window: give up now rather than overflow later
        assert delivery.status == "failed" and delivery.last_error.startswith("gave up after 1 attempts")


def test_the_jitter_never_gives_up_before_the_window_ends(connection, vendor, monkeypatch):
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(503))
    (event,) = contact(connection, [good(0)])
    window = connection.give_up_after_seconds
    Delivery.objects.filter(event=event).update(created_at=timezone.now() - timedelta(seconds=window - 100), attempts=9)
    monkeypatch.setattr(service.random, "uniform", lambda low, high: high)  # the largest jitter: 600 s

    dispatch(connection)

    delivery = status_of(event)
    assert delivery.status == "retrying"
    assert delivery.next_attempt_at <= delivery.created_at + timedelta(seconds=window)


def test_a_claim_takes_at_most_hub_dispatch_batch(connection, vendor, settings):
    accept(vendor)
    settings.HUB_DISPATCH_BATCH = 3
    settings.HUB_RUN_SLICE_SECONDS = 0  # one batch per run
    contact(connection, [good(i) for i in range(5)])

    assert dispatch(connection) == 3
    VendorConnection.objects.filter(pk=connection.pk).update(batch_size=1)
    connection.refresh_from_db()
    assert dispatch(connection) == 1  # a smaller batch size of the connection lowers it


def test_a_delivery_whose_route_was_disabled_behind_the_services_back_is_cancelled_not_sent(connection, vendor):
    sent = accept(vendor)
    events = contact(connection, [good(0)])
    # Disabled by a bulk update (no signal): the delivery is still due under the old route.
    Route.objects.update(enabled=False)

    assert dispatch(connection) == 1

    delivery = events[0].deliveries.get()
    assert delivery.status == Delivery.Status.CANCELLED and delivery.last_error == "cancelled: route disabled"
    assert not sent.called


# -- C6: the circuit counts in the database ----------------------------------------------------------------------
def _sent(outcome: str, n: int = 1) -> list[service.Sent]:
    return [service.Sent((i,), Result(outcome, "x")) for i in range(n)]


def test_failures_of_concurrent_runs_add_up_and_open_the_circuit(connection):
    stale = VendorConnection.objects.get(pk=connection.pk)  # loaded when the run began: 0 failures
    VendorConnection.objects.filter(pk=connection.pk).update(circuit_failures=service.CIRCUIT_THRESHOLD - 1)

    service.circuit_update(stale, _sent("retry"))

    connection.refresh_from_db()
    assert connection.circuit_failures == service.CIRCUIT_THRESHOLD and connection.circuit_open


def test_a_success_resets_a_count_another_run_raised(connection):
    stale = VendorConnection.objects.get(pk=connection.pk)
    VendorConnection.objects.filter(pk=connection.pk).update(circuit_failures=5)

    service.circuit_update(stale, _sent("delivered"))

    connection.refresh_from_db()
    assert (connection.circuit_failures, connection.circuit_open_until) == (0, None)


def test_an_open_circuit_is_not_pushed_further_by_more_failures(connection):
    until = timezone.now() + timedelta(seconds=5)
    VendorConnection.objects.filter(pk=connection.pk).update(circuit_failures=20, circuit_open_until=until)

    service.circuit_update(connection, _sent("retry", 3))

    connection.refresh_from_db()
    assert (connection.circuit_failures, connection.circuit_open_until) == (23, until)


# -- P4: redact, then cut ---------------------------------------------------------------------------------------
def test_a_secret_echoed_across_the_cut_never_shows_in_part(connection, vendor):
    token = TOKEN
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(400, text="x" * 1995 + token + "y" * 100))
    (event,) = contact(connection, [good(0)])

    dispatch(connection)

    body = status_of(event).attempt_set.get().response_body
    assert token[:5] not in body and body.startswith("x" * 1995)


def test_excerpt_text_redacts_before_it_cuts():
    assert excerpt_text("ab" + "SECRET-XYZ" + "cd", 6, ("SECRET-XYZ",)) == "ab[red…"


# -- C8: sessions retired, never closed under a user; any transport error is a retry -----------------------------
def test_an_edited_connection_leaves_the_old_session_open_for_who_still_uses_it(connection, vendor):
    vendor.get("https://api.webmarketer.io/api/v1/page-2").mock(return_value=httpx.Response(200, json=[]))
    old = service.session_for(connection)
    connection.timeout_seconds = 7
    connection.save()

    new = service.session_for(connection)

    assert new is not old
    exchange = old.send(VendorRequest("GET", "https://api.webmarketer.io/api/v1/page-2"))
    assert exchange.response is not None and exchange.response.status_code == 200


@pytest.mark.parametrize(
    "error", [RuntimeError("Cannot send a request, as the client has been closed"), OSError("reset"), None]
)
def test_any_transport_error_is_an_exchange_not_a_crash(error):
    session = VendorSession(
        Webmarketer(base_url="https://api.webmarketer.io/"), timeout=1, max_rate=None, max_connections=1
    )
    with respx.mock(assert_all_called=False) as mock:
        mock.get("https://api.webmarketer.io/x").mock(side_effect=error or httpx.RemoteProtocolError("dropped"))
        if isinstance(error, RuntimeError):
            session.close()
            mock.get("https://api.webmarketer.io/x").mock(return_value=httpx.Response(200))

        exchange = session.send(VendorRequest("GET", "https://api.webmarketer.io/x"))

    assert exchange.response is None and exchange.error.startswith("connection error (") and not exchange.unsendable


# -- C3: a run never outlives its claim ---------------------------------------------------------------------------
def test_a_run_whose_time_is_up_releases_what_it_did_not_send(connection, vendor, settings, monkeypatch):
    settings.HUB_DISPATCH_CONCURRENCY = 1
    clock = types.SimpleNamespace(now=0.0, monotonic=lambda: clock.now)
    monkeypatch.setattr(service, "time", clock)
    monkeypatch.setattr(service, "run_deadline", lambda connection: 5.0)

    def answer(request):
        clock.now = 10.0  # the first request took the run's whole time
        return httpx.Response(200, json="id-1")

    vendor.post(EVENTS_URL).mock(side_effect=answer)
    events = contact(connection, [good(i) for i in range(4)])

    assert dispatch(connection) == 4

    deliveries = [status_of(e) for e in events]
    assert [d.status for d in deliveries] == ["delivered", "retrying", "retrying", "retrying"]
    assert [d.attempts for d in deliveries] == [1, 0, 0, 0]  # released, not attempted
    assert all(d.claimed_at is None and d.next_attempt_at <= timezone.now() for d in deliveries[1:])
    assert Attempt.objects.count() == 1


def test_a_run_stops_starting_requests_well_before_the_sweep_would_take_it_back(connection, settings):
    settings.HUB_STUCK_AFTER_SECONDS = 300
    settings.HUB_RUN_SHARE = 0.5
    connection.timeout_seconds = 10

    budget = service.run_deadline(connection) - service.time.monotonic()

    assert 100 < budget <= 120  # 150 s, less three request timeouts


# -- C9: the sweep's queries use the partial indexes ------------------------------------------------------------
def _many_lead_deliveries(connection, n=2000):
    (event,) = contact(connection, [good(0)])
    now = timezone.now()
    changes = LeadChange.objects.bulk_create(
        LeadChange(event=event, kind="state", storage_key=f"k{i}", value=1, date=now, created_at=now) for i in range(n)
    )
    statuses = ["delivered"] * 97 + ["pending", "retrying", "sending"]
    LeadDelivery.objects.bulk_create(
        LeadDelivery(
            change=c,
            connection=connection,
            event=event,
            kind="state",
            storage_key=c.storage_key,
            status=statuses[i % 100],
            claimed_at=now,
            created_at=now,
            queued_at=now,
        )  # fmt: skip
        for i, c in enumerate(changes)
    )
    with db.cursor() as cursor:
        cursor.execute("ANALYZE")


def _many_deliveries(connection, n=2000):
    event_type = event_type_make()
    now = timezone.now()
    events = Event.objects.bulk_create(
        Event(
            nonce=f"b-{i}",
            vendor_nonce=f"b-{i}",
            event_type=event_type,
            event_type_ref="contact-form",
            data={},
            event_date=now,
        )
        for i in range(n)
    )
    statuses = ["delivered"] * 97 + ["pending", "retrying", "sending"]
    Delivery.objects.bulk_create(
        Delivery(event=e, connection=connection, nonce=e.vendor_nonce, status=statuses[i % 100], claimed_at=now)
        for i, e in enumerate(events)
    )
    with db.cursor() as cursor:
        cursor.execute("ANALYZE")


@pytest.mark.parametrize(
    "query, index",
    [
        (lambda model, now: service.in_flight_before(model, now), "in_flight"),
        (lambda model, now: service.due_now(model, now).values_list("connection_id", flat=True).distinct(), "due_now"),
    ],
)
@pytest.mark.parametrize("model, prefix", [(Delivery, "delivery_"), (LeadDelivery, "lead_delivery_")])
def test_the_sweep_queries_use_the_partial_indexes(connection, query, index, model, prefix):
    # The plan with a realistic spread: most rows delivered long ago, a sliver due or in flight.
    (_many_deliveries if model is Delivery else _many_lead_deliveries)(connection)

    plan = query(model, timezone.now()).explain()

    assert prefix + index in plan, plan


def test_the_take_back_counts_what_it_took_back(connection):
    contact(connection, [good(i) for i in range(3)])
    Delivery.objects.update(status="sending", claimed_at=timezone.now() - timedelta(hours=1))

    assert service.sending_take_back(Delivery, now=timezone.now()) == 3
    assert set(Delivery.objects.values_list("status", "take_backs")) == {("retrying", 1)}


def test_connections_due_names_each_connection_once(connection):
    contact(connection, [good(i) for i in range(3)])

    assert service.connections_due(Delivery, now=timezone.now()) == [connection.pk]


# -- P3: no event data in the logs ------------------------------------------------------------------------------
MARKER = "private-7f3a@example.com"


def test_a_failing_build_logs_no_event_data(connection, vendor, monkeypatch, caplog):
    caplog.set_level("INFO")
    accept(vendor)
    (event,) = contact(connection, [{"email": MARKER, "message": "hi"}])
    monkeypatch.setattr(
        Webmarketer, "build", lambda self, events, token: (_ for _ in ()).throw(ValueError(f"bad {events[0].data}"))
    )

    dispatch(connection)

    assert status_of(event).status == "failed"
    assert MARKER not in caplog.text


def test_a_bug_in_a_run_leaves_nothing_in_sending_and_logs_no_event_data(connection, vendor, monkeypatch, caplog):
    caplog.set_level("INFO")
    (event,) = contact(connection, [{"email": MARKER, "message": "hi"}])

    def broken(session, events, deadline=None, guard=None, pool=None):
        raise RuntimeError(f"cannot handle {events[0].data}")

    monkeypatch.setattr(service, "_send_all", broken)

    assert dispatch(connection) == 1

    delivery = status_of(event)
    assert delivery.status == "retrying" and delivery.last_error == "internal error (RuntimeError), retried later"
    assert "RuntimeError" in caplog.text and MARKER not in caplog.text


def test_answers_are_recorded_once_the_database_is_back_not_left_for_the_sweep_to_send_again(
    connection, vendor, monkeypatch
):
    events = vendor.post(EVENTS_URL).mock(return_value=httpx.Response(200, json="wm-id"))
    contact_forms_ingest(connection, n=3)
    real_apply, calls = service._apply, []

    def database_away_once(*args):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real_apply(*args)

    monkeypatch.setattr(service, "_apply", database_away_once)

    assert dispatch(connection) == 3

    assert len(calls) == 2 and events.call_count == 3
    assert list(Delivery.objects.values_list("status", "attempts")) == [("delivered", 1)] * 3
    assert Attempt.objects.count() == 3
