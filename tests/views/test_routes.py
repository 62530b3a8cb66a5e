"""Route editor pages: list, create/edit with mapping rows, vendor rules on save, preview, delete, permissions."""

from __future__ import annotations

import json

import pytest

from tests.factories import (
    PURCHASE,
    event_type_make,
    route_make,
    user_make,
    vendor_connection_make,
    webmarketer_connection_make,
)
from tracking.models import AuditEntry, Delivery, Route
from tracking.services.ingest import events_ingest

pytestmark = pytest.mark.django_db

CHECKOUT_DATA = {
    "email": "kate@example.com",
    "amount": 227.33,
    "currency": "EUR",
    "order_id": "727",
    "payment": "cash",
    "items": [{"productId": "814", "quantity": 1, "productBasePrice": 210.0}],
    "address": {"firstName": "Kate", "lastName": "Austen", "countryCode": "FR"},
}


@pytest.fixture
def purchase():
    return event_type_make(PURCHASE)


@pytest.fixture
def algonomy():
    return vendor_connection_make("algonomy")


@pytest.fixture
def marketing(client):
    user = user_make("Marketing")
    client.force_login(user)
    return user


def logged(event_type_ref: str = "purchase", data: dict | None = None, **extra):
    (result,) = events_ingest(
        source=None, items=[{"eventType": event_type_ref, "data": data or CHECKOUT_DATA, **extra}]
    )
    return result.event


def form_data(event_type, connection, rows=(), **fields) -> dict:
    """The route form as the browser posts it: rows as repeated map_attr / map_path."""
    return {
        "event_type": str(event_type.pk),
        "connection": str(connection.pk),
        "enabled": "on",
        "map_attr": [a for a, _ in rows],
        "map_path": [p for _, p in rows],
        **fields,
    }


CHECKOUT_ROWS = [
    ("customer.email", "data.email"),
    ("eventData.transactionId", "data.order_id"),
    ("eventData.orderId", "data.order_id"),
    ("eventData.tenderType", "data.payment"),
    ("eventData.totalPrice", "data.amount"),
    ("eventData.cartProducts", "data.items"),
    ("eventData.billingInfo", "data.address"),
    ("eventData.shippingInfo", "data.address"),
    ("eventData.checkoutType", "0"),
]


def post(client, url, data: dict):
    """POST the form (lists become repeated fields, as the browser sends the rows)."""
    return client.post(url, data)


# -- permissions -------------------------------------------------------------------------------------------
def test_anonymous_users_are_sent_to_the_login_page(client):
    response = client.get("/routes/")
    assert response.status_code == 302 and response.url.startswith("/login/")


@pytest.mark.parametrize("path", ["/routes/", "/routes/new/", "/routes/mapping-row", "/routes/preview"])
def test_sales_users_cannot_open_the_route_pages(client, path):
    client.force_login(user_make("Sales"))
    assert client.get(path).status_code == 403


