"""Route services: saving checked by the vendor module and audited; the preview rebuilds the seeds' example
payloads from logged events (stored Event rows) and never calls a vendor."""

from __future__ import annotations

import copy
import json

import httpx
import pytest
import respx
from django.core.exceptions import ValidationError
from django.utils import timezone

from tests.factories import event_type_make, user_make, vendor_connection_make, webmarketer_connection_make
from tests.vendors.test_acquia import SEED_EVENTS_AND_CUSTOMERS
from tests.vendors.test_algonomy import SEED_CHECKOUT
from tests.vendors.test_tracify import SEED_CONVERSION, SEED_PURCHASE, calc_group
from tracking.models import AuditEntry, Delivery, EventType, Route
from tracking.services.delivery import connection_dispatch, deliveries_claim
from tracking.services.ingest import events_ingest
from tracking.services.replay import event_replay
from tracking.services.routes import (
    route_create,
    route_delete,
    route_preview,
    route_source_problems,
    route_update,
)

pytestmark = pytest.mark.django_db

FREE = {"name": "Free form", "fields": []}  # an event type that accepts any data


def logged(reference: str, data: dict, **extra):
    """An event as the ingest API stores it."""
    if not event_type_exists(reference):
        event_type_make({"reference": reference, **FREE})
    (result,) = events_ingest(source=None, items=[{"eventType": reference, "data": data, **extra}])
    assert result.accepted, result.event.errors
    return result.event


def event_type_exists(reference: str) -> bool:
    from tracking.models import EventType

    return EventType.objects.filter(reference=reference).exists()


def secret_values(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in secret_values(v)]
    return [value] if isinstance(value, str) else []


def body_of(preview) -> dict:
    assert (preview.refusal, preview.problem) == ("", "")
    (request,) = preview.requests
    return json.loads(request.body)


# -- saving ------------------------------------------------------------------------------------------------
def test_a_route_the_vendor_module_refuses_is_not_saved():
    event_type = event_type_make({"reference": "signup", **FREE})
    connection = vendor_connection_make("tracify")

    with pytest.raises(ValidationError) as error:
        route_create(event_type=event_type, connection=connection, vendor_event_name="lead", mapping={"mail": "x"})

    assert "'lead' is not a Tracify event type" in str(error.value)
    assert not Route.objects.exists() and not AuditEntry.objects.exists()


def test_routes_are_created_updated_and_deleted_with_an_audit_trail():
    user = user_make("Marketing")
    event_type = event_type_make({"reference": "signup", **FREE})
    connection = vendor_connection_make("tracardi")

    route = route_create(event_type=event_type, connection=connection, mapping={"email": "data.email"}, user=user)
    route_update(route=route, options={"method": "GET"}, enabled=False, user=user)
    route_delete(route=route, user=user)

    entries = list(AuditEntry.objects.order_by("id").values_list("action", "target", "details__enabled"))
    assert entries == [
        ("route.create", "signup → tracardi", True),
        ("route.update", "signup → tracardi", False),
        ("route.delete", "signup → tracardi", False),
    ]
    assert AuditEntry.objects.get(action="route.update").details["fields"] == ["options", "enabled"]
    with pytest.raises(TypeError, match="unknown fields: connection_id"):
        route_update(route=route, connection_id=1)


# -- preview: the seeds' examples rebuilt from logged events ------------------------------------------------
TRACIFY_DATA = {
    "url": "https://www.yourwebsite.com/your-full-path-here",
    "email": "John.Smith@Example.com",
    "ip": "192.168.1.1",
    "user_agent": "Mozilla/5.0",
}


def tracify_identities() -> dict:
    """The seed's identity_data, hashed with the test's own calcGroup (written again from the seed)."""
    return {
        calc_group("john.smith@example.com"): 1,
        calc_group("192.168.1.1|Mozilla/5.0"): 2,
        calc_group("192.168.1.1"): 3,
        calc_group("Mozilla/5.0"): 4,
    }


