"""The one place that reads route mappings: paths into an OutgoingEvent, nested output, blanks left out."""

from __future__ import annotations

from datetime import UTC, datetime

from tracking.vendors.base import OutgoingEvent, map_fields, resolve_path

EVENT = OutgoingEvent(
    key=1,
    nonce="n-1",
    event_type="purchase",
    event_date=datetime(2024, 6, 21, 12, 36, 40, 250000, tzinfo=UTC),
    data={"email": "a@b.c", "items": [{"sku": "X"}], "customer": {"name": ""}},
    tracker_id="trk",
    vendor_event_name="eventCheckout",
)


def test_it_resolves_the_documented_paths():
    assert resolve_path(EVENT, "data.email") == "a@b.c"
    assert resolve_path(EVENT, "data.items.0.sku") == "X"
    assert resolve_path(EVENT, "eventDate") == "2024-06-21T12:36:40.250Z"
    assert (resolve_path(EVENT, "trackerId"), resolve_path(EVENT, "nonce")) == ("trk", "n-1")
    assert resolve_path(EVENT, "vendorEventName") == "eventCheckout"
    assert resolve_path(EVENT, "item.sku", {"sku": "Y"}) == "Y"
    assert resolve_path(EVENT, "=Website") == "Website"
    assert resolve_path(EVENT, 0) == 0


def test_it_answers_none_for_what_is_absent():
    assert resolve_path(EVENT, "data.phone") is None
    assert resolve_path(EVENT, "data.items.5.sku") is None
    assert resolve_path(EVENT, "data.email.domain") is None
    assert resolve_path(EVENT, "somethingElse") is None


def test_it_nests_dotted_attributes_and_leaves_blanks_out():
    mapping = {"customer.email": "data.email", "customer.name": "data.customer.name", "nonce": "nonce", "x": "data.no"}

    assert map_fields(EVENT, mapping) == {"customer": {"email": "a@b.c"}, "nonce": "n-1"}
