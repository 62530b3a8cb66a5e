"""The dashboard page: who may open it, where each role lands, the date range kept in the URL."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.factories import user_make
from tracking.services.rollups import counts_add, hour_of
from tracking.views.dashboard import window_from

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 30, 10, 25, tzinfo=UTC)


def charts(response) -> dict:
    html = response.content.decode()
    start = html.index('id="dashboard-data"')
    body = html[html.index(">", start) + 1 : html.index("</script>", start)]
    return json.loads(body)


@pytest.mark.parametrize("role", ["Marketing", "Auditor", "admin"])
def test_marketing_auditors_and_admins_see_the_dashboard(client, role):
    client.force_login(user_make(role))
    response = client.get("/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    for chart in ("events", "deliveries", "latency", "trash", "funnel"):
        assert f'data-chart="{chart}"' in html
    assert "chart.umd-4.6.1.min.js" in html and "dashboard.js" in html
    # Data only as a JSON block (not executed), no inline code the Content-Security-Policy would block.
    assert '<script id="dashboard-data" type="application/json">' in html
    assert "<script>" not in html and "style=" not in html
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_sales_get_403_and_land_on_the_lead_board(client):
    client.force_login(user_make("Sales"))
    assert client.get("/dashboard/").status_code == 403
    assert client.get("/").url == "/leads/"


def test_marketing_and_auditors_land_on_the_dashboard(client):
    for role in ("Marketing", "Auditor"):
        client.force_login(user_make(role))
        assert client.get("/").url == "/dashboard/"


def test_anonymous_users_go_to_the_login_page(client):
    assert client.get("/dashboard/").url.startswith("/login/")


def test_the_page_shows_the_rollups_of_the_chosen_range(client):
    counts_add({(hour_of(datetime.now(UTC)), "event", "contact-form", 0, "ok"): 7})
    counts_add({(datetime(2026, 1, 5, 9, tzinfo=UTC), "event", "contact-form", 0, "ok"): 3})
    client.force_login(user_make("Marketing"))

    recent = charts(client.get("/dashboard/?range=24h"))["events"]
    assert len(recent["labels"]) == 24 and sum(recent["datasets"][0]["data"]) == 7

    custom = client.get("/dashboard/?range=custom&since=2026-01-01&until=2026-01-10")
    html = custom.content.decode()
    assert 'value="custom" selected' in html and 'value="2026-01-01"' in html and 'value="2026-01-10"' in html
    events = charts(custom)["events"]
    assert events["labels"][0] == "2026-01-01" and len(events["labels"]) == 10
    assert events["datasets"][0]["data"][4] == 3


@pytest.mark.parametrize(
    ("params", "since", "until", "step", "problem"),
    [
        ({}, "2026-11-24 00", "2026-12-01 00", "day", ""),
        ({"range": "24h"}, "2026-11-29 11", "2026-11-30 11", "hour", ""),
        ({"range": "30d"}, "2026-11-01 00", "2026-12-01 00", "day", ""),
        ({"range": "nonsense"}, "2026-11-24 00", "2026-12-01 00", "day", ""),
        (
            {"range": "custom", "since": "2026-11-02", "until": "2026-11-03"},
            "2026-11-02 00",
            "2026-11-04 00",
            "hour",
            "",
        ),
        (
            {"range": "custom", "since": "2026-11-05", "until": "2026-11-03"},
            "2026-11-24 00",
            "2026-12-01 00",
            "day",
            "ends before",
        ),
        ({"range": "custom", "since": "2026-02-30"}, "2026-11-24 00", "2026-12-01 00", "day", "both days"),
        (
            {"range": "custom", "since": "2020-01-01", "until": "2026-01-01"},
            "2026-11-24 00",
            "2026-12-01 00",
            "day",
            "at most",
        ),
    ],
)
def test_the_range_picker_reads_the_url(params, since, until, step, problem):
    window, _, said = window_from(params, NOW)
    assert (f"{window.since:%Y-%m-%d %H}", f"{window.until:%Y-%m-%d %H}", window.step) == (since, until, step)
    assert problem in said and bool(problem) == bool(said)
