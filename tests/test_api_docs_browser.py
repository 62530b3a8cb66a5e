"""The ingest API's reference page renders the generated document in a real browser, under the strict CSP."""

from __future__ import annotations

import pytest
from django.conf import settings
from playwright.sync_api import expect

from tests.factories import CONTACT_FORM, PURCHASE, event_type_make

pytestmark = pytest.mark.browser


def test_the_api_docs_page_shows_each_event_type_with_no_policy_violation(page, transactional_db):
    violations: list[str] = []
    page.on(
        "console",
        lambda message: violations.append(message.text[:200]) if "Content Security Policy" in message.text else None,
    )
    event_type_make(CONTACT_FORM)
    event_type_make(PURCHASE)

    response = page.goto("/api/v1/docs")

    # The console's own policy, not relaxed: no inline script or style, no eval.
    assert response.headers["content-security-policy"] == settings.CONTENT_SECURITY_POLICY
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Event hub ingest API")
    expect(page.locator("#model-PurchaseEventData")).to_be_visible()
    page.locator("#model-PurchaseEventData .model-box-control").first.click()
    expect(page.locator("#model-PurchaseEventData")).to_contain_text("currency")

    # Try it out: the example is posted from the page (no token: a 401 answered as JSON).
    page.locator("#operations-default-event_create .opblock-summary-control").click()
    page.get_by_role("button", name="Try it out").click()
    page.locator(".execute").click()
    expect(page.locator(".live-responses-table tbody .response-col_status").first).to_contain_text("401")
    assert violations == []


def test_the_api_docs_page_takes_only_get(client):
    assert client.post("/api/v1/docs").status_code == 405
