"""Lead changes against a respx-mocked Webmarketer: recording, waiting for the event id, order per lane,
undo, the documented 404, retries and the rules shared with event deliveries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
import respx
from django.utils import timezone

from tests.factories import (
    PURCHASE,
    event_type_make,
    route_make,
    source_make,
    user_make,
    webmarketer_connection_make,
)
from tracking.models import AuditEntry, Delivery, Event, LeadAttempt, LeadChange, LeadDelivery, TrashedEvent
from tracking.services import delivery as delivery_service
from tracking.services import leads
from tracking.services.ingest import events_ingest
from tracking.services.replay import event_replay
from tracking.services.webmarketer import trash_replay

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_sessions")]

TOKEN_URL = "https://oauth.webmarketer.io/oidc/token"
EVENTS_URL = "https://api.webmarketer.io/api/v1/events"
PROJECT_URL = "https://api.webmarketer.io/api/v1/projects/my-project/events"
EVENT_DATE = "2024-05-01T09:00:00Z"
QUALIFIED_ON = datetime(2024, 5, 2, 10, 30, tzinfo=UTC)
CONVERTED_ON = datetime(2024, 5, 9, 17, 0, tzinfo=UTC)
MISSING_KEY = {"statusCode": 404, "message": "No storageKey matching field in this eventType"}


@pytest.fixture
def connection():
    return webmarketer_connection_make(retry_base_seconds=10, retry_max_seconds=600)


@pytest.fixture
def vendor():
    with respx.mock(assert_all_called=False) as mock:
        mock.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"access_token": "tok-1", "expires_in": 3600}))
        mock.post(EVENTS_URL).mock(return_value=httpx.Response(200, json="wm-event-1"))
        yield mock


@pytest.fixture
def sales():
    return user_make("Sales")


@pytest.fixture
def lead(connection) -> Event:
    """A contact-form event routed to the Webmarketer connection, not sent yet."""
    route_make(event_type_make(), connection)
    source, _ = source_make()
    (result,) = events_ingest(
        source=source,
        items=[
            {
                "eventType": "contact-form",
                "nonce": "lead-1",
                "eventDate": EVENT_DATE,
                "data": {"email": "kate@example.com", "first_name": "Kate", "message": "Call me"},
            }
        ],
    )
    return result.event


def deliver_event(connection) -> Delivery:
    delivery_service.connection_dispatch(connection_id=connection.pk)
    return Delivery.objects.get()


def dispatch_leads(connection) -> int:
    return leads.lead_changes_dispatch(connection_id=connection.pk)


def state_url(key: str, event_id: str = "wm-event-1") -> str:
    return f"{PROJECT_URL}/{event_id}/states/{key}"


def qualify(lead, user, value=1, date=QUALIFIED_ON, key="qualified") -> LeadChange:
    return leads.lead_change_record(event=lead, kind="state", storage_key=key, value=value, date=date, user=user)


def test_a_change_of_a_delivered_event_goes_at_once_with_the_vendor_id(connection, vendor, lead, sales):
    deliver_event(connection)
    route = vendor.patch(state_url("qualified")).mock(return_value=httpx.Response(200, json={}))

    change = qualify(lead, sales)
    (owed,) = change.deliveries.all()
    assert owed.status == "pending"
    assert dispatch_leads(connection) == 1

    owed.refresh_from_db()
    assert (owed.status, owed.vendor_ref, owed.attempts) == ("delivered", "wm-event-1", 1)
    assert owed.delivered_at is not None
    assert json.loads(route.calls.last.request.content) == {"value": 1, "date": "2024-05-02T10:30:00.000Z"}
    assert route.calls.last.request.headers["Authorization"] == "Bearer tok-1"
    (attempt,) = owed.attempt_set.all()
    assert (attempt.method, attempt.url, attempt.response_status, attempt.outcome) == (
        "PATCH",
        state_url("qualified"),
        200,
        "delivered",
    )
    assert attempt.request_body == '{"value": 1, "date": "2024-05-02T10:30:00.000Z"}'
    assert "tok-1" not in attempt.url + attempt.request_body + attempt.response_body


def test_a_change_made_before_the_event_was_delivered_waits_then_goes_with_its_id(
    connection, vendor, lead, sales, django_capture_on_commit_callbacks
):
    route = vendor.patch(state_url("qualified")).mock(return_value=httpx.Response(200))
    change = qualify(lead, sales)
    (owed,) = change.deliveries.all()
    assert owed.status == "waiting"
    assert dispatch_leads(connection) == 0  # nothing to send without the event's id

    with django_capture_on_commit_callbacks(execute=False) as wakes:
        deliver_event(connection)  # the event reaches Webmarketer: its waiting changes are released

    owed.refresh_from_db()
    assert owed.status == "pending" and len(wakes) >= 1
    assert dispatch_leads(connection) == 1
    owed.refresh_from_db()
    assert (owed.status, owed.vendor_ref) == ("delivered", "wm-event-1")
    assert route.call_count == 1


def test_the_sweep_releases_waiting_changes_too(connection, vendor, lead, sales, monkeypatch):
    woken = []
    monkeypatch.setattr("tracking.tasks.dispatch_lead_changes.delay", woken.append)
    qualify(lead, sales)
    # The event got its id by a path that did not release the change (e.g. a worker died in between).
    Delivery.objects.update(status="delivered", vendor_ref="wm-event-1")

    report = leads.lead_changes_sweep()

    assert (report["lead_released"], woken) == (1, [connection.pk])
    assert LeadDelivery.objects.get().status == "pending"


def test_a_change_fails_when_its_event_never_reaches_webmarketer(connection, vendor, lead, sales):
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(400, json={"statusCode": 400, "message": "bad event"}))
    change = qualify(lead, sales)
    deliver_event(connection)

    leads.lead_changes_sweep()

    owed = change.deliveries.get()
    assert owed.status == "failed"
    assert "did not reach wm (HTTP 400: bad event): replay the event, then retry this change" in owed.last_error


def test_undo_sends_zero(connection, vendor, lead, sales):
    deliver_event(connection)
    route = vendor.patch(state_url("qualified")).mock(return_value=httpx.Response(200))
    qualify(lead, sales)
    dispatch_leads(connection)

    undo = qualify(lead, sales, value=0, date=QUALIFIED_ON + timedelta(hours=2))
    dispatch_leads(connection)

    assert [json.loads(c.request.content)["value"] for c in route.calls] == [1, 0]
    assert undo.deliveries.get().status == "delivered"
    assert undo.value == Decimal("0.00")


def test_a_statistic_goes_as_a_number_with_its_date(connection, vendor, lead, sales):
    deliver_event(connection)
    route = vendor.patch(f"{PROJECT_URL}/wm-event-1/statistics/turnover").mock(return_value=httpx.Response(200))

    change = leads.lead_change_record(
        event=lead, kind="statistic", storage_key="turnover", value="4 000,50", date=CONVERTED_ON, user=sales
    )
    dispatch_leads(connection)

    assert change.value == Decimal("4000.50")
    assert json.loads(route.calls.last.request.content) == {"value": 4000.5, "date": "2024-05-09T17:00:00.000Z"}


def test_an_unknown_storage_key_fails_explained_and_can_be_retried(connection, vendor, lead, sales):
    deliver_event(connection)
    route = vendor.patch(state_url("converted")).mock(return_value=httpx.Response(404, json=MISSING_KEY))
    change = qualify(lead, sales, key="converted", date=CONVERTED_ON)

    dispatch_leads(connection)

    owed = change.deliveries.get()
    assert owed.status == "failed"
    assert owed.last_error.startswith("HTTP 404: No storageKey matching field in this eventType — ")
    assert 'Webmarketer has no state "converted"' in owed.last_error
    assert owed.attempt_set.get().response_status == 404

    # Webmarketer's team added the state for past events: the retry goes through.
    route.mock(return_value=httpx.Response(200))
    assert leads.lead_change_retry(change=change, user=sales) == 1
    owed.refresh_from_db()
    assert (owed.status, owed.attempts) == ("pending", 0)
    dispatch_leads(connection)
    owed.refresh_from_db()
    assert (owed.status, owed.last_error) == ("delivered", "")
    assert owed.attempt_set.count() == 2
    assert AuditEntry.objects.filter(action="lead.retry").count() == 1


def test_only_the_newest_change_of_a_key_can_be_retried(connection, vendor, lead, sales):
    deliver_event(connection)
    vendor.patch(state_url("converted")).mock(return_value=httpx.Response(404, json=MISSING_KEY))
    failed = qualify(lead, sales, key="converted")
    dispatch_leads(connection)

    newer = qualify(lead, sales, key="converted", value=0, date=QUALIFIED_ON + timedelta(hours=1))

    with pytest.raises(leads.LeadChangeError, match="newer change"):
        leads.lead_change_retry(change=failed, user=sales)
    # The older failure is moot now: superseded, its message kept.
    old = failed.deliveries.get()
    assert old.status == "superseded" and "No storageKey" in old.last_error
    assert newer.deliveries.get().status == "pending"
    with pytest.raises(leads.LeadChangeError, match="Nothing to retry"):
        leads.lead_change_retry(change=newer, user=sales)


def test_an_older_change_never_goes_after_a_newer_one(connection, vendor, lead, sales):
    route = vendor.patch(state_url("qualified")).mock(return_value=httpx.Response(200))
    first = qualify(lead, sales, value=1)
    second = qualify(lead, sales, value=0, date=QUALIFIED_ON + timedelta(minutes=5))
    third = qualify(lead, sales, value=1, date=QUALIFIED_ON + timedelta(minutes=10))
    deliver_event(connection)

    dispatch_leads(connection)

    assert [json.loads(c.request.content) for c in route.calls] == [{"value": 1, "date": "2024-05-02T10:40:00.000Z"}]
    statuses = [c.deliveries.get().status for c in (first, second, third)]
    assert statuses == ["superseded", "superseded", "delivered"]


def test_a_newer_change_waits_while_an_older_one_is_in_flight(connection, vendor, lead, sales):
    deliver_event(connection)
    route = vendor.patch(state_url("qualified")).mock(return_value=httpx.Response(200))
    older = qualify(lead, sales)
    (in_flight,) = leads.lead_deliveries_claim(connection_id=connection.pk, limit=10)  # a worker is sending it
    newer = qualify(lead, sales, value=0, date=QUALIFIED_ON + timedelta(minutes=5))

    assert leads.lead_deliveries_claim(connection_id=connection.pk, limit=10) == []  # one in flight per lane
    assert newer.deliveries.get().status == "pending"

    # The older one's answer comes back; then the newer one goes.
    leads._apply(
        connection, {in_flight.pk: in_flight}, [delivery_service.Sent((in_flight.pk,), leads.Result("delivered"))]
    )
    assert dispatch_leads(connection) == 1
    assert older.deliveries.get().status == "delivered"
    assert newer.deliveries.get().status == "delivered"
    assert json.loads(route.calls.last.request.content)["value"] == 0


def test_other_keys_of_the_same_lead_go_side_by_side(connection, vendor, lead, sales):
    deliver_event(connection)
    vendor.patch(state_url("qualified")).mock(return_value=httpx.Response(200))
    vendor.patch(state_url("converted")).mock(return_value=httpx.Response(200))
    qualify(lead, sales)
    qualify(lead, sales, key="converted", date=CONVERTED_ON)

    assert len(leads.lead_deliveries_claim(connection_id=connection.pk, limit=10)) == 2


def test_a_5xx_is_retried_with_backoff_and_a_401_refreshes_the_token_once(connection, vendor, lead, sales):
    deliver_event(connection)
    route = vendor.patch(state_url("qualified"))
    route.side_effect = [httpx.Response(503, json={"message": "down"})]
    change = qualify(lead, sales)

    dispatch_leads(connection)

    owed = change.deliveries.get()
    assert (owed.status, owed.last_error, owed.attempts) == ("retrying", "HTTP 503: down", 1)
    assert owed.next_attempt_at <= timezone.now() + timedelta(seconds=10)

    vendor.post(TOKEN_URL).mock(side_effect=[httpx.Response(200, json={"access_token": "tok-2", "expires_in": 3600})])
    route.side_effect = [httpx.Response(401, json={"statusCode": 401, "message": "Unauthorized"}), httpx.Response(200)]
    LeadDelivery.objects.update(next_attempt_at=timezone.now())
    dispatch_leads(connection)

    owed.refresh_from_db()
    assert owed.status == "delivered"
    assert [a.response_status for a in owed.attempt_set.order_by("id")] == [503, 401, 200]
    assert route.calls.last.request.headers["Authorization"] == "Bearer tok-2"


def test_it_gives_up_after_the_connection_window(connection, vendor, lead, sales):
    deliver_event(connection)
    vendor.patch(state_url("qualified")).mock(return_value=httpx.Response(500))
    change = qualify(lead, sales)
    LeadDelivery.objects.update(queued_at=timezone.now() - timedelta(hours=24))

    dispatch_leads(connection)

    owed = change.deliveries.get()
    assert owed.status == "failed" and owed.last_error.startswith("gave up after 1 attempts")


def test_the_sweep_takes_back_lead_deliveries_whose_worker_died(connection, vendor, lead, sales, monkeypatch):
    monkeypatch.setattr("tracking.tasks.dispatch_lead_changes.delay", lambda cid: None)
    deliver_event(connection)
    qualify(lead, sales)
    leads.lead_deliveries_claim(connection_id=connection.pk, limit=10)
    LeadDelivery.objects.update(claimed_at=timezone.now() - timedelta(hours=1))

    assert leads.lead_changes_sweep()["lead_recovered"] == 1
    owed = LeadDelivery.objects.get()
    assert owed.status == "retrying" and "worker sending it stopped" in owed.last_error


def test_a_disabled_connection_or_an_open_circuit_sends_nothing(connection, vendor, lead, sales):
    deliver_event(connection)
    qualify(lead, sales)
    connection.circuit_open_until = timezone.now() + timedelta(minutes=1)
    connection.save()

    assert dispatch_leads(connection) == 0
    assert LeadDelivery.objects.get().status == "pending"


def test_a_change_records_who_when_and_is_audited(connection, lead, sales):
    change = qualify(lead, sales)

    assert (change.user, change.kind, change.storage_key, change.value, change.date) == (
        sales,
        "state",
        "qualified",
        Decimal("1"),
        QUALIFIED_ON,
    )
    entry = AuditEntry.objects.get(action="lead.state")
    assert entry.user == sales and entry.details["storage_key"] == "qualified" and entry.details["value"] == "1.00"


def test_the_date_defaults_to_now(connection, lead, sales):
    before = timezone.now()
    change = leads.lead_change_record(event=lead, kind="state", storage_key="qualified", value=1, user=sales)
    assert before <= change.date <= timezone.now()


def test_an_event_not_routed_to_webmarketer_keeps_its_changes_here_only(lead, sales):
    Delivery.objects.all().delete()

    change = qualify(lead, sales)

    assert change.deliveries.count() == 0


@pytest.mark.parametrize(
    ("kind", "key", "value", "date", "message"),
    [
        ("state", "qualifed", 1, QUALIFIED_ON, "'qualifed' is not a state of the event type contact-form"),
        ("state", "turnover", 1, QUALIFIED_ON, "'turnover' is not a state"),
        ("statistic", "qualified", 10, QUALIFIED_ON, "'qualified' is not a statistic"),
        ("state", "qualified", 2, QUALIFIED_ON, "A state is set (1) or undone (0)"),
        ("statistic", "turnover", "-5", QUALIFIED_ON, "cannot be negative"),
        ("statistic", "turnover", "10.005", QUALIFIED_ON, "at most 2 decimals"),
        ("statistic", "turnover", "lots", QUALIFIED_ON, "'lots' is not an amount"),
        ("statistic", "turnover", "", QUALIFIED_ON, "Enter the turnover amount"),
        ("statistic", "turnover", "1e20", QUALIFIED_ON, "too large"),
        ("state", "qualified", 1, datetime(2024, 4, 30, tzinfo=UTC), "came in on 2024-05-01 09:00:00"),
        ("state", "qualified", 1, datetime.now(UTC) + timedelta(hours=1), "in the future"),
        ("state", "qualified", 1, datetime(2024, 5, 2), "needs a timezone"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_nothing_recorded(lead, sales, kind, key, value, date, message):
    with pytest.raises(leads.LeadChangeError) as refused:
        leads.lead_change_record(event=lead, kind=kind, storage_key=key, value=value, date=date, user=sales)

    assert message in str(refused.value)
    assert LeadChange.objects.count() == 0 and LeadDelivery.objects.count() == 0


def test_an_invalid_event_or_a_type_without_states_is_no_lead(sales):
    event_type_make(PURCHASE)
    source, _ = source_make()
    (invalid,) = events_ingest(source=source, items=[{"eventType": "purchase", "data": {"email": "nope"}}])

    assert not leads.is_lead(invalid.event)
    with pytest.raises(leads.LeadChangeError, match="invalid"):
        leads.lead_change_record(event=invalid.event, kind="state", storage_key="qualified", value=1, user=sales)


def test_lead_attempts_record_the_exchange_like_event_attempts(connection, vendor, lead, sales):
    deliver_event(connection)
    vendor.patch(state_url("qualified")).mock(return_value=httpx.Response(429, headers={"Retry-After": "120"}))
    qualify(lead, sales)

    dispatch_leads(connection)

    (attempt,) = LeadAttempt.objects.all()
    assert (attempt.outcome, attempt.response_status, attempt.error) == ("retry", 429, "HTTP 429: ")
    assert LeadDelivery.objects.get().next_attempt_at >= timezone.now() + timedelta(seconds=115)


# -- under takes-back, slow runs, fix-and-replay and a crowded sweep: an older value never reaches Webmarketer
# after a newer one, and a change always addresses the event the newest generation sent ----------------------
FIXED = {"email": "kate@example.com", "first_name": "Kate", "message": "Call me, fixed"}


def patched_values(route) -> list[int]:
    return [json.loads(c.request.content)["value"] for c in route.calls]


# -- a slow run is never overtaken ---------------------------------------------------------------------------
def test_a_row_taken_back_from_a_slow_run_is_not_sent_by_it_after_a_newer_value(
    connection, vendor, lead, sales, monkeypatch
):
    deliver_event(connection)
    route = vendor.patch(state_url("qualified")).mock(return_value=httpx.Response(200))
    qualify(lead, sales, value=1)
    claim = leads.lead_deliveries_claim

    def slow_claim(**kwargs):
        claimed = claim(**kwargs)  # worker A has "1" in hand, then is slow for more than HUB_STUCK_AFTER_SECONDS
        LeadDelivery.objects.update(claimed_at=timezone.now() - timedelta(seconds=301))
        monkeypatch.setattr("tracking.tasks.dispatch_lead_changes.delay", lambda cid: None)
        assert leads.lead_changes_sweep()["lead_recovered"] == 1
        qualify(lead, sales, value=0, date=QUALIFIED_ON + timedelta(hours=1))  # undo
        monkeypatch.setattr(leads, "lead_deliveries_claim", claim)
        assert dispatch_leads(connection) == 1  # worker B sends 0
        return claimed

    monkeypatch.setattr(leads, "lead_deliveries_claim", slow_claim)
    dispatch_leads(connection)  # worker A goes on with its "1"

    assert patched_values(route) == [0]  # Webmarketer ends undone, as the hub shows
    statuses = dict(LeadDelivery.objects.values_list("change__value", "status"))
    assert statuses == {1: "superseded", 0: "delivered"}


def test_a_row_of_a_lane_with_a_newer_change_is_superseded_instead_of_sent(connection, vendor, lead, sales):
    deliver_event(connection)
    route = vendor.patch(state_url("qualified")).mock(return_value=httpx.Response(200))
    qualify(lead, sales, value=1)
    (older,) = leads.lead_deliveries_claim(connection_id=connection.pk, limit=10)
    # A newer change exists (recorded by a path that left the row in flight, e.g. just after the check).
    newer = LeadChange.objects.create(
        event=lead, kind="state", storage_key="qualified", value=0, date=QUALIFIED_ON + timedelta(hours=1)
    )
    LeadDelivery.objects.create(
        change=newer, connection=connection, event=lead, kind="state", storage_key="qualified", status="pending"
    )

    assert leads._send_allowed(older) is False

    older.refresh_from_db()
    assert (older.status, older.claimed_at) == ("superseded", None)
    assert route.call_count == 0


def test_a_slow_run_stops_starting_patches_and_gives_the_rest_back(
    connection, vendor, lead, sales, settings, monkeypatch
):
    settings.HUB_STUCK_AFTER_SECONDS, settings.HUB_RUN_SHARE = 300, 0.5
    deliver_event(connection)
    clock = [0.0]
    monkeypatch.setattr(leads, "_clock", lambda: clock[0])

    def slow(request):
        clock[0] += 100  # each PATCH takes 100 s
        return httpx.Response(200)

    for key in ("qualified", "converted"):
        vendor.patch(state_url(key)).mock(side_effect=slow)
    turnover = vendor.patch(state_url("turnover").replace("/states/", "/statistics/")).mock(side_effect=slow)
    qualify(lead, sales, key="qualified")
    qualify(lead, sales, key="converted")
    leads.lead_change_record(event=lead, kind="statistic", storage_key="turnover", value="10", user=sales)

    assert dispatch_leads(connection) == 3

    # 0 s and 100 s: under 150 s, they go; at 200 s the run starts no more PATCH.
    statuses = list(LeadDelivery.objects.order_by("change_id").values_list("status", "claimed_at", "attempts"))
    assert statuses == [("delivered", None, 1), ("delivered", None, 1), ("pending", None, 0)]
    assert turnover.call_count == 0
    assert dispatch_leads(connection) == 1 and turnover.call_count == 1


# -- fix-and-replay: changes follow the fixed event -----------------------------------------------------------
def trashed_and_fixed(connection, lead, sales) -> Delivery:
    """The lead reached Webmarketer as wm-event-1, was trashed there, and staff fixed and replayed it."""
    first = deliver_event(connection)
    trashed = TrashedEvent.objects.create(
        wm_id=first.vendor_ref, connection=connection, event=lead, event_type_ref=lead.event_type_ref
    )
    return trash_replay(trashed=trashed, data=FIXED, user=sales)


def test_a_change_made_while_the_fixed_event_is_replayed_waits_for_its_new_id(connection, vendor, lead, sales):
    old = vendor.patch(state_url("qualified", "wm-event-1")).mock(return_value=httpx.Response(200))
    new = vendor.patch(state_url("qualified", "wm-event-2")).mock(return_value=httpx.Response(200))
    fixed = trashed_and_fixed(connection, lead, sales)

    change = qualify(lead, sales)

    assert change.deliveries.get().status == "waiting"
    assert dispatch_leads(connection) == 0
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(200, json="wm-event-2"))
    delivery_service.connection_dispatch(connection_id=connection.pk)  # the fixed event gets its own id
    fixed.refresh_from_db()
    assert (fixed.status, fixed.vendor_ref) == ("delivered", "wm-event-2")

    assert dispatch_leads(connection) == 1
    assert (old.call_count, new.call_count) == (0, 1)
    assert change.deliveries.get().vendor_ref == "wm-event-2"


def test_a_change_claimed_before_the_fix_was_replayed_is_not_sent_to_the_trashed_event(connection, vendor, lead, sales):
    old = vendor.patch(state_url("qualified", "wm-event-1")).mock(return_value=httpx.Response(200))
    deliver_event(connection)
    change = qualify(lead, sales)
    (in_hand,) = leads.lead_deliveries_claim(connection_id=connection.pk, limit=10)
    trashed = TrashedEvent.objects.create(
        wm_id="wm-event-1", connection=connection, event=lead, event_type_ref=lead.event_type_ref
    )
    trash_replay(trashed=trashed, data=FIXED, user=sales)

    assert leads._send_allowed(in_hand) is False

    assert change.deliveries.get().status == "waiting" and old.call_count == 0


def test_a_plain_replay_after_a_fix_keeps_the_fixed_events_nonce_and_changes_follow_it(connection, vendor, lead, sales):
    vendor.patch(state_url("qualified", "wm-event-2")).mock(return_value=httpx.Response(200))
    fixed = trashed_and_fixed(connection, lead, sales)
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(200, json="wm-event-2"))
    delivery_service.connection_dispatch(connection_id=connection.pk)

    (again,) = event_replay(event=lead, user=sales, include_delivered=True)  # delivered: sent again on purpose

    assert again.generation == 2 and again.nonce == fixed.nonce != lead.vendor_nonce
    delivery_service.connection_dispatch(connection_id=connection.pk)  # Webmarketer dedups: the same id
    change = qualify(lead, sales)
    dispatch_leads(connection)
    assert change.deliveries.get().vendor_ref == "wm-event-2"
    posted = [json.loads(c.request.content) for c in vendor.calls if c.request.url == EVENTS_URL]
    assert [p["nonce"] for p in posted] == [lead.vendor_nonce, fixed.nonce, fixed.nonce]


# -- the sweep looks at the rows that can move ------------------------------------------------------------------
def test_waiting_rows_of_a_disabled_connection_never_crowd_out_a_missed_release(
    connection, vendor, lead, sales, monkeypatch
):
    monkeypatch.setattr(leads, "WAITING_PER_SWEEP", 3)
    woken = []
    monkeypatch.setattr("tracking.tasks.dispatch_lead_changes.delay", woken.append)
    disabled = webmarketer_connection_make(name="wm-off", enabled=False)
    for i in range(4):  # the oldest waiting rows: on a connection nobody sends to
        change = LeadChange.objects.create(
            event=lead, kind="state", storage_key="converted", value=i % 2, date=QUALIFIED_ON
        )
        LeadDelivery.objects.create(
            change=change, connection=disabled, event=lead, kind="state", storage_key="converted", status="waiting"
        )
    change = qualify(lead, sales)
    # The event got its id, but the release ran before that transaction committed: it found nothing.
    Delivery.objects.update(status="delivered", vendor_ref="wm-event-1")

    report = leads.lead_changes_sweep()

    assert change.deliveries.get().status == "pending"
    assert report["lead_released"] == 1 and woken == [connection.pk]
    assert LeadDelivery.objects.filter(connection=disabled, status="waiting").count() == 4


def test_the_sweep_pages_through_every_row_that_can_move(connection, vendor, lead, sales, monkeypatch):
    monkeypatch.setattr("tracking.tasks.dispatch_lead_changes.delay", lambda cid: None)
    for key in ("qualified", "converted"):
        qualify(lead, sales, key=key)
    leads.lead_change_record(event=lead, kind="statistic", storage_key="turnover", value="5", user=sales)
    Delivery.objects.update(status="delivered", vendor_ref="wm-event-1")

    assert leads.waiting_release_all(page=2) == 3
    assert set(LeadDelivery.objects.values_list("status", flat=True)) == {"pending"}


def test_the_sweep_leaves_rows_whose_event_is_still_on_its_way_and_fails_those_it_never_reaches(
    connection, vendor, lead, sales
):
    change = qualify(lead, sales)

    assert leads.waiting_release_all() == 0
    assert change.deliveries.get().status == "waiting"

    Delivery.objects.update(status="failed", last_error="HTTP 400: bad event")
    leads.waiting_release_all()
    owed = change.deliveries.get()
    assert owed.status == "failed" and "HTTP 400: bad event" in owed.last_error
