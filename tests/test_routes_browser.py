"""The route editor and the connection pages in a real browser (Playwright, Debian's Chromium)."""

from __future__ import annotations

import os

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import console_login, htmx_idle
from tests.factories import PURCHASE, event_type_make, user_make, vendor_connection_make
from tracking.models import Route, VendorConnection
from tracking.services.ingest import events_ingest

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("HUB_SCREENSHOTS", "")  # a folder: screenshots of each step, to look at


def shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def test_marketing_builds_a_route_with_mapping_rows_fixes_it_and_previews_a_logged_event(page, transactional_db):
    user_make("Marketing", password="pw-m")
    event_type_make(PURCHASE)
    vendor_connection_make("algonomy")
    events_ingest(
        source=None,
        items=[
            {
                "eventType": "purchase",
                "nonce": "logged-1",
                "data": {"email": "kate@example.com", "amount": 12, "currency": "EUR", "url": "https://shop.example/"},
            }
        ],
    )

    console_login(page, "marketing", "pw-m")
    page.get_by_role("link", name="Routes", exact=True).click()
    page.get_by_role("link", name="New route").click()
    page.select_option("#id_event_type", label="purchase")
    page.select_option("#id_connection", label="algonomy (Algonomy rCDP)")
    # HTMX brings the vendor's part: Algonomy's fixed event names.
    expect(page.locator("select#id_vendor_event_name option")).to_have_count(16)
    page.select_option("#id_vendor_event_name", "eventLogout")
    htmx_idle(page)  # the name reloads the vendor part (its required fields): add rows to the new one

    rows = page.locator("#mapping-rows tr")
    for n in (1, 2, 3):
        page.click("#add-row")
        expect(rows).to_have_count(n)
    rows.nth(0).locator("input[name=map_attr]").fill("page.url")
    rows.nth(0).locator("input[name=map_path]").fill("data.url")
    rows.nth(1).locator("input[name=map_attr]").fill("utm.source")
    rows.nth(1).locator("input[name=map_path]").fill("=newsletter")
    rows.nth(2).locator(".remove-row").click()  # removed without a reload
    expect(rows).to_have_count(2)
    shot(page, "route-1-rows")
    page.click("#route-save")

    # The vendor's rule, inline; nothing saved; the rows as typed.
    expect(page.locator("#route-errors")).to_contain_text("map the customer (customer.email or customer.customerCode)")
    expect(page.locator("#mapping-rows tr")).to_have_count(2)
    shot(page, "route-2-error")
    assert not Route.objects.exists()

    page.click("#add-row")
    expect(rows).to_have_count(3)
    last = rows.last
    last.locator("input[name=map_attr]").fill("customer.email")
    last.locator("input[name=map_path]").fill("data.email")
    page.click("#route-save")

    expect(page.locator(".messages")).to_contain_text("Route saved: purchase → algonomy.")
    route = Route.objects.get()
    assert route.mapping == {"page.url": "data.url", "utm.source": "=newsletter", "customer.email": "data.email"}
    assert route.vendor_event_name == "eventLogout"

    page.click("#preview-button")
    result = page.locator("#preview-result")
    expect(result).to_contain_text("POST https://sandbox.algonomy.com/callback/rest/events/ABC123/eventLogout")
    expect(result.locator("pre.json")).to_contain_text('"email": "kate@example.com"')
    expect(result.locator("pre.json")).to_contain_text('"source": "newsletter"')
    expect(result).to_contain_text("Authorization: [redacted]")
    shot(page, "route-3-preview")

    # Preview of an unsaved change: a required field the event lacks → the refusal, in words.
    page.select_option("#id_vendor_event_name", "eventLogin")
    expect(page.locator("#required-fields")).to_contain_text("customerCode")
    page.click("#preview-button")
    expect(page.locator("#preview-refusal")).to_contain_text("required eventData fields missing: customerCode")
    assert Route.objects.get().vendor_event_name == "eventLogout"


def test_marketing_creates_and_edits_a_connection_and_tests_it_against_the_sandbox(page, transactional_db, sandbox_url):
    user_make("Marketing", password="pw-m")
    issued = httpx.post(f"{sandbox_url}/__sandbox__/algonomy/clients", json={}).json()

    console_login(page, "marketing", "pw-m")
    page.get_by_role("link", name="Connections", exact=True).click()
    page.get_by_role("link", name="New connection").click()
    page.select_option("#id_kind", "algonomy")
    # Only Algonomy's settings and secrets, swapped in by HTMX.
    expect(page.locator("#id_setting_tenant_hash")).to_be_visible()
    expect(page.locator("#id_setting_project_id")).to_have_count(0)
    page.fill("#id_name", "algonomy-sandbox")
    page.fill("#id_base_url", f"{sandbox_url}/algonomy/")
    page.fill("#id_auth_url", f"{sandbox_url}/algonomy")
    page.fill("#id_setting_tenant_hash", issued["tenant_hash"])
    page.fill("#id_setting_src_id", "WBSTR")
    page.fill("#id_setting_src_type", "Website")
    page.fill("#id_secret_client_id", issued["client_id"])
    page.fill("#id_secret_client_secret", "not-the-secret")
    shot(page, "connection-1-form")
    page.click("#connection-save")

    expect(page.locator(".messages")).to_contain_text("Connection algonomy-sandbox saved.")
    page.click("#test-connection")
    expect(page.locator("#test-result")).to_contain_text("Authentication failed: token endpoint answered HTTP 401")
    shot(page, "connection-2-failed")

    # The right secret; the client id left blank keeps its value.
    page.fill("#id_secret_client_secret", issued["client_secret"])
    page.click("#connection-save")
    expect(page.locator(".messages")).to_contain_text("saved")
    page.click("#test-connection")
    expect(page.locator("#test-result")).to_contain_text(
        "Authenticated with Algonomy rCDP: an access token was issued."
    )
    shot(page, "connection-3-ok")

    html = page.content()
    assert issued["client_secret"] not in html and issued["client_id"] not in html
    connection = VendorConnection.objects.get()
    assert connection.secrets == {"client_id": issued["client_id"], "client_secret": issued["client_secret"]}

    page.get_by_role("link", name="← Connections").click()
    row = page.locator(f"#connection-{connection.pk}")
    expect(row).to_contain_text("client_id, client_secret")
    row.get_by_role("button", name="Test connection").click()
    expect(row.locator(".test-result")).to_contain_text("Authenticated")
