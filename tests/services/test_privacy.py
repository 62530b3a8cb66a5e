"""Consent at ingest, claim and replay; withdrawal; retention; erasure (leaving no trace in a database dump)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import respx
from django.db import connection as db_connection
from django.test import override_settings
from django.utils import timezone

from tests.factories import (
    PURCHASE,
    event_type_make,
    user_make,
    vendor_connection_make,
    webmarketer_connection_make,
)
from tracking.models import (
    Attempt,
    AuditEntry,
    BulkReplay,
    Delivery,
    Event,
    HourlyCount,
    LeadChange,
    OfflineInteraction,
    Route,
    Source,
    TrashedEvent,
)
from tracking.services import bulk_replay
from tracking.services.delivery import connection_dispatch
from tracking.services.ingest import events_ingest, source_create
from tracking.services.privacy import (
    Person,
    PersonError,
    consent_update,
    erasure_plan,
    person_erase,
    retention_days,
    retention_redact,
)
from tracking.services.replay import event_replay
from tracking.services.routes import route_create

pytestmark = pytest.mark.django_db

EMAIL = "kate.austen@example.com"


@pytest.fixture(autouse=True)
def no_queue(monkeypatch):
    monkeypatch.setattr("tracking.tasks.dispatch_connection.delay", lambda pk: None)
    monkeypatch.setattr("tracking.tasks.bulk_replay_task.delay", lambda pk: None)


@pytest.fixture
def routes():
    """purchase → Tracify (advertising) and Algonomy (personalisation), with the vendor kinds' default purposes."""
    purchase = event_type_make(PURCHASE)
    tracify = route_create(
        event_type=purchase, connection=vendor_connection_make("tracify"), vendor_event_name="purchase"
    )
    algonomy = route_create(
        event_type=purchase,
        connection=vendor_connection_make("algonomy"),
        vendor_event_name="eventHomePage",
        mapping={"customer.email": "data.email"},
    )
    return tracify, algonomy


def purchase(nonce: str = "o-1", email: str = EMAIL, **envelope) -> dict:
    data = {"email": email, "amount": 10, "currency": "EUR", "order_id": nonce, "ip": "203.0.113.7"}
    return {"eventType": "purchase", "nonce": nonce, "data": data, **envelope}


def statuses(event: Event) -> dict[str, tuple[str, str]]:
    return {d.connection.kind: (d.status, d.last_error) for d in event.deliveries.select_related("connection")}


def test_new_routes_take_their_vendor_kinds_purposes(routes):
    assert [r.purposes for r in routes] == [["advertising"], ["personalisation"]]


def test_an_event_without_advertising_consent_goes_to_algonomy_only_and_is_suppressed_for_tracify(routes):
    source, _ = source_create(name="shop")

    (result,) = events_ingest(source=source, items=[purchase(consent=["personalisation"])])

    event = result.event
    assert (event.consent, event.consent_origin) == (["personalisation"], "event")
    assert statuses(event) == {
        "tracify": ("suppressed", "suppressed: no consent for advertising"),
        "algonomy": ("pending", ""),
    }
    # Counted at once on the dashboard, as a final status.
    counted = HourlyCount.objects.filter(metric="delivery", status="suppressed", period="h")
    assert [(c.connection_id, c.count) for c in counted] == [(routes[0].connection_id, 1)]


def test_without_personalisation_consent_algonomy_is_suppressed_too(routes):
    source, _ = source_create(name="shop")

    (result,) = events_ingest(source=source, items=[purchase(consent={"analytics": True, "advertising": False})])

    assert statuses(result.event) == {
        "tracify": ("suppressed", "suppressed: no consent for advertising"),
        "algonomy": ("suppressed", "suppressed: no consent for personalisation"),
    }


def test_an_event_without_consent_takes_its_sources_default_deny_all_for_a_new_source(routes):
    deny, _ = source_create(name="new-shop")
    allow, _ = source_create(name="old-shop", default_consent=["analytics", "advertising", "personalisation"])

    (denied,) = events_ingest(source=deny, items=[purchase("o-1")])
    (allowed,) = events_ingest(source=allow, items=[purchase("o-2")])

    assert (denied.event.consent, denied.event.consent_origin) == ([], "source")
    assert {s for s, _ in statuses(denied.event).values()} == {"suppressed"}
    assert {s for s, _ in statuses(allowed.event).values()} == {"pending"}


