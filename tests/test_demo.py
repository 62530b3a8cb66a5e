"""`make run`'s demo: five vendors connected to the sandbox, purchase routed to all five, idempotent."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from tests.conftest import ROOT, _free_port, _stop, _wait
from tracking.models import AuditEntry, Event, EventType, Route, VendorConnection
from tracking.services.connections import connection_test
from tracking.services.routes import route_preview

pytestmark = pytest.mark.django_db

KINDS = {"webmarketer", "acquia", "algonomy", "tracardi", "tracify"}


def seed(sandbox_url: str, events: int = 6) -> str:
    out = io.StringIO()
    call_command("seed_demo", sandbox_url=sandbox_url, events=events, stdout=out)
    return out.getvalue()


def state() -> dict:
    """Everything the demo seeds, as comparable values."""
    return {
        "connections": sorted(
            (c.name, c.kind, c.base_url, c.auth_url, repr(c.settings), repr(c.secrets), c.enabled)
            for c in VendorConnection.objects.all()
        ),
        "routes": sorted(
            (r.event_type.reference, r.connection.name, r.vendor_event_name, repr(r.mapping), repr(r.options))
            for r in Route.objects.select_related("event_type", "connection")
        ),
        "event_types": sorted(EventType.objects.values_list("reference", flat=True)),
        "events": Event.objects.count(),
        "audit": AuditEntry.objects.count(),
    }


def test_the_demo_connects_all_five_vendors_to_the_sandbox(sandbox, sandbox_url):
    output = seed(sandbox_url)

    connections = {c.kind: c for c in VendorConnection.objects.all()}
    assert set(connections) == KINDS
    for connection in connections.values():
        report = connection_test(connection=connection)
        assert report.ok, (connection.name, report.message)
    # Credentials the sandbox issued, never printed.
    assert connections["algonomy"].secrets["client_secret"] not in output
    assert "purchase is routed to: acquia-sandbox, algonomy-sandbox, tracardi-sandbox, tracify-sandbox, " in output


def test_purchase_is_routed_to_all_five_and_every_demo_purchase_would_be_sent(sandbox, sandbox_url):
    seed(sandbox_url, events=9)

    routes = Route.objects.filter(event_type__reference="purchase").select_related("connection")
    assert {r.connection.kind for r in routes} == KINDS
    purchases = list(Event.objects.filter(event_type_ref="purchase"))
    # a third of the traffic, the late order Tracardi refuses, and the one without advertising consent
    assert len(purchases) == 5
    for event in purchases:
        for route in routes:
            preview = route_preview(
                connection=route.connection,
                event=event,
                vendor_event_name=route.vendor_event_name,
                mapping=route.mapping,
                options=route.options,
            )
            assert (preview.refusal, preview.problem) == ("", ""), route.connection.kind
            assert len(preview.requests) == 1


def test_running_the_demo_seed_twice_gives_the_same_state(sandbox, sandbox_url):
    seed(sandbox_url)
    first = state()

    seed(sandbox_url)

    assert state() == first


def test_a_sandbox_that_lost_its_state_learns_the_demos_credentials_again(sandbox, sandbox_url, tmp_path):
    """The demo registers the credentials it has instead of making new ones."""
    seed(sandbox_url)
    kept = {c.name: (c.settings, c.secrets) for c in VendorConnection.objects.exclude(kind="webmarketer")}
    routes = state()["routes"]
    port = _free_port()
    fresh = subprocess.Popen(
        [sys.executable, "manage.py", "run_sandbox", "--port", str(port), "--state", str(tmp_path / "s.json")], cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/__sandbox__/health", "a fresh sandbox", fresh)

        seed(url)

        for connection in VendorConnection.objects.all():
            assert connection.base_url.startswith(url + "/")
            assert connection_test(connection=connection).ok, connection.name
            if connection.kind != "webmarketer":
                assert (connection.settings, connection.secrets) == kept[connection.name]
        assert state()["routes"] == routes
    finally:
        _stop(fresh)


# -- the demo tells one story --------------------------------------------------------------------------------
def test_the_demo_types_are_in_the_sandboxs_webmarketer_and_in_sync(sandbox, sandbox_url):
    from tracking.services.event_types import event_type_sync_state
    from tracking.services.webmarketer import event_types_pull

    seed(sandbox_url)

    demo_types = EventType.objects.filter(reference__in=["contact-form", "call-me-back", "purchase"])
    assert {event_type_sync_state(t) for t in demo_types} == {"synced"}
    # "Sync now" finds the three there, alike on both sides.
    summary = event_types_pull(connection=VendorConnection.objects.get(kind="webmarketer"))
    assert (summary.unchanged, summary.created, summary.updated, summary.conflicts) == (3, [], [], [])
    # Webmarketer's change (phone required on contact-form) came here with the pull.
    phone = next(f for f in EventType.objects.get(reference="contact-form").fields if f["storageKey"] == "phone")
    assert phone["optional"] is False


def test_the_demo_leaves_fixable_events_in_the_trash_inbox(sandbox, sandbox_url):
    from tracking.models import TrashedEvent
    from tracking.services.webmarketer import trash_error_keys, trash_fix_fields, trash_replay

    seed(sandbox_url)

    trashed = list(TrashedEvent.objects.filter(resolved=False).select_related("event"))
    assert len(trashed) == 3
    for item in trashed:
        assert item.event is not None and item.event_type_ref == "contact-form"
        assert [e["type"] for e in item.errors] == ["missing-field"]
        assert trash_error_keys(item.errors) == {"phone"}
        phone = next(f for f in trash_fix_fields(trashed=item) if f["storageKey"] == "phone")
        assert phone["optional"] is False
    fixed = trashed[0]
    marketing = User.objects.get(username="marketing")
    delivery = trash_replay(trashed=fixed, data={**fixed.event.data, "phone": "06 12 34 56 78"}, user=marketing)
    assert delivery.status == "pending"


def test_the_demo_has_a_failed_delivery_that_says_why(sandbox, sandbox_url):
    from tracking.models import Delivery
    from tracking.services.demo import FAILURE

    seed(sandbox_url)

    failed = list(Delivery.objects.filter(status="failed").select_related("connection"))
    assert [d.connection.kind for d in failed] == ["tracardi"]
    assert FAILURE in failed[0].last_error
    # The fault was only for that order: the sandbox injects nothing afterwards.
    assert sandbox.get("/__sandbox__/faults").json()["fail_status"] is None
    assert not Delivery.objects.exclude(status__in=["delivered", "failed", "suppressed"]).exists()


def test_the_demo_has_a_purchase_whose_attribution_deliveries_are_suppressed_with_the_reason(
    sandbox, sandbox_url, client
):
    from tracking.models import Delivery, Event
    from tracking.services.demo import NO_ADS_NONCE

    seed(sandbox_url)

    event = Event.objects.get(nonce=NO_ADS_NONCE)
    statuses = {d.connection.kind: (d.status, d.last_error) for d in event.deliveries.select_related("connection")}
    assert statuses["tracify"] == ("suppressed", "suppressed: no consent for advertising")
    assert statuses["webmarketer"] == ("suppressed", "suppressed: no consent for advertising")
    assert {statuses[k][0] for k in ("acquia", "algonomy")} == {"delivered"}
    assert not Delivery.objects.filter(status="suppressed").exclude(event=event).exists()
    # Never sent: the sandbox's Tracify holds no event of that order.
    order = event.data["order_id"]
    tracify = sandbox.get("/__sandbox__/tracify/events").json()
    assert order not in str(tracify)
    # Its page says so, as a new user finds it.
    client.force_login(User.objects.get(username="marketing"))
    page = client.get(f"/events/{event.uuid}/").content.decode()
    assert "Suppressed (no consent)" in page and "suppressed: no consent for advertising" in page


def test_the_demo_has_a_qualified_lead_and_a_converted_one_with_turnover(sandbox, sandbox_url):
    from tracking.models import LeadChange, LeadDelivery

    seed(sandbox_url)

    by_event: dict[int, dict[str, str]] = {}
    for change in LeadChange.objects.all():
        by_event.setdefault(change.event_id, {})[change.storage_key] = str(change.value)
    assert sorted(by_event.values(), key=len) == [
        {"qualified": "1.00"},
        {"qualified": "1.00", "converted": "1.00", "turnover": "1200.00"},
    ]
    assert set(LeadDelivery.objects.values_list("status", flat=True)) == {"delivered"}
    received = sandbox.get("/__sandbox__/webmarketer/events").json()["data"]
    assert any(e["statistics"].get("turnover") for e in received)


def test_seeding_again_keeps_the_token_printed_first_and_says_how_to_rotate(sandbox, sandbox_url, client):
    first = seed(sandbox_url)
    token = next(line.split("=", 1)[1] for line in first.splitlines() if line.startswith("TOKEN="))

    again = seed(sandbox_url)

    assert token not in again and "TOKEN=" not in again
    assert f"starts with {token[:10]}" in again and "create_source --rotate demo-website" in again
    response = client.post(
        "/api/v1/events",
        data='{"eventType": "call-me-back", "data": {"phone": "+32 470 12 34 56"}}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 202


def test_seeding_again_keeps_what_staff_edited_in_the_console(sandbox, sandbox_url):
    seed(sandbox_url)
    route = Route.objects.get(event_type__reference="purchase", connection__kind="tracify")
    Route.objects.filter(pk=route.pk).update(vendor_event_name="order")
    EventType.objects.filter(reference="call-me-back").update(name="Call back (edited)")

    seed(sandbox_url)

    assert Route.objects.get(pk=route.pk).vendor_event_name == "order"
    assert EventType.objects.get(reference="call-me-back").name == "Call back (edited)"


def test_make_run_takes_the_ports_to_use():
    dry = subprocess.run(
        ["make", "-n", "run", "PORT=8100", "SANDBOX_PORT=8865"], cwd=ROOT, capture_output=True, text=True, check=True
    )

    assert "manage.py runstack --port 8100 --sandbox-port 8865" in dry.stdout
