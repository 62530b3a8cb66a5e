"""Promotion: the configuration exported from one hub, applied to a fresh one, gives the same configuration."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command

from tests.config.conftest import staging_hub, stored_secrets
from tracking.config.hubfile import hub_apply, hub_export, hub_file_read
from tracking.models import AuditEntry, EventType, Route, Source, VendorConnection
from tracking.services.routes import route_preview

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_export_applied_to_a_fresh_hub_gives_the_same_configuration(monkeypatch, tmp_path):
    environ = staging_hub()
    custom = Group.objects.create(name="Agency")
    custom.permissions.set(Group.objects.get(name="Auditor").permissions.filter(codename__startswith="view_route"))
    staging, secrets = hub_export(), stored_secrets()
    (tmp_path / "hub.yaml").write_text(staging)

    # A fresh hub: empty tables, then what migrate leaves (permissions, the role groups).
    call_command("flush", interactive=False, verbosity=0)
    assert not VendorConnection.objects.exists() and Group.objects.filter(name="Marketing").exists()
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    out = io.StringIO()
    call_command("hub", "apply", str(tmp_path / "hub.yaml"), stdout=out)

    assert "Plan: 16 to create, 0 to change, 0 to archive." in out.getvalue()
    assert hub_export() == staging
    assert stored_secrets() == secrets
    # The tokens are the new hub's own, printed once.
    for source in Source.objects.all():
        assert f"Source {source.name}: its token (shown once, keep it safe):\n  {source.token_prefix}" in out.getvalue()
    assert AuditEntry.objects.filter(action="route.create").count() == Route.objects.count() == 6
    assert EventType.objects.get(reference="purchase").routes.filter(enabled=True).count() == 4
    # Applied again: nothing to do.
    assert hub_apply(hub_file_read(staging, environ=environ)).changes == []


def test_the_promoted_routes_build_their_requests_for_a_new_event(tmp_path):
    from tests.factories import PURCHASE
    from tracking.demo import purchase_data
    from tracking.services.ingest import events_ingest

    environ = staging_hub()
    text = hub_export()
    call_command("flush", interactive=False, verbosity=0)
    hub_apply(hub_file_read(text, environ=environ))

    source = Source.objects.get(name="website")
    purchase = {"eventType": PURCHASE["reference"], "data": purchase_data("Kate", "Austen", 1)}
    (result,) = events_ingest(source=source, items=[purchase])
    for route in Route.objects.filter(event_type__reference="purchase", enabled=True).select_related("connection"):
        preview = route_preview(
            connection=route.connection,
            event=result.event,
            vendor_event_name=route.vendor_event_name,
            mapping=route.mapping,
            options=route.options,
        )
        assert (preview.problem, preview.refusal) == ("", ""), route.connection.name
        assert preview.requests
