"""`make run`'s demo: five vendors connected to the sandbox, purchase routed to all five, idempotent."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
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
    assert len(purchases) == 3
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