def test_auditors_read_routes_but_cannot_create_change_or_delete_them(client, purchase, algonomy):
    route = route_make(purchase, algonomy, vendor_event_name="eventCheckout", mapping={"customer.email": "data.email"})
    client.force_login(user_make("Auditor"))

    assert client.get("/routes/").status_code == 200
    page = client.get(f"/routes/{route.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Save route" not in html and "Delete route" not in html and "disabled" in html
    assert client.get("/routes/new/").status_code == 403
    assert post(client, f"/routes/{route.pk}/", form_data(purchase, algonomy)).status_code == 403
    assert client.post(f"/routes/{route.pk}/delete", {"confirm": "on"}).status_code == 403
    assert Route.objects.filter(pk=route.pk).exists()


def test_the_nav_shows_routes_and_connections_to_those_who_may_see_them(client):
    client.force_login(user_make("Auditor"))
    html = client.get("/routes/").content.decode()
    assert 'href="/routes/"' in html and 'href="/connections/"' in html


# -- list ----------------------------------------------------------------------------------------------------
def test_the_list_shows_each_route_with_its_connection_vendor_name_and_state(client, marketing, purchase, algonomy):
    route_make(
        purchase, algonomy, vendor_event_name="eventTransactionComplete", mapping={"customer.email": "data.email"}
    )
    contact = event_type_make()
    route_make(contact, webmarketer_connection_make(), enabled=False)

    html = client.get("/routes/").content.decode()

    assert "eventTransactionComplete" in html and "algonomy" in html and "Algonomy rCDP" in html
    assert html.index("contact-form") < html.index("purchase")  # by event type
    assert "disabled" in html and "enabled" in html
    filtered = client.get("/routes/", {"event_type": "contact-form"}, headers={"HX-Request": "true"})
    assert "eventTransactionComplete" not in filtered.content.decode() and b"<html" not in filtered.content


# -- create and edit -----------------------------------------------------------------------------------------
def test_marketing_creates_an_algonomy_route_from_mapping_rows(client, marketing, purchase, algonomy):
    logged()  # a purchase as the shop posts it: order_id, payment, items and address beside the declared fields
    response = post(
        client, "/routes/new/", form_data(purchase, algonomy, CHECKOUT_ROWS, vendor_event_name="eventCheckout")
    )

    route = Route.objects.get()
    assert response.status_code == 302 and response.url == f"/routes/{route.pk}/"
    assert route.vendor_event_name == "eventCheckout"
    assert route.mapping == {a: p for a, p in CHECKOUT_ROWS[:-1]} | {"eventData.checkoutType": 0}
    entry = AuditEntry.objects.get(action="route.create")
    assert entry.user == marketing and entry.details["connection"] == "algonomy"
    assert entry.details["mapping"]["customer.email"] == "data.email"


def test_the_vendors_rules_are_shown_inline_and_nothing_is_saved(client, marketing, purchase, algonomy):
    rows = [r for r in CHECKOUT_ROWS if r[0] not in ("customer.email", "eventData.tenderType")]

    response = post(client, "/routes/new/", form_data(purchase, algonomy, rows, vendor_event_name="eventCheckout"))

    assert response.status_code == 200
    html = response.content.decode()
    assert "map the customer (customer.email or customer.customerCode)" in html
    assert "eventData.tenderType is required for eventCheckout but not mapped" in html
    assert 'value="data.order_id"' in html  # what was typed is still there
    assert not Route.objects.exists() and not AuditEntry.objects.exists()


def test_a_row_with_a_bad_source_is_marked_and_nothing_is_saved(client, marketing, purchase, algonomy):
    rows = [("customer.email", "data.email"), ("eventData", "payload.checkout"), ("customer.uuid", "data..x")]

    response = post(client, "/routes/new/", form_data(purchase, algonomy, rows, vendor_event_name="eventLogout"))

    html = response.content.decode()
    assert "&#x27;payload.checkout&#x27; is not a source" in html
    assert "has an empty segment" in html
    assert "Some mapping rows need fixing" in html
    assert not Route.objects.exists()


def test_item_sources_are_refused_outside_a_list_of_items(client, marketing, purchase, algonomy):
    rows = [("customer.email", "item.email")]

    html = post(client, "/routes/new/", form_data(purchase, algonomy, rows, vendor_event_name="eventLogout")).content

    assert b"only work inside a list of items" in html and not Route.objects.exists()


def test_a_route_for_an_already_routed_connection_is_refused(client, marketing, purchase, algonomy):
    route_make(purchase, algonomy, vendor_event_name="eventLogout", mapping={"customer.email": "data.email"})

    response = post(
        client,
        "/routes/new/",
        form_data(purchase, algonomy, [("customer.email", "data.email")], vendor_event_name="eventLogout"),
    )

    assert "purchase is already routed to algonomy" in response.content.decode()
    assert Route.objects.count() == 1


def test_acquia_rows_fill_entities_and_the_options_are_kept(client, marketing, purchase):
    acquia = vendor_connection_make("acquia")
    rows = [
        ("Email", "data.email"),
        ("customers.EmailAddress1", "data.email"),
        ("customers.FirstName", "data.first_name"),
        ("transactionitems.@items", "data.items"),
        ("transactionitems.SourceTransactionItemNumber", "item.productId"),
        ("transactions.SourceTransactionNumber", "data.order_id"),
    ]

    post(
        client,
        "/routes/new/",
        # No purchase logged yet: the sources it does not declare are kept on purpose.
        form_data(purchase, acquia, rows, vendor_event_name="purchase", option_send_customers="on", undeclared_ok="on"),
    )

    route = Route.objects.get()
    assert route.mapping == {
        "events": {"Email": "data.email"},
        "customers": {"EmailAddress1": "data.email", "FirstName": "data.first_name"},
        "transactionitems": {"@items": "data.items", "SourceTransactionItemNumber": "item.productId"},
        "transactions": {"SourceTransactionNumber": "data.order_id"},
    }
    assert route.options == {"send_customers": True, "send_transactions": False}
    # Shown back as the same rows.
    html = client.get(f"/routes/{route.pk}/").content.decode()
    assert 'value="customers.FirstName"' in html and 'value="transactionitems.@items"' in html


def test_a_tracardi_route_takes_its_method_and_session_path(client, marketing, purchase):
    tracardi = vendor_connection_make("tracardi")
    logged()
    rows = [("order", "data.order_id"), ("value", "data.amount")]

    post(client, "/routes/new/", form_data(purchase, tracardi, rows, option_method="GET", session_path="data.session"))

    route = Route.objects.get()
    assert route.mapping == {"order": "data.order_id", "value": "data.amount", "session_id": "data.session"}
    assert route.options == {"method": "GET"}
    html = client.get(f"/routes/{route.pk}/").content.decode()
    assert 'name="session_path" value="data.session"' in html
    assert 'value="session_id"' not in html  # not a row: its own field


def test_a_tracardi_session_must_be_a_path(client, marketing, purchase):
    tracardi = vendor_connection_make("tracardi")

    response = post(client, "/routes/new/", form_data(purchase, tracardi, session_path="=fixed"))

    assert "not a constant" in response.content.decode() and not Route.objects.exists()


def test_editing_a_route_saves_and_audits_what_changed(client, marketing, purchase, algonomy):
    route = route_make(purchase, algonomy, vendor_event_name="eventLogout", mapping={"customer.email": "data.email"})
    rows = [("customer.email", "data.email"), ("customer.customerCode", "=guest")]

    response = post(
        client, f"/routes/{route.pk}/", form_data(purchase, algonomy, rows, vendor_event_name="eventLogout")
    )

    assert response.status_code == 302
    route.refresh_from_db()
    assert route.mapping == {"customer.email": "data.email", "customer.customerCode": "=guest"}
    entry = AuditEntry.objects.get(action="route.update")
    assert entry.details["fields"] == ["mapping"]


def test_removing_every_row_of_a_tracify_route_falls_back_to_the_defaults(client, marketing, purchase):
    tracify = vendor_connection_make("tracify")
    route = route_make(purchase, tracify, vendor_event_name="purchase", mapping={"order_id": "data.ref"})

    post(client, f"/routes/{route.pk}/", form_data(purchase, tracify, vendor_event_name="purchase"))

    route.refresh_from_db()
    assert route.mapping == {}


def test_deleting_a_route_keeps_its_deliveries_and_is_audited(client, marketing, purchase, algonomy):
    route = route_make(purchase, algonomy, vendor_event_name="eventLogout", mapping={"customer.email": "data.email"})
    logged()
    assert Delivery.objects.count() == 1

    assert client.post(f"/routes/{route.pk}/delete").status_code == 302  # without the confirmation: kept
    assert Route.objects.exists()
    response = client.post(f"/routes/{route.pk}/delete", {"confirm": "on"})

    assert response.status_code == 302 and response.url == "/routes/"
    assert not Route.objects.exists()
    assert Delivery.objects.get().route is None
    assert AuditEntry.objects.get(action="route.delete").target == "purchase → algonomy"


# -- the HTMX parts --------------------------------------------------------------------------------------------
def test_a_new_mapping_row_is_one_table_row(client, marketing):
    response = client.get("/routes/mapping-row", headers={"HX-Request": "true"})

    html = response.content.decode()
    assert html.strip().startswith("<tr") and 'name="map_attr"' in html and 'name="map_path"' in html


def test_the_vendor_part_offers_the_vendors_event_names(client, marketing, purchase, algonomy):
    response = client.get(
        "/routes/vendor-part",
        {"event_type": purchase.pk, "connection": algonomy.pk, "vendor_event_name": "eventSearch"},
    )

    html = response.content.decode()
    select = html.split('name="vendor_event_name"')[1].split("</select>")[0]
    assert select.count('<option value="event') == 15
    assert "Required eventData fields of eventSearch" in html and "searchFacet, searchString, searchResults" in html
    assert 'value="data.email"' in html  # the event type's fields suggested as sources

    tracify = client.get(
        "/routes/vendor-part", {"event_type": purchase.pk, "connection": vendor_connection_make("tracify").pk}
    )
    assert all(f'<option value="{t}"' in tracify.content.decode() for t in ("pageview", "purchase", "conversion"))

    webmarketer = client.get("/routes/vendor-part", {"connection": webmarketer_connection_make().pk})
    assert "receives the event&#x27;s data as it is" in webmarketer.content.decode()
    assert "map_attr" not in webmarketer.content.decode()


def test_an_unknown_saved_event_name_stays_visible(client, marketing, purchase, algonomy):
    route = route_make(purchase, algonomy, vendor_event_name="eventPurchase")

    html = client.get(f"/routes/{route.pk}/").content.decode()

    assert "eventPurchase (not a known name)" in html


# -- preview -------------------------------------------------------------------------------------------------
def preview(client, event, event_type, connection, rows=(), **fields):
    query = form_data(event_type, connection, rows, preview_event=str(event.pk), **fields)
    return client.get("/routes/preview", query, headers={"HX-Request": "true"})


def test_the_preview_shows_the_algonomy_request_built_from_a_logged_event(client, marketing, purchase, algonomy):
    event = logged()

    response = preview(client, event, purchase, algonomy, CHECKOUT_ROWS, vendor_event_name="eventCheckout")

    html = response.content.decode()
    assert "https://sandbox.algonomy.com/callback/rest/events/ABC123/eventCheckout" in html
    body = json.loads(response.context["preview"].requests[0].body)
    assert body["customer"] == {"email": "kate@example.com"}
    assert body["eventData"]["cartProducts"] == CHECKOUT_DATA["items"]
    assert body["eventData"]["checkoutType"] == 0 and body["clientCorrelatorId"] == event.vendor_nonce
    assert "Authorization: [redacted]" in html
    assert "algonomy-client-secret" not in html and "[token]" not in html


def test_the_preview_says_why_the_vendor_would_refuse_the_event(client, marketing, purchase, algonomy):
    event = logged(data={"email": "kate@example.com", "amount": 3, "currency": "EUR"})

    response = preview(client, event, purchase, algonomy, CHECKOUT_ROWS, vendor_event_name="eventCheckout")

    html = response.content.decode()
    assert "The vendor would not receive this event" in html
    assert (
        "required eventData fields missing: transactionId, tenderType, cartProducts, billingInfo, shippingInfo" in html
    )
    assert response.context["preview"].requests == []


def test_the_acquia_preview_hides_the_access_key(client, marketing, purchase):
    acquia = vendor_connection_make("acquia")
    event = logged()

    response = preview(client, event, purchase, acquia, [("Email", "data.email")], vendor_event_name="purchase")

    (request,) = response.context["preview"].requests
    assert request.url == "https://cs-api6.agilone.com/v2/999/dw/tracker?scheme=a1webtag&accessKey=[redacted]"
    assert json.loads(request.body)["events"][0]["Email"] == "kate@example.com"
    assert "$2a$10$" not in response.content.decode()


def test_the_tracify_preview_hashes_identities_and_hides_the_api_key(client, marketing, purchase):
    tracify = vendor_connection_make("tracify")
    data = {**CHECKOUT_DATA, "ip": "203.0.113.7", "user_agent": "Mozilla/5.0", "url": "https://shop.example/thanks"}
    event = logged(data=data)

    response = preview(client, event, purchase, tracify, [("item_amount", "item.productBasePrice")],
                       vendor_event_name="purchase")  # fmt: skip

    html = response.content.decode()
    (request,) = response.context["preview"].requests
    sent = json.loads(request.body)["events"][0]
    assert sent["data"]["order_id"] == "727" and sent["data"]["AMT1"] == "210"
    assert "tracify-token: [redacted]" in html and "tracify-api-key-123" not in html
    assert "203.0.113.7" not in html.split("preview-request")[1]  # raw PII is not in the request


def test_the_tracardi_get_preview_puts_the_properties_in_the_url(client, marketing, purchase):
    tracardi = vendor_connection_make("tracardi")
    event = logged(data={**CHECKOUT_DATA, "session": "sess-1"})

    response = preview(client, event, purchase, tracardi, [("order", "data.order_id")], option_method="GET",
                       session_path="data.session")  # fmt: skip

    (request,) = response.context["preview"].requests
    assert (request.method, request.url) == (
        "GET",
        "http://tracardi.example:8686/collect/purchase/3b5c-source/sess-1?order=727",
    )
    assert "No body" in response.content.decode()


def test_an_invalid_event_is_never_sent(client, marketing, purchase, algonomy):
    event = logged(data={"email": "not-an-email", "amount": 1, "currency": "EUR"})

    response = preview(client, event, purchase, algonomy, CHECKOUT_ROWS, vendor_event_name="eventCheckout")

    assert "invalid events are never sent" in response.content.decode()


def test_auditors_preview_the_saved_route(client, purchase, algonomy):
    route = route_make(
        purchase, algonomy, vendor_event_name="eventCheckout", mapping={a: p for a, p in CHECKOUT_ROWS[:-1]}
    )
    event = logged()
    client.force_login(user_make("Auditor"))

    # Disabled inputs are not sent: only the route and the chosen event.
    response = client.get("/routes/preview", {"route": route.pk, "preview_event": event.pk})

    assert "/ABC123/eventCheckout" in response.content.decode()


def test_the_edit_page_lists_recent_logged_events_of_the_type_for_the_preview(client, marketing, purchase, algonomy):
    route = route_make(purchase, algonomy, vendor_event_name="eventLogout", mapping={"customer.email": "data.email"})
    event = logged()
    logged(data={"email": "bad", "amount": 1, "currency": "EUR"}, nonce="invalid-1")

    response = client.get(f"/routes/{route.pk}/")

    assert [e.pk for e in response.context["recent_events"]] == [event.pk]  # valid ones only
    assert "email=kate@example.com" in response.content.decode()


# -- sources must exist ----------------------------------------------------------------------------------------
def test_a_source_the_event_type_does_not_have_is_refused_and_nothing_saved(client, marketing, purchase, algonomy):
    logged()
    rows = [("customer.email", "data.email"), ("eventData.bogus", "data.nonexistent_field")]

    response = post(client, "/routes/new/", form_data(purchase, algonomy, rows, vendor_event_name="eventLogout"))

    assert response.status_code == 200 and not Route.objects.exists()
    html = response.content.decode()
    assert "Data.nonexistent_field: purchase has no such field and none of its logged events carries it" in html
    assert "Route saved" not in html


@pytest.mark.parametrize(
    "source",
    [
        "data.email",  # a declared field (ingestionKey)
        "data.order_id",  # a key its logged events carry
        "data.items.0.productId",  # inside a list they carry
        "data.items.3.quantity",  # any index
        "data.address.countryCode",
        "eventDate",
        "trackerId",
        "nonce",
        "vendorEventName",
        "=web",
        "42",
    ],
)
def test_sources_the_events_have_are_accepted(client, marketing, purchase, algonomy, source):
    logged()
    rows = [("customer.email", "data.email"), ("eventData.x", source)]

    response = post(client, "/routes/new/", form_data(purchase, algonomy, rows, vendor_event_name="eventLogout"))

    assert response.status_code == 302, response.content.decode()


def test_a_source_no_event_carries_yet_is_kept_only_when_ticked(client, marketing, purchase, algonomy):
    rows = [("customer.email", "data.email"), ("eventData.orderId", "data.order_id")]
    data = form_data(purchase, algonomy, rows, vendor_event_name="eventLogout")

    assert post(client, "/routes/new/", data).status_code == 200 and not Route.objects.exists()
    response = post(client, "/routes/new/", {**data, "undeclared_ok": "on"})

    route = Route.objects.get()
    assert response.status_code == 302 and route.mapping["eventData.orderId"] == "data.order_id"
    # Edited later, the box comes ticked: the route saves as it was.
    assert 'id="id_undeclared_ok" checked' in client.get(f"/routes/{route.pk}/").content.decode()


def test_the_preview_names_a_source_that_does_not_exist_instead_of_dropping_it(client, marketing, purchase, algonomy):
    event = logged()
    rows = [("customer.email", "data.email"), ("eventData.bogus", "data.nonexistent_field")]
    query = {**form_data(purchase, algonomy, rows, vendor_event_name="eventLogout"), "preview_event": event.pk}

    html = client.get("/routes/preview", query).content.decode()

    assert "1 mapping row with errors left out of this preview" in html


def test_the_editor_offers_the_fields_and_the_keys_logged_events_carry(client, marketing, purchase, algonomy):
    logged()

    html = client.get("/routes/new/", {"event_type": purchase.pk, "connection": algonomy.pk}).content.decode()

    for source in ("data.email", "data.first_name", "data.order_id", "data.items.0.productId", "eventDate"):
        assert f'<option value="{source}">' in html
    assert 'list="source-suggestions"' in client.get("/routes/mapping-row").content.decode()