def test_the_preview_rebuilds_the_seed_tracify_purchase_from_a_logged_event():
    items = [{"title": "Name of Product 1", "price": 25, "qty": 2}, {"title": "Name of Product 2", "price": 50,
             "qty": 1}]  # fmt: skip
    data = {**TRACIFY_DATA, "order": "123456789", "currency": "EUR", "total": 100, "cart": items}
    event = logged("order", data, eventDate="2024-06-21T14:36:40+02:00")
    mapping = {"order_id": "data.order", "amount": "data.total", "items": "data.cart", "item_name": "item.title",
               "item_amount": "item.price", "item_quantity": "item.qty"}  # fmt: skip

    preview = route_preview(
        connection=vendor_connection_make("tracify"), event=event, vendor_event_name="purchase", mapping=mapping
    )

    (sent,) = body_of(preview)["events"]
    for field, value in SEED_PURCHASE.items():
        assert sent[field] == value, field
    assert sent["identity_data"] == tracify_identities()
    assert preview.requests[0].headers == ["tracify-token: [redacted]"]


def test_the_preview_rebuilds_the_seed_tracify_conversion_from_a_logged_event():
    data = {**TRACIFY_DATA, "conversion_id": "123456789", "currency": "EUR", "amount": "100"}
    event = logged("lead", data, eventDate="2024-06-21T12:36:40Z")

    preview = route_preview(connection=vendor_connection_make("tracify"), event=event, vendor_event_name="conversion")

    (sent,) = body_of(preview)["events"]
    assert set(sent) == set(SEED_CONVERSION) | {"identity_data"}
    for field, value in SEED_CONVERSION.items():
        assert sent[field] == value, field
    assert sent["identity_data"] == tracify_identities()


def test_the_preview_rebuilds_the_seed_algonomy_checkout_from_a_logged_event():
    data = {
        "email": "user@mail.com",
        "customer_code": "100",
        "session": "sess-abc123",
        "url": "https://example.com/checkout",
        "checkout": copy.deepcopy(SEED_CHECKOUT["eventData"]),
    }
    event = logged("checkout", data)
    mapping = {
        "customer.email": "data.email",
        "customer.customerCode": "data.customer_code",
        "session.sessionId": "data.session",
        "page.url": "data.url",
        "eventData": "data.checkout",
    }

    preview = route_preview(
        connection=vendor_connection_make("algonomy"), event=event, vendor_event_name="eventCheckout", mapping=mapping
    )

    body = body_of(preview)
    assert preview.requests[0].url == "https://sandbox.algonomy.com/callback/rest/events/ABC123/eventCheckout"
    for field in ("srcId", "srcType", "customer", "session", "page", "eventData"):
        assert body[field] == SEED_CHECKOUT[field], field
    assert body["clientCorrelatorId"] == event.vendor_nonce and isinstance(body["requestTime"], int)


def test_the_preview_rebuilds_the_seed_acquia_events_and_customers_from_a_logged_event():
    event = logged("login-form", {"customer_number": "C-1001", "first_name": "John"}, trackerId="a1cookie")
    mapping = {
        "events": {"Cookie": "trackerId", "SourceCustomerNumber": "data.customer_number"},
        "customers": {"SourceCustomerNumber": "data.customer_number", "FirstName": "data.first_name"},
    }

    preview = route_preview(
        connection=vendor_connection_make("acquia"),
        event=event,
        vendor_event_name="login",
        mapping=mapping,
        options={"send_customers": True},
    )

    body = body_of(preview)
    (sent,) = body["events"]
    assert {k: v for k, v in sent.items() if k != "EventTimeStamp"} == SEED_EVENTS_AND_CUSTOMERS["events"][0]
    assert body["customers"] == SEED_EVENTS_AND_CUSTOMERS["customers"]
    assert "accessKey=[redacted]" in preview.requests[0].url


@pytest.mark.parametrize(
    ("data", "url"),
    [
        (
            {"session": "sess-42", "page": "/pricing"},
            "http://tracardi.example:8686/collect/page-view/3b5c-source/sess-42",
        ),
        ({"page": "/pricing"}, "http://tracardi.example:8686/collect/page-view/3b5c-source"),
    ],
)
def test_the_preview_rebuilds_the_tracardi_webhook_with_and_without_session(data, url):
    event = logged("visit", data)

    preview = route_preview(
        connection=vendor_connection_make("tracardi"),
        event=event,
        vendor_event_name="page-view",
        mapping={"session_id": "data.session", "page": "data.page"},
    )

    assert (preview.requests[0].method, preview.requests[0].url) == ("POST", url)
    assert body_of(preview) == {"page": "/pricing"}


