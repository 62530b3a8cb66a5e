"""The dashboard's chart reads: rollup rows in the window, bucketed by hour or day, zeros filled in; the lead
funnel from the lead changes' latest values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import event_store, event_type_make, webmarketer_connection_make
from tracking.models import LatencyCount
from tracking.selectors import (
    Window,
    chart_deliveries,
    chart_events,
    chart_latency,
    chart_trash,
    latency_quantile,
    lead_funnel,
)
from tracking.services.leads import lead_change_record
from tracking.services.rollups import counts_add, latencies_add

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, tzinfo=UTC)
DAY = Window(T0, T0 + timedelta(hours=24), "hour")
WEEK = Window(T0, T0 + timedelta(days=7), "day")


def add(hours: float, metric: str, n: int, *, ref: str = "", connection: int = 0, status: str = "") -> None:
    counts_add({(T0 + timedelta(hours=hours), metric, ref, connection, status): n})


def test_events_are_stacked_by_type_with_the_invalid_ones_beside():
    add(0, "event", 3, ref="contact-form", status="ok")
    add(0, "event", 1, ref="purchase", status="ok")
    add(5, "event", 2, ref="contact-form", status="ok")
    add(5, "event", 4, ref="contact-form", status="invalid")
    add(24, "event", 100, ref="contact-form", status="ok")  # the next day: outside the window
    add(-1, "event", 100, ref="contact-form", status="ok")  # before it

    chart = chart_events(DAY)

    assert len(chart["labels"]) == 24 and chart["labels"][0] == "2026-11-20 00:00"
    by_label = {d["label"]: d for d in chart["datasets"]}
    assert by_label["contact-form"]["data"][:6] == [3, 0, 0, 0, 0, 2] and sum(by_label["contact-form"]["data"]) == 5
    assert by_label["purchase"]["data"][0] == 1
    assert by_label["invalid"]["data"][5] == 4 and by_label["invalid"]["stack"] == "invalid"
    assert {by_label["contact-form"]["stack"], by_label["purchase"]["stack"]} == {"valid"}


def test_a_week_is_drawn_in_days():
    add(1, "event", 3, ref="contact-form", status="ok")
    add(23, "event", 2, ref="contact-form", status="ok")
    add(24 * 6 + 5, "event", 7, ref="contact-form", status="ok")

    chart = chart_events(WEEK)

    assert chart["labels"] == [f"2026-11-{d}" for d in range(20, 27)]
    assert chart["datasets"][0]["data"] == [5, 0, 0, 0, 0, 0, 7]


def test_deliveries_per_connection_by_final_status():
    wm = webmarketer_connection_make(name="Webmarketer")
    add(1, "delivery", 8, connection=wm.pk, status="delivered")
    add(2, "delivery", 2, connection=wm.pk, status="failed")
    add(3, "delivery", 5, connection=999, status="delivered")

    chart = chart_deliveries(DAY)

    assert chart["labels"] == ["Webmarketer", "connection #999 (deleted)"]
    assert {d["label"]: d["data"] for d in chart["datasets"]} == {"delivered": [8, 5], "failed": [2, 0]}


def test_latency_percentiles_come_from_the_histogram():
    assert latency_quantile({1: 50, 10: 45, 20: 5}, 0.5) == round(LatencyCount.upper_ms(1) / 1000, 3)
    assert latency_quantile({1: 50, 10: 45, 20: 5}, 0.95) == round(LatencyCount.upper_ms(10) / 1000, 3)
    assert latency_quantile({}, 0.5) is None

    wm = webmarketer_connection_make(name="Webmarketer")
    latencies_add(
        {(T0, wm.pk, 14): 90, (T0 + timedelta(hours=2), wm.pk, 20): 10, (T0 - timedelta(hours=1), wm.pk, 40): 500}
    )
    chart = chart_latency(DAY)

    assert chart["labels"] == ["Webmarketer"]
    p50, p95 = chart["datasets"]
    assert (p50["label"], p50["data"]) == ("p50", [1.28])  # bucket 14 is [905, 1,280) ms
    assert p95["data"] == [round(LatencyCount.upper_ms(20) / 1000, 3)]


def test_trash_per_day_and_reason():
    add(1, "trash", 2, ref="contact-form", status="invalid-field: phone")
    add(30, "trash", 1, ref="contact-form", status="invalid-field: phone")
    add(31, "trash", 4, ref="call-me-back", status="missing-field: email")

    chart = chart_trash(WEEK)

    assert {d["label"]: d["data"][:3] for d in chart["datasets"]} == {
        "invalid-field: phone": [2, 1, 0],
        "missing-field: email": [0, 4, 0],
    }


def test_the_funnel_counts_each_leads_latest_state_and_turnover():
    contact_form = event_type_make()
    leads = [
        event_store(contact_form, {"email": f"{i}@example.com"}, nonce=f"lead-{i}", received_at=T0 + timedelta(hours=i))
        for i in range(3)
    ]
    outside = event_store(contact_form, {"email": "o@example.com"}, nonce="old", received_at=T0 - timedelta(days=2))
    add(0, "event", 3, ref="contact-form", status="ok")
    add(0, "event", 9, ref="purchase", status="ok")  # not a lead type

    def change(event, key, value, kind="state"):
        lead_change_record(event=event, kind=kind, storage_key=key, value=value)

    change(leads[0], "qualified", 1)
    change(leads[1], "qualified", 1)
    change(leads[1], "qualified", 0)  # undone: the latest value counts
    change(leads[2], "qualified", 1)
    change(leads[2], "converted", 1)
    change(leads[2], "turnover", 100, kind="statistic")
    change(leads[2], "turnover", 250, kind="statistic")
    change(outside, "qualified", 1)
    change(outside, "turnover", 1000, kind="statistic")

    funnel = lead_funnel(DAY)

    assert funnel["labels"] == ["Leads", "qualified", "converted"]
    assert funnel["datasets"][0]["data"] == [3, 2, 1]
    assert funnel["statistics"] == [{"key": "turnover", "label": "turnover", "total": "250.00"}]
