"""Console polish in a real browser: a new event type's address after saving, and dates typed as ISO in UTC."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import console_login
from tests.factories import user_make
from tracking.models import EventType

pytestmark = pytest.mark.browser


def test_saving_a_new_event_type_leaves_the_new_address(page, transactional_db):
    user_make("Marketing", password="pw-m")
    console_login(page, "marketing", "pw-m")
    page.goto("/event-types/new/")
    page.fill("#id_name", "Newsletter")
    page.fill("#id_reference", "newsletter")
    page.locator('#rows-fields [name$="-storageKey"]').first.fill("email")
    page.locator('#rows-fields [name$="-type"]').first.select_option("email")

    page.get_by_role("button", name="Save").click()

    page.wait_for_url(re.compile(r"/event-types/\d+/$"))
    event_type = EventType.objects.get(reference="newsletter")
    assert page.url.endswith(f"/event-types/{event_type.pk}/")
    # Reloading shows the type, never posts it again.
    page.reload()
    expect(page.locator("h1")).to_contain_text("newsletter")
    assert EventType.objects.count() == 1


def test_date_filters_and_the_lead_date_take_iso_dates_and_a_24_hour_clock(page, transactional_db):
    user_make("Marketing", password="pw-m")
    console_login(page, "marketing", "pw-m")
    page.goto("/events/")
    since = page.locator('input[name="since"]')

    # A text input: Chromium draws type=date in the browser's locale (mm/dd/yyyy), whatever lang says.
    assert since.get_attribute("type") == "text" and since.get_attribute("placeholder") == "YYYY-MM-DD"
    since.fill("11/30/2026")
    assert since.evaluate("el => el.checkValidity()") is False
    since.fill("2026-11-30")
    assert since.evaluate("el => el.checkValidity()") is True
    assert since.input_value() == "2026-11-30"

    page.goto("/offline/")
    date = page.locator("#id_date")
    assert date.get_attribute("type") == "text" and date.get_attribute("placeholder") == "YYYY-MM-DD HH:MM:SS"
    date.fill("2026-11-30 18:05")
    assert date.evaluate("el => el.checkValidity()") is True
    date.fill("2026-11-30 06:05 PM")
    assert date.evaluate("el => el.checkValidity()") is False
