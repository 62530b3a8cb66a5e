"""Trash inbox: list (newest first, filters, errors in words), pull, fix and replay, dismiss, bulk dismiss.

Trashed events come from the real sandbox: our events are delivered to it and it trashes those that break
its version of the event type."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import (
    events_deliver,
    sandbox_connection_make,
    sandbox_webmarketer_api,
    user_make,
    webmarketer_connection_make,
)
from tracking.models import AuditEntry, Delivery, Event, EventType, TrashedEvent
from tracking.services import delivery as delivery_service
from tracking.services.webmarketer import event_types_pull, trash_pull

pytestmark = pytest.mark.django_db

FLAGS = {"discriminant": False, "isPii": False, "isMostProbableLocation": False, "optional": False}
PHONE = {**FLAGS, "type": "phone", "entity": "user", "storageKey": "phone", "ingestionKey": "phone", "isPii": True}
EMAIL = {**FLAGS, "type": "email", "entity": "user", "storageKey": "email", "ingestionKey": "email", "optional": True}
LOCATION = {**FLAGS, "type": "location", "entity": "user", "storageKey": "location", "ingestionKey": "location"}
LOCATION |= {"optional": True, "isMostProbableLocation": True}
SEED_PHONE_ERROR = {"type": "invalid-field", "field": {**PHONE, "discriminant": True}, "value": "0613"}


@pytest.fixture
def wm(sandbox, sandbox_url):
    """call-me-back on both sides (pulled from the sandbox), phones parsed as French."""
    connection = sandbox_connection_make(sandbox_url)
    with sandbox_webmarketer_api(sandbox_url, connection) as api:
        body = {"reference": "call-me-back", "name": "Call me back", "fields": [PHONE, EMAIL, LOCATION]}
        api.post("event-types", json=body | {"phoneParsingConfig": [{"order": 1, "countryCode": "FR"}]})
        event_types_pull(connection=connection)
        yield connection, api


def deliver(connection, datas: list[dict]) -> list[Event]:
    """Our events sent to the sandbox through the delivery pipeline (set up directly: an earlier, looser
    check let them in)."""
    event_type = EventType.objects.get(reference="call-me-back")
    return events_deliver(connection, event_type, datas, nonce_prefix=f"nonce-{timezone.now().timestamp()}")


def trashed_make(connection, n: int = 1, **options) -> list[TrashedEvent]:
    """Trash items as a pull stores them, for the list's own tests."""
    now = timezone.now()
    return [
        TrashedEvent.objects.create(
            wm_id=f"wm-{i}-{options.get('event_type_ref', 'x')}",
            connection=connection,
            event_type_ref=options.get("event_type_ref", "call-me-back"),
            errors=options.get("errors", [SEED_PHONE_ERROR]),
            processing_date=now - timedelta(minutes=n - i),
            resolved=options.get("resolved", False),
        )
        for i in range(n)
    ]


@pytest.fixture
def marketing(client):
    client.force_login(user_make("Marketing"))
    return client


# -- permissions -------------------------------------------------------------------------------------------
def test_anonymous_and_sales_users_cannot_open_the_inbox(client):
    assert client.get("/trash/").url.startswith("/login/")
    client.force_login(user_make("Sales"))
    assert client.get("/trash/").status_code == 403


def test_auditors_read_the_inbox_but_act_on_nothing(client):
    connection = webmarketer_connection_make()
    (item,) = trashed_make(connection)
    client.force_login(user_make("Auditor"))

    listing = client.get("/trash/").content.decode()
    detail = client.get(f"/trash/{item.pk}/").content.decode()

    assert "phone: &#x27;0613&#x27; is not a valid phone number" in listing
    assert 'name="ids"' not in listing and ">Pull now</button>" not in listing and "Dismiss selected" not in listing
    assert "Fix and replay" not in detail and ">Dismiss</button>" not in detail
    assert client.post(f"/trash/pull/{connection.pk}").status_code == 403
    assert client.post("/trash/dismiss", {"ids": [item.pk]}).status_code == 403
    assert client.post(f"/trash/{item.pk}/dismiss").status_code == 403
    assert client.post(f"/trash/{item.pk}/replay").status_code == 403
    item.refresh_from_db()
    assert not item.resolved


# -- the list ----------------------------------------------------------------------------------------------
def test_open_items_are_listed_newest_first_with_their_errors_in_words(marketing):
    connection = webmarketer_connection_make()
    older, newer = trashed_make(connection, 2)
    location = {
        "type": "invalid-field",
        "field": LOCATION,
        "value": {"zipcode": "wd", "country": "wd"},
    }
    TrashedEvent.objects.filter(pk=older.pk).update(errors=[location])
    trashed_make(connection, 1, event_type_ref="done", resolved=True)

    response = marketing.get("/trash/")

    assert [t.pk for t in response.context["page"]] == [newer.pk, older.pk]
    html = response.content.decode()
    assert (
        "location: {&quot;country&quot;: &quot;wd&quot;, &quot;zipcode&quot;: &quot;wd&quot;} is not a valid location"
        in html
    )
    assert "not one of ours" in html


