"""The Content-Security-Policy holds in a real browser: the console's pages run with no violation."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import console_login, htmx_idle
from tests.factories import (
    CONTACT_FORM,
    PURCHASE,
    event_type_make,
    route_make,
    source_make,
    user_make,
    vendor_connection_make,
    webmarketer_connection_make,
)
from tracking.services.ingest import events_ingest

pytestmark = pytest.mark.browser


def test_the_console_pages_run_without_a_content_security_policy_violation(page, transactional_db):
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(f"{page.url}: {message.text[:90]} {message.location}")
            if "Content Security Policy" in message.text
            else None
        ),
    )
    user_make("Marketing", password="pw-m", is_staff=True)
    connection = webmarketer_connection_make()
    lead_type = event_type_make(CONTACT_FORM)
    event_type_make(PURCHASE)
    route_make(lead_type, connection)
    vendor_connection_make("algonomy")
    source, _ = source_make()
    (result,) = events_ingest(
        source=source, items=[{"eventType": "contact-form", "data": {"email": "kate@example.com", "message": "hi"}}]
    )

    console_login(page, "marketing", "pw-m")
    for url in (
        "/",
        "/events/",
        f"/events/{result.event.uuid}/",
        "/leads/",
        f"/leads/{result.event.uuid}/",
        "/connections/",
        f"/connections/{connection.pk}/",
        "/connections/new/?kind=tracardi",
        "/routes/",
        "/event-types/",
        "/event-types/new/",
        "/trash/",
        "/offline/",
        "/admin/",
        "/admin/tracking/delivery/",
        f"/admin/tracking/vendorconnection/{connection.pk}/change/",
    ):
        response = page.goto(url)
        assert response.status == 200, url
        assert "Content-Security-Policy" in "".join(response.headers) or response.headers.get(
            "content-security-policy"
        ), url
        htmx_idle(page)

    # The console's own script does what inline handlers used to: remove a mapping row.
    page.goto("/routes/new/")
    page.select_option("#id_event_type", label="purchase")
    page.select_option("#id_connection", label="algonomy (Algonomy rCDP)")
    page.select_option("#id_vendor_event_name", "eventLogout")
    htmx_idle(page)
    rows = page.locator("#mapping-rows tr")
    page.click("#add-row")
    page.click("#add-row")
    expect(rows).to_have_count(2)
    rows.nth(1).locator(".remove-row").click()
    expect(rows).to_have_count(1)

    assert violations == []
