"""Bulk replay pages: the confirmation counts what it touches and names the vendors without dedup; the job page
shows progress and cancels; by role."""

from __future__ import annotations

import pytest

from tests.factories import event_store, event_type_make, route_make, user_make, vendor_connection_make
from tracking.models import BulkReplay, Delivery

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_queue(monkeypatch):
    monkeypatch.setattr("tracking.tasks.bulk_replay_task.delay", lambda pk: None)


@pytest.fixture
def events():
    event_type = event_type_make()
    routes = (
        route_make(event_type, vendor_connection_make("tracify")),
        route_make(event_type, vendor_connection_make("algonomy")),
    )
    made = [event_store(event_type, {"email": f"p{i}@b.co"}, nonce=f"n-{i}", routes=routes) for i in range(4)]
    Delivery.objects.filter(connection__kind="tracify").update(status="failed")
    Delivery.objects.filter(connection__kind="algonomy").update(status="delivered")
    return made


def test_the_confirmation_counts_the_filtered_deliveries_and_names_vendors_without_dedup(client, events):
    client.force_login(user_make("Marketing"))

    html = client.get("/bulk-replay/new", {"delivery_status": "failed"}).content.decode()

    assert 'id="bulk-count">4<' in html
    failed_only = client.get("/bulk-replay/new", {"q": "p1@b.co"}).content.decode()
    assert 'id="bulk-count">1<' in failed_only and "1 delivery was already delivered" in failed_only
    assert "algonomy (Algonomy rCDP)" in failed_only and "twice" in failed_only


def test_ticked_events_start_a_job_and_the_page_shows_its_progress(client, events):
    client.force_login(user_make("Marketing"))
    ticked = {"ticked": "1", "event": [events[0].pk, events[1].pk]}
    assert 'id="bulk-count">2<' in client.post("/bulk-replay/new", ticked).content.decode()

    response = client.post("/bulk-replay/new", {**ticked, "start": "1"})

    job = BulkReplay.objects.get()
    assert response.status_code == 302 and response.url == f"/bulk-replay/{job.pk}/"
    assert (job.total, job.criteria["event_ids"], job.description) == (
        2,
        [events[0].pk, events[1].pk],
        "2 ticked events",
    )
    page = client.get(response.url).content.decode()
    assert 'hx-trigger="every 1s"' in page and "Cancel the replay" in page
    client.post(f"/bulk-replay/{job.pk}/cancel")
    job.refresh_from_db()
    assert job.status == "cancelled"


def test_including_delivered_ones_needs_the_box_ticked(client, events):
    client.force_login(user_make("Marketing"))
    client.post("/bulk-replay/new", {"start": "1", "include_delivered": "1"})
    job = BulkReplay.objects.get()
    assert (job.include_delivered, job.total) == (True, 8)


def test_auditors_follow_a_job_but_cannot_start_or_cancel_one(client, events):
    job = BulkReplay.objects.create(total=3, status="running")
    client.force_login(user_make("Auditor"))
    page = client.get(f"/bulk-replay/{job.pk}/").content.decode()
    assert "Cancel the replay" not in page
    assert client.get("/bulk-replay/new").status_code == 403
    assert client.post("/bulk-replay/new", {"start": "1"}).status_code == 403
    assert client.post(f"/bulk-replay/{job.pk}/cancel").status_code == 403
    assert "Replay the ticked" not in client.get("/events/").content.decode()


def test_sales_open_none_of_it(client, events):
    job = BulkReplay.objects.create(total=3)
    client.force_login(user_make("Sales"))
    assert client.get("/bulk-replay/new").status_code == 403
    assert client.get(f"/bulk-replay/{job.pk}/").status_code == 403


def test_the_event_log_filters_by_connection(client, events):
    client.force_login(user_make("Marketing"))
    tracify = Delivery.objects.filter(connection__kind="tracify").first().connection
    page = client.get("/events/", {"connection": tracify.pk, "delivery_status": "delivered"}).context["page"]
    assert page.items == []
    assert len(client.get("/events/", {"connection": tracify.pk}).context["page"].items) == 4


def test_the_list_shows_the_latest_jobs_to_auditors_not_to_sales(client):
    BulkReplay.objects.create(total=3, description="events matching connection tracify", status="done", done=3)
    client.force_login(user_make("Auditor"))
    assert "events matching connection tracify" in client.get("/bulk-replay/").content.decode()
    client.force_login(user_make("Sales", username="sam"))
    assert client.get("/bulk-replay/").status_code == 403


def test_the_date_filters_bound_the_selection(client, events):
    from datetime import timedelta

    from django.utils import timezone

    client.force_login(user_make("Marketing"))
    today = timezone.now().date()
    tomorrow = (today + timedelta(days=1)).isoformat()
    assert 'id="bulk-count">4<' in client.get("/bulk-replay/new", {"since": today.isoformat()}).content.decode()
    assert 'id="bulk-count">0<' in client.get("/bulk-replay/new", {"since": tomorrow}).content.decode()
    assert (
        'id="bulk-count">0<'
        in client.get("/bulk-replay/new", {"until": (today - timedelta(days=1)).isoformat()}).content.decode()
    )
