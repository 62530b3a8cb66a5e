"""Pause and resume end to end: the real worker and beat, the real sandbox. A paused connection sends nothing
while another one goes on; resume drains what stayed due."""

from __future__ import annotations

import pytest

from tests.conftest import wait_until
from tests.factories import event_type_make, route_make, sandbox_connection_make, source_make, user_make
from tracking.models import Attempt, Delivery
from tracking.services.ingest import events_ingest

pytestmark = pytest.mark.integration
HTMX = {"HX-Request": "true"}


def test_a_paused_connection_keeps_its_deliveries_due_and_resume_drains_them(
    client, celery_worker, sandbox, sandbox_url
):
    paused = sandbox_connection_make(sandbox_url, name="wm-paused", timeout_seconds=5)
    running = sandbox_connection_make(sandbox_url, name="wm-running", timeout_seconds=5)
    event_type = event_type_make()
    route_make(event_type, paused)
    route_make(event_type, running)
    client.force_login(user_make("Marketing"))
    assert client.post(f"/connections/{paused.pk}/pause", {"paused": "1"}, headers=HTMX).status_code == 200
    source, _ = source_make()

    events_ingest(
        source=source,
        items=[
            {"eventType": "contact-form", "nonce": f"p-{i}", "data": {"email": f"p{i}@b.co", "message": "x"}}
            for i in range(5)
        ],
    )

    # The other connection's deliveries go through (its wake-ups and beat's sweeps ran meanwhile) …
    wait_until(
        lambda: Delivery.objects.filter(connection=running, status="delivered").count() == 5,
        timeout=60,
        message="the running connection's deliveries",
    )
    # … the paused one's are still due, never tried.
    assert set(Delivery.objects.filter(connection=paused).values_list("status", flat=True)) == {"pending"}
    assert not Attempt.objects.filter(delivery__connection=paused).exists()
    html = client.get(f"/connections/{paused.pk}/").content.decode()
    assert 'class="due">5<' in html and "badge paused" in html

    client.post(f"/connections/{paused.pk}/pause", {"paused": "0"}, headers=HTMX)

    wait_until(
        lambda: Delivery.objects.filter(connection=paused, status="delivered").count() == 5,
        timeout=60,
        message="the resumed connection to drain",
    )
