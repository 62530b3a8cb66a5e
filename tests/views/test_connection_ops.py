"""Connection health and operations on the connection pages, by role."""

from __future__ import annotations

import pytest

from tests.factories import user_make, vendor_connection_make
from tracking.models import AuditEntry, VendorConnection

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


@pytest.fixture
def tracify():
    return vendor_connection_make("tracify")


def test_the_list_and_the_page_show_health_and_the_pause_switch(client, tracify):
    client.force_login(user_make("Marketing"))
    listed = client.get("/connections/").content.decode()
    page = client.get(f"/connections/{tracify.pk}/").content.decode()
    for html in (listed, page):
        assert f'id="ops-{tracify.pk}"' in html and ">Pause</button>" in html
    assert "p95 latency (1 h)" in page and "Deliveries due" in page


def test_marketing_pauses_and_resumes_in_place(client, tracify):
    client.force_login(user_make("Marketing"))

    paused = client.post(f"/connections/{tracify.pk}/pause", {"paused": "1"}, headers=HTMX).content.decode()

    assert "<html" not in paused and "badge paused" in paused and ">Resume</button>" in paused
    assert VendorConnection.objects.get().paused
    client.post(f"/connections/{tracify.pk}/pause", {"paused": "0"}, headers=HTMX)
    assert not VendorConnection.objects.get().paused
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "connection.pause",
        "connection.resume",
    ]


def test_auditors_read_health_but_cannot_pause_or_reset(client, tracify):
    client.force_login(user_make("Auditor"))
    html = client.get(f"/connections/{tracify.pk}/").content.decode()
    assert "Deliveries due" in html and ">Pause</button>" not in html
    assert client.post(f"/connections/{tracify.pk}/pause", {"paused": "1"}).status_code == 403
    assert client.post(f"/connections/{tracify.pk}/circuit-reset").status_code == 403
    assert not VendorConnection.objects.get().paused and not AuditEntry.objects.exists()


def test_sales_can_do_none_of_it(client, tracify):
    client.force_login(user_make("Sales"))
    assert client.get("/connections/").status_code == 403
    assert client.post(f"/connections/{tracify.pk}/pause", {"paused": "1"}).status_code == 403
    assert client.post(f"/connections/{tracify.pk}/circuit-reset").status_code == 403