def test_the_inbox_filters_by_state_event_type_and_connection(marketing):
    one, other = webmarketer_connection_make(name="one"), webmarketer_connection_make(name="other")
    trashed_make(one, 2, event_type_ref="call-me-back")
    trashed_make(other, 1, event_type_ref="contact-form")
    trashed_make(one, 1, event_type_ref="newsletter", resolved=True)

    def refs(**params):
        page = marketing.get("/trash/", params, headers={"HX-Request": "true", "HX-Target": "trash-table"})
        return sorted(t.event_type_ref for t in page.context["page"])

    assert refs() == ["call-me-back", "call-me-back", "contact-form"]
    assert refs(state="resolved") == ["newsletter"]
    assert refs(state="all", connection=str(one.pk)) == ["call-me-back", "call-me-back", "newsletter"]
    assert refs(event_type="contact-form") == ["contact-form"]


def test_the_inbox_pages_through_many_items(marketing):
    trashed_make(webmarketer_connection_make(), 55)

    first, second = marketing.get("/trash/"), marketing.get("/trash/", {"page": 2})

    assert len(first.context["page"]) == 50 and "Page 1 of 2 (55 items)" in first.content.decode()
    assert len(second.context["page"]) == 5


def test_pull_now_stores_the_trash_and_links_our_events(marketing, wm):
    connection, _ = wm
    bad, good = deliver(connection, [{"phone": "0613"}, {"phone": "+33612345678"}])

    response = marketing.post(f"/trash/pull/{connection.pk}", follow=True)

    html = response.content.decode()
    assert "Pulled the trash of wm: 1 listed, 1 new, 1 linked to our events." in html
    (item,) = response.context["page"]
    assert item.event == bad and f'href="/events/{bad.uuid}/"' in html
    assert "phone: &#x27;0613&#x27; is not a valid phone number" in html


# -- fix and replay ----------------------------------------------------------------------------------------
def test_the_fix_form_is_prefilled_from_our_event_and_marks_the_refused_fields(marketing, wm):
    connection, _ = wm
    deliver(connection, [{"phone": "0613", "email": "kate@example.com", "source": "landing"}])
    trash_pull(connection=connection)
    item = TrashedEvent.objects.get()

    response = marketing.get(f"/trash/{item.pk}/")

    form = response.context["form"]
    rows = {r["key"]: r for r in form.fix_rows()}
    assert [r["key"] for r in form.rows] == ["phone", "email", "location"]
    assert rows["phone"]["in_error"] and not rows["email"]["in_error"]
    assert rows["phone"]["inputs"][0].value() == "0613" and rows["email"]["inputs"][0].value() == "kate@example.com"
    assert [i.name for i in rows["location"]["inputs"]] == ["f2_zipcode", "f2_country"]
    assert form.extra_data == {"source": "landing"}
    assert "phone: &#x27;0613&#x27; is not a valid phone number" in response.content.decode()


def test_a_fix_that_still_breaks_the_type_is_refused_next_to_the_field(marketing, wm):
    connection, _ = wm
    (event,) = deliver(connection, [{"phone": "0613"}])
    trash_pull(connection=connection)
    item = TrashedEvent.objects.get()

    response = marketing.post(
        f"/trash/{item.pk}/replay",
        {"f0": "0614", "f2_zipcode": "33000"},
        headers={"HX-Request": "true", "HX-Target": "trash-fix"},
    )

    form = response.context["form"]
    assert response.status_code == 200 and b"<html" not in response.content
    assert form.errors["f0"] == ["phone: is not a valid phone number (tried: FR)"]
    assert form.errors["f2_zipcode"] == ["location: needs country as text"]
    assert 'value="0614"' in response.content.decode()  # what was typed stays
    event.refresh_from_db()
    assert event.data == {"phone": "0613"} and Delivery.objects.count() == 1 and not TrashedEvent.objects.get().resolved


