"""Webmarketer insights in a real browser against the real sandbox: events sent through the delivery pipeline
come back as a line chart (and bars for seasonality), and a 400 from Webmarketer is shown in words."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from tests.conftest import console_login, htmx_idle
from tests.factories import event_type_make, events_deliver, sandbox_connection_make, user_make
from tracking.services.webmarketer import event_type_push

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.usefixtures("fresh_sessions")]

DRAWN = """() => {
  const chart = window.Chart && Chart.getChart(document.getElementById("chart-insights"));
  if (!chart) return null;
  return {type: chart.config.type, labels: chart.data.labels.length,
          total: chart.data.datasets.reduce((s, d) => s + d.data.reduce((a, v) => a + v, 0), 0)};
}"""


@pytest.fixture
def held(transactional_db, sandbox, sandbox_url):
    """Five contact forms delivered to the sandbox's Webmarketer project."""
    cache.clear()
    connection = sandbox_connection_make(sandbox_url, name="Webmarketer")
    event_type = event_type_make()
    event_type_push(event_type=event_type, connection=connection)
    events_deliver(connection, event_type, [{"email": f"p{i}@example.com", "message": "hi"} for i in range(5)])
    return connection


def test_insights_are_drawn_from_the_sandbox_and_a_400_is_said(page, held, sandbox):
    user_make("Marketing", password="pw-m")
    console_login(page, "marketing", "pw-m")
    page.get_by_role("link", name="Insights").click()
    expect(page).to_have_url("/insights/")
    expect(page.locator("input[name=metrics][value=event-count]")).to_be_checked()

    page.get_by_role("button", name="Show").click()
    htmx_idle(page)
    page.wait_for_function(DRAWN)
    drawn = page.evaluate(DRAWN)
    assert drawn["type"] == "line" and drawn["labels"] >= 1 and drawn["total"] == 5
    assert "connection=" in page.url and "interval=day" in page.url  # the query is kept in the URL

    page.select_option("select[name=interval]", "dayOfWeek")
    page.get_by_role("button", name="Show").click()
    htmx_idle(page)
    page.wait_for_function(
        "() => window.Chart?.getChart(document.getElementById('chart-insights'))?.config.type === 'bar'"
    )
    assert page.evaluate(DRAWN)["total"] == 5

    # Webmarketer refuses the next query (the sandbox made to answer 400 with its message).
    faults = {
        "fail_status": 400,
        "fail_message": "interval must be one of: day, week, month",
        "vendors": ["webmarketer"],
    }
    sandbox.patch("/__sandbox__/faults", json=faults).raise_for_status()
    page.select_option("select[name=interval]", "week")
    page.get_by_role("button", name="Show").click()
    alert = page.locator(".insights-error")
    expect(alert).to_contain_text("Webmarketer refused the query as invalid (400).")
    expect(alert).to_contain_text("interval must be one of: day, week, month")
    expect(page.locator("#chart-insights")).to_have_count(0)