def test_the_preview_calls_no_vendor_and_shows_no_secret():
    event = logged("signup", {"email": "a@b.co", "customerCode": "1", "ip": "1.2.3.4", "user_agent": "UA",
                              "url": "https://x.example/"})  # fmt: skip
    connections = [
        (webmarketer_connection_make(), ""),
        (vendor_connection_make("acquia"), "signup"),
        (vendor_connection_make("algonomy"), "eventLogin"),
        (vendor_connection_make("tracardi"), ""),
        (vendor_connection_make("tracify"), "pageview"),
    ]
    mappings = {"acquia": {"Email": "data.email"}, "algonomy": {"customer.email": "data.email", "eventData": "data"}}

    with respx.mock(assert_all_mocked=True, assert_all_called=False):  # any HTTP call would raise
        previews = [
            (c, route_preview(connection=c, event=event, vendor_event_name=name, mapping=mappings.get(c.kind, {})))
            for c, name in connections
        ]

    for connection, preview in previews:
        assert (preview.refusal, preview.problem) == ("", ""), connection.kind
        shown = json.dumps([r.__dict__ for r in preview.requests])
        assert preview.requests and "[token]" not in shown
        for secret in secret_values(connection.secrets):
            assert secret not in shown, connection.kind


def test_the_preview_names_a_connection_the_module_cannot_use():
    connection = vendor_connection_make("acquia", settings={"tenant_id": "999"}, base_url="", auth_url="")
    event = logged("signup", {"email": "a@b.co"})

    preview = route_preview(
        connection=connection, event=event, vendor_event_name="signup", mapping={"Email": "data.email"}
    )

    assert "region must be one of us-aws, eu-aws, us-gcp" in preview.problem and preview.requests == []


# -- deleting or disabling a route cancels what it still owes ---------------------------------------------------
TRACARDI = "http://tracardi.example:8686/collect/signup/3b5c-source"


@pytest.fixture
def owed(fresh_sessions):
    """A signup routed to Tracardi (email only); Tracardi answered 503: the delivery waits for its retry."""
    event_type_make({"reference": "signup", **FREE})
    connection = vendor_connection_make("tracardi", retry_base_seconds=10)
    route = route_create(event_type=EventType.objects.get(), connection=connection, mapping={"email": "data.email"})
    logged("signup", {"email": "kate@example.com", "phone": "+33612345678", "notes": "private"})
    with respx.mock() as vendor:
        tracardi = vendor.post(TRACARDI).mock(return_value=httpx.Response(503))
        connection_dispatch(connection_id=connection.pk)
        delivery = Delivery.objects.get()
        assert (delivery.status, tracardi.call_count) == ("retrying", 1)
        Delivery.objects.update(next_attempt_at=timezone.now())  # due again now
        yield route, delivery, tracardi


def assert_never_sent_again(route, delivery, tracardi, reason):
    assert connection_dispatch(connection_id=route.connection_id) == 0
    delivery.refresh_from_db()
    assert (delivery.status, delivery.last_error) == ("cancelled", reason)
    assert tracardi.call_count == 1  # only the first, mapped try: the whole event data never left


def test_deleting_a_route_cancels_its_due_deliveries(owed):
    route, delivery, tracardi = owed
    user = user_make("Marketing", username="marketing")

    route_delete(route=route, user=user)

    assert_never_sent_again(route, delivery, tracardi, "cancelled: route deleted by marketing")
    assert AuditEntry.objects.get(action="route.delete").details["cancelled_deliveries"] == 1


def test_disabling_a_route_cancels_its_due_deliveries(owed):
    route, delivery, tracardi = owed

    route_update(route=route, enabled=False, user=user_make("Marketing", username="marketing"))

    assert_never_sent_again(route, delivery, tracardi, "cancelled: route disabled by marketing")


def test_a_route_deleted_outside_the_console_cancels_its_due_deliveries_too(owed):
    route, delivery, tracardi = owed

    Route.objects.filter(pk=route.pk).delete()  # the admin, a cascade, the shell

    assert_never_sent_again(route, delivery, tracardi, "cancelled: route deleted")


def test_a_route_disabled_outside_the_console_cancels_its_due_deliveries_too(owed):
    route, delivery, tracardi = owed
    route.enabled = False

    route.save()  # the admin's change form

    assert_never_sent_again(route, delivery, tracardi, "cancelled: route disabled")


def test_a_delivery_in_flight_when_its_route_is_deleted_never_comes_back_unmapped(owed):
    route, delivery, tracardi = owed
    assert len(deliveries_claim(connection_id=route.connection_id, limit=10)) == 1  # a worker is sending it

    route_delete(route=route)

    delivery.refresh_from_db()
    assert (delivery.status, delivery.route_id) == ("cancelled", None)
    assert delivery.last_error == "cancelled: route deleted by the system"


