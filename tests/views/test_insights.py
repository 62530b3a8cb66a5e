"""The Webmarketer insights page: who may open it, the pickers, the chart data, refusals in words."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from django.core.cache import cache

from tests.factories import event_type_make, user_make, webmarketer_connection_make

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_sessions")]

TOKEN_URL = "https://oauth.webmarketer.io/oidc/token"
INSIGHTS_URL = "https://api.webmarketer.io/api/v1/projects/my-project/events/insights"


@pytest.fixture
def wm():
    cache.clear()
    event_type_make()
    return webmarketer_connection_make(name="Webmarketer")


@pytest.fixture
def vendor():
    with respx.mock(assert_all_called=False) as mock:
        mock.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"access_token": "t", "expires_in": 3600}))
        yield mock


def query(wm, **extra) -> dict:
    return {
        "connection": wm.pk,
        "metrics": ["event-count", "turnover"],
        "group_by": "project",
        "interval": "day",
        "since": "2026-11-01",
        "until": "2026-11-30",
        **extra,
    }


@pytest.mark.parametrize("role", ["Marketing", "Auditor"])
def test_marketing_and_auditors_get_the_pickers(client, wm, role):
    client.force_login(user_make(role))
    html = client.get("/insights/").content.decode()
    for metric in ("event-count", "qualified", "converted", "turnover"):
        assert f'value="{metric}"' in html
    for interval in ("day", "semester", "dayOfWeek", "weekOfYear", "semesterOfYear"):
        assert f'value="{interval}"' in html
    assert 'value="event-type"' in html and 'value="contact-form"' in html
    assert "insights-data" not in html  # nothing asked yet


def test_sales_get_403(client, wm):
    client.force_login(user_make("Sales"))
    assert client.get("/insights/").status_code == 403
    assert client.get("/insights/", query(wm)).status_code == 403


def test_a_query_is_drawn_as_lines_over_time(client, wm, vendor):
    rows = [{"identifier": "my-project", "interval": "2026-11-02", "values": {"event-count": 4, "turnover": 90}}]
    route = vendor.post(INSIGHTS_URL).mock(return_value=httpx.Response(200, json=rows))
    client.force_login(user_make("Marketing"))

    response = client.get("/insights/", query(wm), headers={"HX-Request": "true"})

    html = response.content.decode()
    assert "<h1>" not in html  # the result alone, for htmx
    start = html.index('id="insights-data"')
    chart = json.loads(html[html.index(">", start) + 1 : html.index("</script>", start)])["insights"]
    assert chart["type"] == "line" and chart["labels"] == ["2026-11-02"]
    assert {d["label"]: d["data"] for d in chart["datasets"]} == {"event-count": [4], "turnover": [90]}
    sent = json.loads(route.calls.last.request.content)
    assert (sent["since"], sent["until"]) == ("2026-11-01T00:00:00Z", "2026-11-30T23:59:59.999Z")


def test_seasonality_is_drawn_as_bars(client, wm, vendor):
    rows = [{"identifier": "my-project", "interval": 1, "values": {"event-count": 4}}]
    vendor.post(INSIGHTS_URL).mock(return_value=httpx.Response(200, json=rows))
    client.force_login(user_make("Auditor"))

    html = client.get("/insights/", query(wm, interval="dayOfWeek")).content.decode()

    assert 'data-chart-type="bar"' in html


def test_a_refusal_is_shown_in_words(client, wm, vendor):
    answer = httpx.Response(403, json={"statusCode": 403, "message": "Forbidden resource"})
    vendor.post(INSIGHTS_URL).mock(return_value=answer)
    client.force_login(user_make("Marketing"))

    html = client.get("/insights/", query(wm)).content.decode()

    assert "may not read this project&#x27;s insights (403)" in html and "Forbidden resource" in html
    assert "insights-data" not in html


def test_dates_in_the_wrong_order_are_refused_before_asking(client, wm, vendor):
    route = vendor.post(INSIGHTS_URL).mock(return_value=httpx.Response(200, json=[]))
    client.force_login(user_make("Marketing"))

    html = client.get("/insights/", query(wm, since="2026-12-01")).content.decode()

    assert "The end comes before the start." in html and route.call_count == 0
