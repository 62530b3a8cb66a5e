"""The sales user works the lead board in a real browser (HTMX, no reload) while a real Celery worker sends the
changes to the real Webmarketer sandbox."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import console_login, wait_until
from tests.factories import event_type_make, route_make, sandbox_connection_make, source_make, user_make
from tracking.models import Delivery, LeadDelivery
from tracking.services.ingest import events_ingest
from tracking.services.webmarketer import event_type_push

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture
def kate(celery_worker, sandbox, sandbox_url):
    connection = sandbox_connection_make(sandbox_url, retry_base_seconds=0.2, retry_max_seconds=1.0, timeout_seconds=5)
    event_type = event_type_make()
    event_type_push(event_type=event_type, connection=connection)
    route_make(event_type, connection)
    source, _ = source_make()
    items = [
        {
            "eventType": "contact-form",
            "eventDate": "2024-05-01T09:00:00Z",
            "data": {"email": f"{name.lower()}@example.com", "first_name": name, "last_name": "Lead", "message": "Hi"},
        }
        for name in ("Kate", "Jack")
    ]
    event = events_ingest(source=source, items=items)[0].event
    wait_until(lambda: Delivery.objects.filter(status="delivered").count() == 2, timeout=30, message="the events")
    return event


def test_the_sales_user_qualifies_then_converts_a_lead_with_its_turnover(page, kate, sandbox):
    user_make("Sales", password="pw-sales")
    console_login(page, "sales", "pw-sales")
    expect(page).to_have_url("/leads/")  # Sales land on the lead board
    page.evaluate("window.notReloaded = true")
    row = page.locator(f"#lead-{kate.uuid}")
    expect(row).to_contain_text("Kate Lead")
    expect(row).to_contain_text("kate@example.com")

    row.locator("input[name=date]").fill("2024-05-02T10:30")
    row.get_by_role("button", name="Mark qualified").click()
    expect(row.locator("[role=status]")).to_have_text("Saved: qualified on 2024-05-02 10:30 UTC.")
    expect(row.get_by_role("button", name="Undo qualified")).to_be_visible()

    row.locator("input[name=amount-turnover]").fill("4000 euros")
    row.get_by_role("button", name="Set turnover").click()
    expect(row.locator("[role=alert]")).to_contain_text("is not an amount")
    expect(row.locator("input[name=amount-turnover]")).to_have_value("4000 euros")  # what was typed is kept

    row.locator("input[name=date]").fill("2024-05-09T17:00")
    row.get_by_role("button", name="Mark converted").click()
    expect(row.locator("[role=status]")).to_contain_text("Saved: converted on 2024-05-09 17:00 UTC.")
    row.locator("input[name=date]").fill("2024-05-09T17:00")
    row.locator("input[name=amount-turnover]").fill("4000")
    row.get_by_role("button", name="Set turnover").click()
    expect(row.locator("[role=status]")).to_contain_text("Saved: turnover 4000.00")
    expect(row.locator("[data-statistic=turnover]")).to_contain_text("4000")

    wait_until(
        lambda: LeadDelivery.objects.count() == 3 and not LeadDelivery.objects.exclude(status="delivered").exists(),
        timeout=30,
        message="the three changes at Webmarketer",
    )
    row.get_by_role("link", name="History").click()
    expect(row.locator("li.lead-delivery > .badge.delivered")).to_have_count(3)
    expect(row.get_by_role("link", name="Hide history")).to_be_visible()
    assert page.evaluate("window.notReloaded") is True  # every step swapped the lead's rows only

    stored = sandbox.get("/__sandbox__/webmarketer/events").json()["data"]
    at_webmarketer = next(e for e in stored if e["_id"] == Delivery.objects.get(event=kate).vendor_ref)
    assert at_webmarketer["states"]["qualified"]["date"] == "2024-05-02T10:30:00.000Z"
    assert at_webmarketer["states"]["converted"]["date"] == "2024-05-09T17:00:00.000Z"
    assert at_webmarketer["statistics"]["turnover"]["value"] == 4000

    # Undo, and the rest of the console stays closed to Sales.
    row.get_by_role("button", name="Undo qualified").click()
    expect(row.get_by_role("button", name="Mark qualified")).to_be_visible()
    for closed in ("/events/", "/connections/", "/event-types/"):
        response = page.goto(closed)
        assert response.status == 403, closed
        expect(page.locator("h1")).to_have_text("Not allowed")
