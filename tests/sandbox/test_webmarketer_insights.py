"""The Webmarketer sandbox's event insights: counts and statistic sums per interval from the events it holds,
grouped by project or event type, and 400 in words for a query it refuses."""

from __future__ import annotations

from datetime import date

import pytest

from tracking.sandbox.webmarketer_insights import interval_of

API = "/webmarketer/api/v1/projects/my-project"
QUERY = {"since": "2026-01-01T00:00:00Z", "until": "2026-12-31T23:59:59Z", "groupBy": "project", "filter": None}


@pytest.fixture
def client(webmarketer_client):
    return webmarketer_client


def send(client, event_type: str, when: str, nonce: str) -> str:
    body = {"projectId": "my-project", "eventType": event_type, "eventDate": when, "nonce": nonce, "data": {}}
    response = client.post("/webmarketer/api/v1/events", json=body)
    assert response.status_code == 200
    return response.json()


@pytest.fixture
def held(client):
    """Four events over two days and two types; one qualified with a turnover of 1,500.50."""
    ids = [
        send(client, "contact-form", "2026-03-02T09:00:00Z", "a"),
        send(client, "contact-form", "2026-03-02T17:00:00Z", "b"),
        send(client, "purchase", "2026-03-03T10:00:00Z", "c"),
        send(client, "contact-form", "2025-12-31T10:00:00Z", "before"),  # outside since/until
    ]
    assert client.patch(f"{API}/events/{ids[0]}/states/qualified", json={"value": 1}).status_code == 200
    assert client.patch(f"{API}/events/{ids[0]}/statistics/turnover", json={"value": 1500.5}).status_code == 200
    assert client.patch(f"{API}/events/{ids[1]}/states/qualified", json={"value": 0}).status_code == 200
    return ids


def test_it_counts_events_and_sums_statistics_per_day(client, held):
    metrics = ["event-count", "qualified", "turnover", "no-such-key"]
    response = client.post(f"{API}/events/insights", json={**QUERY, "metrics": metrics, "interval": "day"})

    assert response.status_code == 200
    assert response.json() == [
        {
            "identifier": "my-project",
            "interval": "2026-03-02",
            "values": {"event-count": 2, "qualified": 1, "turnover": 1500.5, "no-such-key": 0},
        },
        {
            "identifier": "my-project",
            "interval": "2026-03-03",
            "values": {"event-count": 1, "qualified": 0, "turnover": 0, "no-such-key": 0},
        },
    ]


def test_it_breaks_down_by_event_type_with_a_filter(client, held):
    query = {**QUERY, "metrics": ["event-count"], "interval": "month", "groupBy": "event-type"}

    both = client.post(f"{API}/events/insights", json=query).json()
    only = client.post(f"{API}/events/insights", json={**query, "filter": ["purchase"]}).json()

    assert [(r["identifier"], r["interval"], r["values"]["event-count"]) for r in both] == [
        ("contact-form", "2026-03-01", 2),
        ("purchase", "2026-03-01", 1),
    ]
    assert [r["identifier"] for r in only] == ["purchase"]


def test_non_linear_intervals_answer_the_periods_number(client, held):
    answer = client.post(f"{API}/events/insights", json={**QUERY, "metrics": ["event-count"], "interval": "dayOfWeek"})

    # 2026-03-02 is a Monday, 2026-03-03 a Tuesday.
    assert [(r["interval"], r["values"]["event-count"]) for r in answer.json()] == [(1, 2), (2, 1)]


@pytest.mark.parametrize(
    ("day", "interval", "expected"),
    [
        (date(2026, 3, 4), "week", "2026-03-02"),
        (date(2026, 8, 4), "quarter", "2026-07-01"),
        (date(2026, 8, 4), "semester", "2026-07-01"),
        (date(2026, 8, 4), "year", "2026-01-01"),
        (date(2026, 8, 4), "dayOfYear", 216),
        (date(2026, 8, 4), "weekOfYear", 32),
        (date(2026, 8, 4), "quarterOfYear", 3),
        (date(2026, 8, 4), "semesterOfYear", 2),
        (date(2026, 8, 4), "monthOfYear", 8),
        (date(2026, 8, 4), "dayOfMonth", 4),
    ],
)
def test_intervals(day, interval, expected):
    assert interval_of(day, interval) == expected


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"interval": "fortnight"}, "interval must be one of: day, week"),
        ({"groupBy": "source"}, "groupBy must be one of: project, event-type"),
        ({"metrics": []}, "metrics must be a non-empty array"),
        ({"since": "yesterday"}, "since must be an RFC3339 date-time"),
    ],
)
def test_a_query_it_cannot_answer_gets_a_400_saying_why(client, change, message):
    body = {**QUERY, "metrics": ["event-count"], "interval": "day", **change}

    response = client.post(f"{API}/events/insights", json=body)

    assert response.status_code == 400
    assert message in response.json()["message"]


def test_insights_need_a_token(client):
    del client.headers["Authorization"]
    response = client.post(f"{API}/events/insights", json={**QUERY, "metrics": ["event-count"], "interval": "day"})
    assert response.status_code == 401
