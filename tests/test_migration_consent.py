"""Migration 0011_consent on an install that ran before it: nothing stops delivering and nothing changes silently."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("tracking", "0010_segment")]
AFTER = [("tracking", "0011_consent")]


@pytest.mark.django_db(transaction=True)
def test_existing_sources_allow_all_routes_get_their_purposes_and_send_everything_routes_an_explicit_mapping():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    Source = apps.get_model("tracking", "Source")
    Route = apps.get_model("tracking", "Route")
    EventType = apps.get_model("tracking", "EventType")
    Connection = apps.get_model("tracking", "VendorConnection")
    Source.objects.create(name="website", token_hash="h", token_prefix="hub_")
    event_type = EventType.objects.create(reference="purchase", name="Purchase")
    routes = {}
    for kind, mapping in [
        ("algonomy", {"customer.email": "data.email"}),  # relied on "send everything" in eventData
        ("tracardi", {"session_id": "data.session"}),  # relied on "send everything" as properties
        ("webmarketer", {}),
        ("tracify", {}),
        ("acquia", {"Email": "data.email"}),
    ]:
        conn = Connection.objects.create(kind=kind, name=kind, base_url="https://example.com/")
        routes[kind] = Route.objects.create(event_type=event_type, connection=conn, mapping=mapping).pk
    mapped = Connection.objects.create(kind="algonomy", name="algonomy-2", base_url="https://example.com/")
    other = EventType.objects.create(reference="login", name="Login")
    routes["mapped"] = Route.objects.create(
        event_type=other, connection=mapped, mapping={"eventData.customerCode": "data.code"}
    ).pk

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)

    apps = executor.loader.project_state(AFTER).apps
    Source = apps.get_model("tracking", "Source")
    Route = apps.get_model("tracking", "Route")
    assert Source.objects.get().default_consent == ["analytics", "advertising", "personalisation"]
    after = {kind: Route.objects.get(pk=pk) for kind, pk in routes.items()}
    assert {k: r.purposes for k, r in after.items()} == {
        "algonomy": ["personalisation"],
        "tracardi": ["analytics"],
        "webmarketer": ["advertising"],
        "tracify": ["advertising"],
        "acquia": ["analytics"],
        "mapped": ["personalisation"],
    }
    assert after["algonomy"].mapping == {"customer.email": "data.email", "eventData": "data"}
    assert after["tracardi"].mapping == {"session_id": "data.session", "*": "data"}
    assert after["mapped"].mapping == {"eventData.customerCode": "data.code"}
    assert after["acquia"].mapping == {"Email": "data.email"}
