"""The dashboard in a real browser: every chart drawn by Chart.js from the rollups the services kept (ingest,
delivery outcomes against a mocked Webmarketer, a trash pull's items, lead changes), under the strict CSP."""

from __future__ import annotations

import httpx
import pytest
import respx
from playwright.sync_api import expect

from tests.conftest import console_login
from tests.factories import PURCHASE, event_type_make, route_make, source_make, user_make, webmarketer_connection_make
from tracking.models import Event, TrashedEvent
from tracking.services.delivery import connection_dispatch
from tracking.services.ingest import events_ingest
from tracking.services.leads import lead_change_record
from tracking.services.rollups import trash_counted

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("fresh_sessions")]

TOKEN_URL = "https://oauth.webmarketer.io/oidc/token"
EVENTS_URL = "https://api.webmarketer.io/api/v1/events"

# Per canvas: is there a chart, how many datasets, and the sum of all their values.
CHARTS_DRAWN = """() => [...document.querySelectorAll("canvas[data-chart]")].map((canvas) => {
  const chart = Chart.getChart(canvas);
  const sets = chart ? chart.data.datasets : [];
  return {
    name: canvas.dataset.chart,
    drawn: !!chart && canvas.width > 0 && canvas.height > 0,
    datasets: sets.length,
    total: sets.reduce((sum, set) => sum + set.data.reduce((a, v) => a + (Number(v) || 0), 0), 0),
  };
})"""


@pytest.fixture
def demo_like(transactional_db):
    """A morning of traffic: two event types, valid and invalid events, deliveries delivered and failed, trashed
    items, leads qualified and converted with a turnover."""
    connection = webmarketer_connection_make(name="Webmarketer", batch_size=100)
    contact_form, purchase = event_type_make(), event_type_make(PURCHASE)
    route_make(contact_form, connection)
    route_make(purchase, connection)
    source, _ = source_make()
    contacts = [
        {"eventType": "contact-form", "data": {"email": f"p{i}@example.com", "message": "hi"}} for i in range(12)
    ]
    bad = [{"eventType": "contact-form", "data": {"email": "broken"}} for _ in range(3)]
    results = events_ingest(source=source, items=contacts + bad)
    with respx.mock(assert_all_called=False) as vendor:
        vendor.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"access_token": "t", "expires_in": 3600}))
        answers = [httpx.Response(200, json=f"wm-{i}") for i in range(10)] + [httpx.Response(400, json={})] * 2
        vendor.post(EVENTS_URL).mock(side_effect=answers)
        connection_dispatch(connection_id=connection.pk)
    assert purchase.pk  # a second type in the legend once its events come in
    trashed = [
        TrashedEvent(
            wm_id=f"trash-{i}",
            connection=connection,
            event_type_ref="contact-form",
            errors=[{"type": "invalid-field", "field": {"storageKey": key}}],
            processing_date=results[i].event.received_at,
        )
        for i, key in enumerate(["phone", "phone", "email"])
    ]
    TrashedEvent.objects.bulk_create(trashed)
    trash_counted(trashed)
    leads = [r.event for r in results[:3]]
    for lead in leads:
        lead_change_record(event=lead, kind="state", storage_key="qualified", value=1)
    lead_change_record(event=leads[0], kind="state", storage_key="converted", value=1)
    lead_change_record(event=leads[0], kind="statistic", storage_key="turnover", value="1200")
    assert Event.objects.count() == 15
    return connection


def test_the_dashboard_draws_every_chart_from_the_rollups(page, demo_like):
    user_make("Marketing", password="pw-m")
    console_login(page, "marketing", "pw-m")
    expect(page).to_have_url("/dashboard/")
    page.wait_for_function("() => document.querySelectorAll('canvas[data-chart]').length === 5 && window.Chart")

    charts = {c["name"]: c for c in page.evaluate(CHARTS_DRAWN)}

    assert set(charts) == {"events", "deliveries", "latency", "trash", "funnel"}
    for name, chart in charts.items():
        assert chart["drawn"] and chart["datasets"] > 0 and chart["total"] > 0, name
    assert charts["events"]["total"] == 15  # 12 valid + 3 invalid
    assert charts["deliveries"]["total"] == 12  # 10 delivered + 2 failed
    assert charts["trash"]["total"] == 3
    assert charts["funnel"]["total"] == 12 + 3 + 1  # leads, qualified, converted
    expect(page.locator(".stat-total[data-key=turnover]")).to_have_text("1200.00")

    # At phone width the charts fit the screen (no sideways scrolling).
    page.set_viewport_size({"width": 390, "height": 800})
    page.wait_for_function("() => document.documentElement.scrollWidth <= window.innerWidth")


def test_the_date_range_is_kept_in_the_url(page, demo_like):
    user_make("Auditor", password="pw-a")
    console_login(page, "auditor", "pw-a")
    expect(page).to_have_url("/dashboard/")
    expect(page.locator("input[name=since]")).to_be_hidden()  # the custom days only for a custom range

    page.select_option("select[name=range]", "24h")  # a preset applies at once
    expect(page).to_have_url("/dashboard/?range=24h&since=&until=")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('chart-events'))")
    events = next(c for c in page.evaluate(CHARTS_DRAWN) if c["name"] == "events")
    assert events["total"] == 15

    page.select_option("select[name=range]", "custom")
    page.fill("input[name=since]", "2020-01-01")
    page.fill("input[name=until]", "2020-01-03")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url("/dashboard/?range=custom&since=2020-01-01&until=2020-01-03")
    expect(page.locator("select[name=range]")).to_have_value("custom")
    page.wait_for_function("() => window.Chart && Chart.getChart(document.getElementById('chart-events'))")
    events = next(c for c in page.evaluate(CHARTS_DRAWN) if c["name"] == "events")
    assert events["drawn"] and events["total"] == 0  # nothing back then