def test_unreadable_consent_keeps_the_event_as_invalid_with_the_reason(routes):
    source, _ = source_create(name="shop")

    (result,) = events_ingest(source=source, items=[purchase(consent=["tracking"])])

    assert result.event.status == "invalid"
    assert [e["field"] for e in result.event.errors] == ["consent"]
    assert "unknown purpose 'tracking'" in result.event.errors[0]["message"]
    assert not result.event.deliveries.exists()


def test_a_withdrawal_suppresses_the_pending_and_retrying_deliveries_it_no_longer_allows(routes):
    source, _ = source_create(name="shop", default_consent=["advertising", "personalisation"])
    events_ingest(source=source, items=[purchase("o-1", trackerId="trk-1"), purchase("o-2", trackerId="trk-2")])
    Delivery.objects.filter(event__nonce="o-1", connection__kind="tracify").update(status="retrying", attempts=2)
    marketing = user_make("Marketing")

    result = consent_update(person=Person.of(tracker_id="trk-1"), purposes=["personalisation"], user=marketing)

    assert (result.events, result.suppressed) == (1, 1)
    first = Event.objects.get(nonce="o-1")
    assert (first.consent, first.consent_origin) == (["personalisation"], "update")
    assert statuses(first) == {
        "tracify": ("suppressed", "suppressed: no consent for advertising"),
        "algonomy": ("pending", ""),
    }
    assert {s for s, _ in statuses(Event.objects.get(nonce="o-2")).values()} == {"pending"}  # someone else
    entry = AuditEntry.objects.get(action="consent.update")
    assert entry.user == marketing and "trk-1" not in str(entry.details) + entry.target
    assert entry.details["suppressed"] == 1


def test_a_claimed_delivery_whose_consent_was_withdrawn_meanwhile_is_suppressed_not_sent(routes):
    source, _ = source_create(name="shop", default_consent=["advertising", "personalisation"])
    (result,) = events_ingest(source=source, items=[purchase()])
    # Consent changed behind the service's back (a race with consent_update): the claim checks again.
    Event.objects.filter(pk=result.event.pk).update(consent=["personalisation"])

    with respx.mock(assert_all_mocked=True) as mock:  # any request would fail the test
        claimed = connection_dispatch(connection_id=routes[0].connection_id)

    assert claimed == 1 and not mock.calls
    assert statuses(result.event)["tracify"] == ("suppressed", "suppressed: no consent for advertising")
    assert not Attempt.objects.exists()


def test_a_replay_respects_consent_as_it_stands_now(routes):
    source, _ = source_create(name="shop", default_consent=["advertising", "personalisation"])
    (result,) = events_ingest(source=source, items=[purchase(email="a@b.co")])
    Delivery.objects.update(status="failed")
    consent_update(person=Person.of(email="a@b.co"), purposes=["personalisation"])

    created = event_replay(event=result.event)

    assert [d.connection.kind for d in created] == ["algonomy"]
    entry = AuditEntry.objects.get(action="event.replay")
    assert entry.details["not_replayed"] == ["tracify: not replayed, no consent for advertising"]


def test_a_bulk_replay_skips_suppressed_deliveries_and_says_how_many(routes):
    source, _ = source_create(name="shop")
    events_ingest(source=source, items=[purchase(f"o-{i}", consent=["personalisation"]) for i in range(3)])
    Delivery.objects.filter(connection__kind="algonomy").update(status="failed")
    marketing = user_make("Marketing")

    job = bulk_replay.bulk_replay_create(user=marketing, criteria={"filters": {}}, description="all")
    bulk_replay.bulk_replay_run(job_id=job.pk)

    job = BulkReplay.objects.get(pk=job.pk)
    assert (job.status, job.total, job.done, job.suppressed) == ("done", 3, 3, 3)
    assert not Delivery.objects.filter(connection__kind="tracify", generation__gt=0).exists()
    finish = AuditEntry.objects.get(action="bulk_replay.finish")
    assert finish.details["suppressed_skipped"] == 3


def test_retention_follows_the_event_types_expiration_policy_then_the_hub_default(routes):
    source, _ = source_create(name="shop", default_consent=["advertising", "personalisation"])
    events_ingest(source=source, items=[purchase("old", trackerId="t-old"), purchase("new")])
    Event.objects.filter(nonce="old").update(received_at=timezone.now() - timedelta(days=40))
    Route.objects.update()  # routes untouched
    purchase_type = routes[0].event_type
    purchase_type.expiration_policy = {"from": "event-type", "retentionDurationInDays": 30}
    purchase_type.save()

    redacted = retention_redact(batch=1)

    assert redacted["events"] == 1
    old, new = Event.objects.get(nonce="old"), Event.objects.get(nonce="new")
    assert (old.data, old.tracker_id, old.redacted_at is not None) == ({}, "", True)
    assert new.data["email"] == EMAIL and new.redacted_at is None
    assert old.deliveries.count() == 2  # counts and statuses stay
    assert retention_redact()["events"] == 0  # nothing twice