def test_the_fix_is_replayed_with_a_new_nonce_and_delivered(marketing, wm, sandbox):
    connection, _ = wm
    (event,) = deliver(connection, [{"phone": "0613", "email": "kate@example.com"}])
    trash_pull(connection=connection)
    item = TrashedEvent.objects.get()

    response = marketing.post(
        f"/trash/{item.pk}/replay",
        {"f0": "06 12 34 56 78", "f1": "kate@example.com", "f2_zipcode": "33000", "f2_country": "FR", "note": "typo"},
        headers={"HX-Request": "true"},
    )

    replay = Delivery.objects.get(generation=1)
    assert response.headers["HX-Redirect"] == f"/events/{event.uuid}/#delivery-{replay.pk}"
    event.refresh_from_db()
    assert event.data == {
        "phone": "06 12 34 56 78",
        "email": "kate@example.com",
        "location": {"zipcode": "33000", "country": "FR"},
    }
    assert replay.nonce not in (event.nonce, "") and replay.status == "pending"
    item.refresh_from_db()
    assert item.resolved and item.resolution == "replayed" and item.resolution_note == "typo"
    audit = AuditEntry.objects.get(action="trash.replay")
    assert (
        audit.details["before"] == {"phone": "0613", "email": "kate@example.com"}
        and audit.details["nonce"] == replay.nonce
    )
    detail = marketing.get(f"/events/{event.uuid}/").content.decode()
    assert f"Fixed and replayed: delivery #{replay.pk} to wm with the new nonce {replay.nonce}" in detail

    delivery_service.connection_dispatch(connection_id=connection.pk)

    replay.refresh_from_db()
    assert replay.status == "delivered"
    received = {e["nonce"]: e for e in sandbox.get("/__sandbox__/webmarketer/events").json()["data"]}
    assert received[replay.nonce]["data"]["phone"] == "06 12 34 56 78"
    assert trash_pull(connection=connection).stored == 0  # the fixed event went through


def test_the_fix_is_checked_against_webmarketers_definition_of_the_refused_field(marketing, wm):
    """Webmarketer made the phone required after our last sync: our mirror still says optional."""
    connection, api = wm
    EventType.objects.filter(reference="call-me-back").update(fields=[{**PHONE, "optional": True}, EMAIL])
    (event,) = deliver(connection, [{"email": "kate@example.com"}])
    trash_pull(connection=connection)
    item = TrashedEvent.objects.get()
    assert "phone: required but missing (expected a valid phone number)" in marketing.get("/trash/").content.decode()

    refused = marketing.post(f"/trash/{item.pk}/replay", {"f1": "kate@example.com"})
    assert refused.context["form"].errors["f0"] == ["phone: is required"]

    marketing.post(f"/trash/{item.pk}/replay", {"f0": "+33612345678", "f1": "kate@example.com"})
    event.refresh_from_db()
    assert event.data == {"phone": "+33612345678", "email": "kate@example.com"}


def test_an_item_that_is_not_ours_cannot_be_fixed_only_dismissed(marketing):
    (item,) = trashed_make(webmarketer_connection_make())

    detail = marketing.get(f"/trash/{item.pk}/").content.decode()
    replay = marketing.post(f"/trash/{item.pk}/replay", {"f0": "+33612345678"}, follow=True).content.decode()

    assert "none of our deliveries has this id" in detail and "Fix and replay" not in detail
    assert "cannot be fixed here" in replay


# -- dismiss -----------------------------------------------------------------------------------------------
def test_dismissing_one_item_keeps_the_note(marketing):
    (item,) = trashed_make(webmarketer_connection_make())

    response = marketing.post(f"/trash/{item.pk}/dismiss", {"note": "test traffic"}, follow=True)

    item.refresh_from_db()
    assert (item.resolved, item.resolution, item.resolution_note) == (True, "dismissed", "test traffic")
    assert item.resolved_by.username == "marketing" and f"Dismissed {item.wm_id}." in response.content.decode()
    assert AuditEntry.objects.get(action="trash.dismiss").details["note"] == "test traffic"


def test_bulk_dismiss_resolves_the_selected_rows_and_swaps_the_table(marketing):
    connection = webmarketer_connection_make()
    first, second, third = trashed_make(connection, 3)

    response = marketing.post(
        "/trash/dismiss",
        {"ids": [first.pk, third.pk], "note": "load test", "state": "open"},
        headers={"HX-Request": "true", "HX-Target": "trash-table"},
    )

    html = response.content.decode()
    assert b"<html" not in response.content and 'hx-swap-oob="true"' in html
    assert "2 trashed events dismissed." in html
    assert [t.pk for t in response.context["page"]] == [second.pk]
    assert set(TrashedEvent.objects.filter(resolved=True).values_list("pk", "resolution_note")) == {
        (first.pk, "load test"),
        (third.pk, "load test"),
    }


def test_bulk_dismiss_without_a_selection_says_so(marketing):
    trashed_make(webmarketer_connection_make())

    html = marketing.post("/trash/dismiss", {"note": "x"}, follow=True).content.decode()

    assert "Select the rows to dismiss first." in html and not TrashedEvent.objects.filter(resolved=True).exists()


def test_a_failed_pull_is_explained(marketing, sandbox, sandbox_url):
    connection = sandbox_connection_make(sandbox_url)
    sandbox.post("/__sandbox__/faults", json={"fail_status": 503}).raise_for_status()

    html = marketing.post(f"/trash/pull/{connection.pk}", follow=True).content.decode()

    assert "Pulling the trash of wm failed: " in html and "HTTP 503: injected permanent failure" in html