def test_a_replay_goes_under_the_route_and_never_without_one(owed):
    route, delivery, tracardi = owed
    route_delete(route=route)

    with pytest.raises(ValueError, match="tracardi: its route was deleted"):
        event_replay(event=delivery.event)
    assert Delivery.objects.count() == 1

    # A new route to the same connection: the replay goes under it.
    new = route_create(event_type=route.event_type, connection=route.connection, mapping={"mail": "data.email"})
    (again,) = event_replay(event=delivery.event)
    assert (again.route, again.generation, again.nonce) == (new, 1, delivery.nonce)
    connection_dispatch(connection_id=route.connection_id)
    assert json.loads(tracardi.calls.last.request.content) == {"mail": "kate@example.com"}


def test_a_replay_makes_one_generation_per_connection_whatever_routes_the_past_ones_had(owed):
    route, delivery, tracardi = owed
    Delivery.objects.create(event=delivery.event, connection=route.connection, route=None, generation=1, nonce="n")

    (again,) = event_replay(event=delivery.event)

    assert (again.generation, again.route, again.nonce) == (2, route, "n")


def test_a_route_deleted_in_the_admin_cancels_its_deliveries_naming_who_and_is_audited(client, owed):
    route, delivery, tracardi = owed
    client.force_login(user_make("Marketing", username="marketing", is_staff=True))

    response = client.post(f"/admin/tracking/route/{route.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302 and not Route.objects.exists(), response.content.decode()[:3000]
    assert_never_sent_again(route, delivery, tracardi, "cancelled: route deleted by marketing")
    assert AuditEntry.objects.filter(action="route.delete", user__username="marketing").exists()


# -- sources ---------------------------------------------------------------------------------------------------
def test_a_mapping_source_names_a_field_a_logged_key_the_envelope_an_item_or_a_constant():
    from tests.factories import PURCHASE, event_store

    purchase = event_type_make(PURCHASE)
    event_store(purchase, {"email": "a@b.co", "items": [{"sku": "1"}], "place": {"city": "Paris"}}, nonce="s-1")
    mapping = {
        "a": "data.email",
        "b": "data.items.2.sku",
        "c": "data.place.city",
        "d": "eventDate",
        "e": "item.whatever",
        "f": "=text",
        "g": 0,
        "h": {"constant": "object"},
        "i": "data",
    }

    assert route_source_problems(event_type=purchase, mapping=mapping) == []
    problems = route_source_problems(
        event_type=purchase,
        mapping={"events": {"Email": "data.emial"}, "customers": {"X": "data.items.0.price"}, "y": "payload.x"},
    )
    assert [p.split(":")[0] for p in problems] == ["data.emial", "data.items.0.price", "payload.x is not a source"]


def test_a_location_fields_parts_are_sources_before_any_event_is_logged():
    from tracking.demo import EVENT_TYPES

    call_me_back = event_type_make(next(e for e in EVENT_TYPES if e["reference"] == "call-me-back"))
    mapping = {"zip": "data.location.zipcode", "phone": "data.phone", "state": "data.qualified"}

    # States and statistics are not in the event's data: only user and event fields are.
    assert [p.split(":")[0] for p in route_source_problems(event_type=call_me_back, mapping=mapping)] == [
        "data.qualified"
    ]


def test_a_logged_event_python_cannot_read_back_leaves_the_keys_of_the_others():
    from django.db import connection as db

    from tests.factories import PURCHASE, event_store
    from tracking.services.routes import event_type_data_paths

    purchase = event_type_make(PURCHASE)
    event_store(purchase, {"email": "a@b.co", "order_id": "1"}, nonce="good")
    poison = event_store(purchase, {"email": "a@b.co"}, nonce="poison")
    deep = '{"email": "a@b.co", "notes": ' + "[" * 1500 + "]" * 1500 + "}"
    cast = "%s::jsonb" if db.vendor == "postgresql" else "%s"
    with db.cursor() as cursor:
        cursor.execute(f"UPDATE tracking_event SET data = {cast} WHERE id = %s", [deep, poison.pk])  # noqa: S608

    declared, seen = event_type_data_paths(purchase)

    assert "data.order_id" in seen and "data.email" in declared
