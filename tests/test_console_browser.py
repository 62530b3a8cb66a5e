"""The console in a real browser: Playwright driving Debian's Chromium against a live server."""

from __future__ import annotations

import os
import shutil

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from tests.factories import event_type_make, route_make, source_make, webmarketer_connection_make
from tracking.models import Delivery
from tracking.services.ingest import events_ingest

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium installed (see .ci/run)")
        pytest.skip("Debian's chromium is not installed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test are still sync.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def login(page, username, password):
    page.goto("/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    expect(page.locator("#user-tools")).to_be_visible()


def test_staff_see_an_event_its_delivery_and_attempt_without_secrets(page, transactional_db):
    User.objects.create_superuser("root", "root@example.com", "pw-for-root")
    connection = webmarketer_connection_make()
    route_make(event_type_make(), connection)
    source, _ = source_make()
    events_ingest(
        source=source,
        items=[
            {"eventType": "contact-form", "nonce": "browser-1", "data": {"email": "kate@example.com", "message": "hi"}}
        ],
    )
    delivery = Delivery.objects.get()
    Delivery.objects.filter(pk=delivery.pk).update(status="delivered", vendor_ref="wm-42")

    login(page, "root", "pw-for-root")
    page.goto("/admin/tracking/event/")
    page.get_by_role("link", name=str(delivery.event.uuid)).click()
    expect(page.locator("div.readonly", has_text="browser-1")).to_be_visible()
    page.goto(f"/admin/tracking/delivery/{delivery.pk}/change/")
    assert "wm-42" in page.content()

    page.goto(f"/admin/tracking/vendorconnection/{connection.pk}/change/")
    html = page.content()
    assert "service_account" in html  # the key is named …
    assert "PRIVATE KEY" not in html  # … its value never shown


def test_the_admin_replay_action_queues_a_new_generation(page, transactional_db):
    User.objects.create_superuser("root", "root@example.com", "pw-for-root")
    route_make(event_type_make(), webmarketer_connection_make())
    source, _ = source_make()
    (result,) = events_ingest(
        source=source, items=[{"eventType": "contact-form", "data": {"email": "a@b.co", "message": "x"}}]
    )

    login(page, "root", "pw-for-root")
    page.goto("/admin/tracking/event/")
    page.check("input.action-select")
    page.select_option("select[name=action]", "replay")
    page.click("button[name=index]")

    expect(page.locator("ul.messagelist")).to_contain_text("1 deliveries queued again.")
    assert list(result.event.deliveries.values_list("generation", "nonce").order_by("generation")) == [
        (0, result.event.nonce),
        (1, result.event.nonce),
    ]
