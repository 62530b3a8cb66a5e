"""The console at phone width (390 px): no page scrolls sideways, the navigation folds behind a menu button, and the
lead board works with the thumb."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import console_login, htmx_idle
from tests.factories import (
    PURCHASE,
    event_store,
    event_type_make,
    route_make,
    user_make,
    vendor_connection_make,
    webmarketer_connection_make,
)
from tracking.models import Delivery, LeadChange, OfflineInteraction, TrashedEvent

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def console(transactional_db):
    """A bit of everything each page lists, with long values where a page could be pushed wide."""
    contact_form = event_type_make()
    purchase = event_type_make(PURCHASE)
    webmarketer = webmarketer_connection_make(name="webmarketer-production-eu")
    tracify = vendor_connection_make("tracify")
    routes = [route_make(contact_form, webmarketer), route_make(purchase, tracify, vendor_event_name="purchase")]
    lead = event_store(
        contact_form,
        {
            "email": "kate.austen.with.a.rather.long.address@example-company-domain.com",
            "first_name": "Kate",
            "last_name": "Austen-Shephard-Reyes",
            "phone": "+33612345678",
            "message": "Call me back about the offer " * 6,
        },
        nonce="phone-lead-with-a-long-nonce-0123456789abcdef",
        routes=routes[:1],
    )
    event_store(
        purchase,
        {"email": "jack@example.com", "amount": 12.5, "currency": "EUR", "order_id": "o-1" * 20},
        nonce="phone-purchase",
        routes=routes[1:],
    )
    Delivery.objects.filter(event=lead).update(status="delivered", vendor_ref="wm-" + "f" * 24)
    trashed = TrashedEvent.objects.create(
        wm_id="a" * 24,
        connection=webmarketer,
        event_type_ref="contact-form",
        errors=[{"field": "phone", "message": "phone is not a valid phone number for any region " * 2}],
        raw={"data": {"phone": "0612"}},
        event=lead,
    )
    OfflineInteraction.objects.create(
        connection=webmarketer,
        date="2023-08-01T22:00:00Z",
        user_data={"email": "someone.with.a.long.address@example-company-domain.com"},
        node_data={"wmktId": "1234", "cid": "5678"},
        status="rejected",
        response_status=400,
        answer="cid 5678 is not a campaign of node 1234 " * 3,
    )
    return {"lead": lead, "routes": routes, "connection": webmarketer, "event_type": contact_form, "trash": trashed}


def wide(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_no_console_page_scrolls_sideways_at_phone_width(page, console):
    user_make("Marketing", password="pw-marketing")
    page.set_viewport_size(PHONE)
    console_login(page, "marketing", "pw-marketing")
    # Every page the navigation offers, and the detail pages behind them.
    nav = page.locator(".mainnav a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    lead, route = console["lead"], console["routes"][0]
    pages = [
        *[href for href in nav if not href.startswith("/admin")],
        f"/events/{lead.uuid}/",
        f"/leads/{lead.uuid}/",
        "/routes/new/",
        f"/routes/{route.pk}/",
        "/connections/new/",
        f"/connections/{console['connection'].pk}/",
        f"/event-types/{console['event_type'].pk}/",
        f"/event-types/{console['event_type'].pk}/edit/",
        "/event-types/new/",
        f"/trash/{console['trash'].pk}/",
    ]
    assert "/events/" in pages and "/offline/" in pages
    too_wide = {}
    for url in pages:
        response = page.goto(url)
        assert response.status == 200, url
        htmx_idle(page)
        if (width := wide(page)) > PHONE["width"]:
            too_wide[url] = width
    assert too_wide == {}


def test_the_navigation_folds_behind_a_menu_button_at_phone_width(page, console):
    user_make("Marketing", password="pw-marketing")
    page.set_viewport_size(PHONE)
    console_login(page, "marketing", "pw-marketing")
    page.goto("/events/")
    nav = page.locator(".mainnav")
    menu = page.get_by_role("button", name="Menu")

    expect(nav).to_be_hidden()
    assert page.locator(".topbar").bounding_box()["height"] < 80
    menu.click()
    expect(nav).to_be_visible()
    expect(menu).to_have_attribute("aria-expanded", "true")
    nav.get_by_role("link", name="Routes").click()
    expect(page).to_have_url("/routes/")
    expect(page.locator(".mainnav")).to_be_hidden()

    page.set_viewport_size({"width": 1280, "height": 800})
    expect(page.locator(".mainnav")).to_be_visible()
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()


def test_sales_work_the_lead_board_at_phone_width(page, console):
    user_make("Sales", password="pw-sales")
    page.set_viewport_size(PHONE)
    console_login(page, "sales", "pw-sales")
    row = page.locator(f"#lead-{console['lead'].uuid}")
    expect(row).to_contain_text("Kate")
    assert wide(page) <= PHONE["width"]

    for name in ("Mark qualified", "Mark converted", "Set turnover"):
        button = row.get_by_role("button", name=name)
        expect(button).to_be_in_viewport()
        box = button.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], name
    row.get_by_role("button", name="Mark qualified").click()
    expect(row.locator("[role=status]")).to_contain_text("Saved: qualified")
    htmx_idle(page)
    assert LeadChange.objects.filter(event=console["lead"], storage_key="qualified", value=1).exists()
    row.locator("input[name=amount-turnover]").fill("1200")
    row.get_by_role("button", name="Set turnover").click()
    expect(row.locator("[role=status]")).to_contain_text("Saved: turnover 1200")
    assert wide(page) <= PHONE["width"]
