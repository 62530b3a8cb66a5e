"""Webmarketer insights through the connection's session (respx): the answer, its cache, and each refusal in
words."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest
from django.core.cache import cache

from tests.factories import event_type_make
from tests.services.conftest import TOKEN
from tracking.services.insights import Insights, insight_metrics, insights_chart, insights_query

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_sessions")]

INSIGHTS_URL = "https://api.webmarketer.io/api/v1/projects/my-project/events/insights"
SINCE, UNTIL = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
ROWS = [
    {"identifier": "my-project", "interval": "2026-11-02", "values": {"event-count": 10, "turnover": 6532}},
    {"identifier": "my-project", "interval": "2026-11-03", "values": {"event-count": 3, "turnover": 1275}},
]


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


def ask(connection, **options):
    query = {"since": SINCE, "until": UNTIL, "metrics": ["event-count", "turnover"], "interval": "day"}
    return insights_query(connection=connection, **{**query, **options})


def test_it_sends_the_query_and_reads_the_rows(connection, vendor):
    route = vendor.post(INSIGHTS_URL).mock(return_value=httpx.Response(200, json=ROWS))

    result = ask(connection, group_by="event-type", event_types=["contact-form"])

    assert result.ok and result.rows == ROWS and not result.cached
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert json.loads(request.content) == {
        "since": "2026-11-01T00:00:00Z",
        "until": "2026-11-30T23:59:59Z",
        "metrics": ["event-count", "turnover"],
        "groupBy": "event-type",
        "interval": "day",
        "filter": ["contact-form"],
    }


def test_the_filter_is_only_sent_with_the_event_type_breakdown(connection, vendor):
    route = vendor.post(INSIGHTS_URL).mock(return_value=httpx.Response(200, json=[]))
    ask(connection, group_by="project", event_types=["contact-form"])
    assert json.loads(route.calls.last.request.content)["filter"] is None


def test_answers_are_cached_per_query(connection, vendor):
    route = vendor.post(INSIGHTS_URL).mock(return_value=httpx.Response(200, json=ROWS))

    first, again, other = ask(connection), ask(connection), ask(connection, interval="week")

    assert route.call_count == 2
    assert (first.cached, again.cached, other.cached) == (False, True, False)
    assert again.rows == ROWS


def test_a_refusal_is_not_cached(connection, vendor):
    route = vendor.post(INSIGHTS_URL).mock(
        side_effect=[httpx.Response(429, headers={"Retry-After": "30"}), httpx.Response(200, json=ROWS)]
    )
    assert not ask(connection).ok
    assert ask(connection).rows == ROWS and route.call_count == 2


@pytest.mark.parametrize(
    ("status", "body", "headers", "words"),
    [
        (400, {"statusCode": 400, "message": "interval must be one of: day, week"}, {}, "refused the query as invalid"),
        (401, {"statusCode": 401, "message": "Unauthorized"}, {}, "did not accept the hub's sign-in"),
        (403, {"statusCode": 403, "message": "Forbidden resource"}, {}, "may not read this project's insights"),
        (429, {"statusCode": 429, "message": "Too Many Requests"}, {"Retry-After": "30"}, "Try again in 30 seconds"),
        (503, {"message": "down"}, {}, "failed to answer (HTTP 503)"),
    ],
)
def test_refusals_are_said_in_words(connection, vendor, status, body, headers, words):
    vendor.post(INSIGHTS_URL).mock(return_value=httpx.Response(status, json=body, headers=headers))

    result = ask(connection)

    assert not result.ok and result.status == status
    assert words in result.error
    assert body["message"] in result.error  # Webmarketer's own words, quoted


def test_a_401_takes_a_fresh_token_once(connection, vendor):
    route = vendor.post(INSIGHTS_URL).mock(side_effect=[httpx.Response(401), httpx.Response(200, json=ROWS)])
    assert ask(connection).rows == ROWS and route.call_count == 2


def test_an_answer_not_as_documented_is_said(connection, vendor):
    vendor.post(INSIGHTS_URL).mock(return_value=httpx.Response(200, json={"data": []}))
    assert "not as documented" in ask(connection).error


def test_an_unreachable_webmarketer_is_said(connection, vendor):
    vendor.post(INSIGHTS_URL).mock(side_effect=httpx.ConnectError("refused"))
    assert "could not be reached" in ask(connection).error


def test_a_query_the_builder_refuses_never_leaves(connection, vendor):
    route = vendor.post(INSIGHTS_URL).mock(return_value=httpx.Response(200, json=[]))
    result = ask(connection, interval="fortnight")
    assert "cannot be sent" in result.error and "unknown insights interval" in result.error
    assert route.call_count == 0


def test_metrics_are_event_count_and_every_state_and_statistic_key():
    event_type_make()
    assert [key for key, _ in insight_metrics()] == ["event-count", "qualified", "converted", "turnover"]


def test_linear_intervals_are_lines_and_seasonality_bars():
    two = Insights(rows=[*ROWS, {"identifier": "my-project", "interval": "2026-11-01", "values": {"event-count": 1}}])
    chart = insights_chart(two, metrics=["event-count", "turnover"], interval="day")
    assert chart["type"] == "line" and chart["labels"] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert {d["label"]: d["data"] for d in chart["datasets"]} == {
        "event-count": [1, 10, 3],
        "turnover": [0, 6532, 1275],
    }

    weekdays = Insights(rows=[{"identifier": "p", "interval": n, "values": {"event-count": n}} for n in (10, 2, 1)])
    chart = insights_chart(weekdays, metrics=["event-count"], interval="dayOfMonth")
    assert chart["type"] == "bar" and chart["labels"] == ["1", "2", "10"]
