"""Operations in a real browser: the live stream follows new events, a bulk replay of 200 deliveries runs its
progress bar to 100 % on the real worker and the sandbox receives them again."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import console_login, htmx_idle, wait_until
from tests.factories import (
    event_store,
    event_type_make,
    route_make,
    sandbox_connection_make,
    source_make,
    user_make,
    vendor_connection_make,
    webmarketer_connection_make,
)
from tracking.models import BulkReplay, Delivery
from tracking.services.ingest import events_ingest

pytestmark = pytest.mark.integration


def test_the_live_stream_shows_a_new_event_and_opens_it(page, transactional_db):
    user_make("Auditor", password="pw-a")
    route_make(event_type_make(), webmarketer_connection_make())
    source, _ = source_make()
    console_login(page, "auditor", "pw-a")
    page.goto("/live/")
    expect(page.locator("#live-rows tr")).to_have_count(0)

    (result,) = events_ingest(
        source=source,
        items=[{"eventType": "contact-form", "nonce": "live-1", "data": {"email": "a@b.co", "message": "x"}}],
    )

    row = page.locator("#live-rows tr.live-event")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("contact-form")
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#live-state")).to_contain_text("paused")
    page.get_by_role("button", name="Resume").click()
    row.get_by_role("link", name="contact-form").click()
    expect(page).to_have_url(f"/events/{result.event.uuid}/")


def test_a_bulk_replay_of_200_deliveries_runs_to_100_percent_and_sends_them_again(
    page, celery_worker, sandbox, sandbox_url
):
    user_make("Marketing", password="pw-m")
    connection = sandbox_connection_make(sandbox_url, timeout_seconds=5, batch_size=50)
    route = route_make(event_type_make(), connection)
    for i in range(200):
        event_store(
            route.event_type, {"email": f"p{i}@example.com", "message": "hi"}, nonce=f"bulk-{i}", routes=[route]
        )
    Delivery.objects.update(status="failed", last_error="HTTP 503 (given up)")

    console_login(page, "marketing", "pw-m")
    page.goto("/events/?delivery_status=failed")
    htmx_idle(page)
    page.get_by_role("link", name="Replay everything matching these filters…").click()
    expect(page.locator("#bulk-count")).to_have_text("200")
    page.get_by_role("button", name="Start the replay").click()

    expect(page.locator("#bulk-percent")).to_have_text("100 %", timeout=120_000)
    expect(page.locator("#bulk-progress")).to_have_attribute("data-status", "done")
    expect(page.locator("#bulk-done")).to_have_text("200")
    job = BulkReplay.objects.get()
    assert (job.status, job.done, job.failed, job.total) == ("done", 200, 0, 200)
    wait_until(
        lambda: Delivery.objects.filter(generation=1, status="delivered").count() == 200,
        timeout=120,
        message="the 200 replayed deliveries to be delivered",
    )
    received = sandbox.get("/__sandbox__/webmarketer/events").json()
    assert received["count"] == 200


def test_a_delivered_row_is_sent_again_after_a_confirmation_and_the_rows_update_in_place(page, transactional_db):
    user_make("Marketing", password="pw-m")
    event_type = event_type_make()
    tracify = route_make(event_type, vendor_connection_make("tracify"))
    event = event_store(event_type, {"email": "a@b.co", "message": "x"}, nonce="n-1", routes=[tracify])
    Delivery.objects.update(status="delivered")

    console_login(page, "marketing", "pw-m")
    page.goto(f"/events/{event.uuid}/")
    expect(page.get_by_role("button", name="Replay the ones not delivered (same nonce)")).to_be_disabled()
    page.get_by_role("button", name="Send again…").click()
    expect(page.locator(".confirm-resend")).to_contain_text("tracify (Tracify)")
    page.get_by_role("button", name="Yes, send to tracify again").click()

    expect(page.locator("#deliveries tr[id^=delivery-]")).to_have_count(2)
    expect(page.locator("#deliveries .messages")).to_contain_text("1 deliveries queued again")
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1  # no reload


def test_marketing_pauses_and_resumes_a_connection_from_the_list(page, transactional_db):
    user_make("Marketing", password="pw-m")
    connection = vendor_connection_make("tracify")

    console_login(page, "marketing", "pw-m")
    page.goto("/connections/")
    ops = page.locator(f"#ops-{connection.pk}")
    ops.get_by_role("button", name="Pause").click()
    expect(ops.locator(".badge.paused")).to_be_visible()
    connection.refresh_from_db()
    assert connection.paused
    ops.get_by_role("button", name="Resume").click()
    expect(ops.locator(".badge.ok").first).to_have_text("sending")


def test_cancel_stops_a_bulk_replay_halfway_and_the_bar_says_so(page, transactional_db, monkeypatch):
    from tracking.services import bulk_replay

    # The test plays the worker, chunk by chunk: no job message reaches a worker of the session.
    monkeypatch.setattr(bulk_replay, "_enqueue", lambda job_id: None)
    bulk_replay_chunk = bulk_replay.bulk_replay_chunk

    user_make("Marketing", password="pw-m")
    route = route_make(event_type_make(), webmarketer_connection_make())
    for i in range(200):
        event_store(route.event_type, {"email": f"p{i}@example.com", "message": "hi"}, nonce=f"c-{i}", routes=[route])
    Delivery.objects.update(status="failed", last_error="HTTP 503 (given up)")
    console_login(page, "marketing", "pw-m")
    page.goto("/events/?delivery_status=failed")
    htmx_idle(page)
    page.get_by_role("link", name="Replay everything matching these filters…").click()
    page.get_by_role("button", name="Start the replay").click()
    expect(page.locator("#bulk-progress")).to_be_visible()
    job = BulkReplay.objects.get()

    assert bulk_replay_chunk(job_id=job.pk, size=100)  # the job's first half, as a worker would run it
    expect(page.locator("#bulk-percent")).to_have_text("50 %")
    page.get_by_role("button", name="Cancel the replay").click()
    expect(page.locator("#bulk-progress")).to_contain_text("stopping after this chunk")
    assert not bulk_replay_chunk(job_id=job.pk, size=100)  # the next chunk sees the cancel and stops

    expect(page.locator("#bulk-progress")).to_have_attribute("data-status", "cancelled")
    expect(page.locator("#bulk-done")).to_have_text("100")
    assert Delivery.objects.filter(generation=1).count() == 100  # the second half was never replayed
