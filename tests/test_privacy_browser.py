"""The console's consent and privacy parts in a real browser (Playwright, Debian's Chromium): a new source's default
consent (deny-all preselected), a route's purposes and what its vendor receives, a consent update and an erasure."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import console_login, htmx_idle
from tests.factories import PURCHASE, event_type_make, user_make, vendor_connection_make
from tracking.models import AuditEntry, Delivery, Event, Route, Source
from tracking.services.ingest import events_ingest, source_create
from tracking.services.routes import route_create

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def no_queue(monkeypatch):
    monkeypatch.setattr("tracking.tasks.dispatch_connection.delay", lambda pk: None)


def test_a_new_source_asks_its_default_consent_deny_all_preselected_and_its_page_says_which_applies(
    page, transactional_db
):
    user_make("Marketing", password="pw-m")
    console_login(page, "marketing", "pw-m")

    page.get_by_role("link", name="Sources", exact=True).click()
    page.click("#source-new")
    expect(page.locator("input[name=default][value=deny]")).to_be_checked()
    page.fill("#id_name", "crm")
    page.click("#source-create")

    expect(page.locator("#source-token pre")).to_contain_text("hub_")
    expect(page.locator("#source-applies")).to_contain_text("nothing (deny-all)")
    assert Source.objects.get(name="crm").default_consent == []
    page.check("input[name=default][value=custom]")
    page.check("input[name=purposes][value=analytics]")
    page.click("#source-save")
    expect(page.locator("#source-applies")).to_contain_text("analytics")
    assert Source.objects.get(name="crm").default_consent == ["analytics"]
    assert list(AuditEntry.objects.order_by("pk").values_list("action", flat=True)) == [
        "source.create",
        "source.consent",
    ]


def test_a_new_route_ticks_its_vendors_purposes_and_says_what_the_vendor_receives(page, transactional_db):
    user_make("Marketing", password="pw-m")
    event_type_make(PURCHASE)
    vendor_connection_make("tracify")
    vendor_connection_make("algonomy")
    console_login(page, "marketing", "pw-m")

    page.goto("/routes/new/")
    page.select_option("#id_event_type", label="purchase")
    page.select_option("#id_connection", label="tracify (Tracify)")
    expect(page.locator("#route-purposes input[value=advertising]")).to_be_checked()
    expect(page.locator("#route-purposes input[value=personalisation]")).not_to_be_checked()
    expect(page.locator("#route-receives")).to_contain_text("hashed")
    expect(page.locator("#route-receives")).to_contain_text("data.email")

    page.select_option("#id_connection", label="algonomy (Algonomy rCDP)")
    htmx_idle(page)
    expect(page.locator("#route-purposes input[value=personalisation]")).to_be_checked()
    expect(page.locator("#route-purposes input[value=advertising]")).not_to_be_checked()
    expect(page.locator("#route-receives")).to_contain_text("no field of the event")
    page.select_option("#id_vendor_event_name", "eventLogout")
    htmx_idle(page)
    page.click("#add-row")
    row = page.locator("#mapping-rows tr").nth(0)
    row.locator("input[name=map_attr]").fill("customer.email")
    row.locator("input[name=map_path]").fill("data.email")
    page.check("#id_undeclared_ok")
    page.check("#route-purposes input[value=analytics]")
    page.click("#route-save")

    expect(page.locator("#route-receives")).to_contain_text("data.email")
    route = Route.objects.get()
    assert (route.purposes, route.mapping) == (["analytics", "personalisation"], {"customer.email": "data.email"})


def test_marketing_withdraws_a_persons_consent_then_erases_their_data(page, transactional_db):
    user_make("Marketing", password="pw-m")
    purchase = event_type_make(PURCHASE)
    # Paused: the delivery stays pending (a Celery worker another test started may be running on this database).
    tracify = vendor_connection_make("tracify", paused=True)
    route_create(event_type=purchase, connection=tracify, vendor_event_name="purchase")
    source, _ = source_create(name="shop", default_consent=["advertising"])
    data = {"email": "kate@example.com", "amount": 10, "currency": "EUR"}
    events_ingest(source=source, items=[{"eventType": "purchase", "data": data, "trackerId": "trk-kate"}])
    console_login(page, "marketing", "pw-m")

    page.get_by_role("link", name="Privacy", exact=True).click()
    page.check("input[name=consent-by][value=tracker_id]")
    page.fill("#id_consent-value", "trk-kate")
    page.click("#consent-save")
    expect(page.locator(".messages")).to_contain_text("1 pending or retrying delivery suppressed")
    assert Delivery.objects.get().status == "suppressed"
    event = Event.objects.get()
    page.goto(f"/events/{event.uuid}/")
    expect(page.locator("#deliveries")).to_contain_text("suppressed: no consent for advertising")
    expect(page.locator("#event-consent")).to_contain_text("a consent update")

    page.goto("/privacy/")
    page.fill("#id_erase-value", "KATE@example.com")
    page.click("#erase-preview")
    expect(page.locator("#plan-events")).to_have_text("1")
    page.click("#erase-confirm")
    page.click("#erase-button")
    expect(page.locator(".messages")).to_contain_text("Erased: 1 events")
    assert Event.objects.get().data == {}
    page.goto(f"/events/{event.uuid}/")
    expect(page.locator("#event-redacted")).to_contain_text("erased")
    assert "kate@example.com" not in page.content()