def test_retention_days_read_webmarketers_policy_and_fall_back_to_the_setting():
    assert retention_days({"from": "event-type", "retentionDurationInDays": 365}) == 365
    assert retention_days(None) is None
    with override_settings(HUB_RETENTION_DAYS=90):
        assert retention_days({"from": "project", "retentionDurationInDays": 365}) == 90
        assert retention_days(None) == 90


def test_a_person_is_named_by_one_email_or_one_tracker_id():
    for kwargs in ({}, {"email": "a@b.co", "tracker_id": "t"}, {"email": "nope"}):
        with pytest.raises(PersonError):
            Person.of(**kwargs)


def _dump() -> str:
    """Every row of every table, as text: what a database dump holds."""
    lines = []
    with db_connection.cursor() as cursor:
        for table in db_connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {db_connection.ops.quote_name(table)}")  # noqa: S608 (table names)
            lines += [repr(row) for row in cursor.fetchall()]
    return "\n".join(lines)


@pytest.fixture
def delivered_person(routes, fresh_sessions):
    """Kate's purchase delivered to Algonomy (attempt recorded), suppressed for Tracify; a lead change on a contact
    form she sent; an offline interaction and a trashed event naming her; someone else's event beside them."""
    source, _ = source_create(name="shop", default_consent=["personalisation"])
    events_ingest(source=source, items=[purchase("o-1"), purchase("o-2", email="other@example.com")])
    algonomy = routes[1].connection
    with respx.mock() as mock:
        mock.post("https://rcdp-us.algonomy.com/oauth/token").mock(
            return_value=httpx.Response(200, json={"access_token": "t0k3n", "expires_in": 3600})
        )
        # The answer echoes the request: a vendor's answer may quote the person's data too.
        mock.post(url__startswith="https://sandbox.algonomy.com/").mock(
            side_effect=lambda request: httpx.Response(202, content=request.content)
        )
        connection_dispatch(connection_id=algonomy.pk)
    wm = webmarketer_connection_make()
    form = event_type_make()
    (lead,) = events_ingest(
        source=source, items=[{"eventType": "contact-form", "data": {"email": EMAIL.upper(), "message": "hi"}}]
    )
    LeadChange.objects.create(event=lead.event, kind="state", storage_key="qualified", value=1, date=timezone.now())
    OfflineInteraction.objects.create(
        connection=wm, date=timezone.now(), user_data={"email": EMAIL}, node_data={"x": 1}, status="sent"
    )
    TrashedEvent.objects.create(
        wm_id="wm-1", connection=wm, event_type_ref=form.reference, raw={"data": {"email": EMAIL}},
        errors=[{"type": "missing-field", "field": "phone", "value": EMAIL}],
    )  # fmt: skip
    return algonomy


def test_the_erasure_plan_counts_what_it_will_erase_and_names_the_vendors_to_ask(delivered_person):
    plan = erasure_plan(person=Person.of(email=EMAIL))

    counts = plan.as_dict()
    assert counts["events"] == 2 and counts["attempts"] == 1
    assert (counts["leads"], counts["lead_changes"]) == (1, 1)
    assert (counts["offline_interactions"], counts["trashed_events"]) == (1, 1)
    assert counts["vendors_received"] == ["algonomy", "wm"]
    assert plan.vendor_lines() == [
        "algonomy (Algonomy rCDP): no deletion API in its document: ask them to erase it",
        "wm (Webmarketer): no deletion API in its document: ask them to erase it",
    ]


def test_erasure_by_email_leaves_no_trace_of_it_in_any_table(delivered_person):
    assert EMAIL in _dump().lower()
    marketing = user_make("Marketing")

    plan = person_erase(person=Person.of(email=EMAIL), user=marketing)

    dump = _dump().lower()
    assert EMAIL not in dump
    assert "other@example.com" in dump  # someone else's data stays
    assert len(plan.event_ids) == 2
    # Rows, statuses and counts stay.
    assert Event.objects.count() == 3 and Delivery.objects.filter(status="delivered").count() == 2
    assert Event.objects.filter(redacted_at__isnull=False).count() == 2
    (entry,) = AuditEntry.objects.filter(action="person.erase")
    assert entry.user == marketing and entry.details["events"] == 2 and entry.details["by"] == "email"
    assert Source.objects.count() == 1
