"""The pure Segment mapping (tracking/segment.py): messages as event items, their context, and the reasons a
message is kept as invalid. No database, no HTTP."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tracking.segment import (
    MAX_MESSAGE_BYTES,
    SegmentConfig,
    message_bytes,
    message_ids,
    message_map,
    message_name,
    profile_refusal,
)
from tracking.vendors.base import OutgoingEvent, map_fields, resolve_path

CONFIG = SegmentConfig(
    event_aliases={"Order Completed": "purchase"},
    property_renames={"orderId": "order_id", "revenue": "amount"},
    page_view_type="page-view",
)
KNOWN = frozenset({"purchase", "page-view", "contact-form"})

TRACK = {
    "type": "track",
    "event": "Order Completed",
    "userId": "u-1",
    "anonymousId": "a-1",
    "messageId": "m-1",
    "timestamp": "2026-11-30T10:00:00.123456+01:00",
    "originalTimestamp": "2026-11-30T08:00:00Z",
    "properties": {"orderId": "ORD-1", "revenue": 42.5, "currency": "EUR"},
    "context": {"ip": "203.0.113.9", "userAgent": "Mozilla/5.0", "page": {"url": "https://shop.example/checkout"}},
}


def test_a_track_maps_its_name_through_the_alias_table_and_renames_its_properties():
    mapped = message_map(TRACK, call="track", config=CONFIG, known_types=KNOWN)

    assert mapped.errors == []
    assert mapped.item == {
        "eventType": "purchase",
        "data": {"order_id": "ORD-1", "amount": 42.5, "currency": "EUR"},
        "eventDate": "2026-11-30T10:00:00.123456+01:00",
        "trackerId": "u-1",
        "nonce": "m-1",
    }


def test_a_track_name_that_is_a_reference_selects_that_type():
    mapped = message_map({**TRACK, "event": "contact-form"}, call="track", config=CONFIG, known_types=KNOWN)

    assert mapped.item["eventType"] == "contact-form" and mapped.errors == []


def test_the_date_falls_back_to_original_timestamp_then_to_receipt():
    without = {k: v for k, v in TRACK.items() if k != "timestamp"}

    assert message_map(without, call="track", config=CONFIG, known_types=KNOWN).item["eventDate"] == (
        "2026-11-30T08:00:00Z"
    )
    bare = {k: v for k, v in without.items() if k != "originalTimestamp"}
    assert "eventDate" not in message_map(bare, call="track", config=CONFIG, known_types=KNOWN).item


def test_the_tracker_id_is_the_user_id_else_the_anonymous_id():
    anonymous = {k: v for k, v in TRACK.items() if k != "userId"}

    assert message_map(anonymous, call="track", config=CONFIG, known_types=KNOWN).item["trackerId"] == "a-1"
    assert message_ids(TRACK) == ["u-1", "a-1"] and message_ids({"userId": 7}) == ["7"]


def test_an_unknown_event_name_is_kept_under_its_name_with_a_clear_reason():
    mapped = message_map({**TRACK, "event": "Coupon Applied"}, call="track", config=CONFIG, known_types=KNOWN)

    assert mapped.item["eventType"] == "Coupon Applied"
    (error,) = mapped.errors
    assert error.field == "event" and "'Coupon Applied' names no event type" in error.message
    assert "event aliases" in error.message


def test_the_context_keeps_segment_context_traits_and_ids_with_the_batch_context_under_the_message():
    mapped = message_map(
        TRACK,
        call="track",
        config=CONFIG,
        traits={"email": "kate@example.com", "plan": "free"},
        known_types=KNOWN,
        batch_context={"library": {"name": "analytics-python"}, "ip": "198.51.100.1"},
    )

    context = mapped.context
    assert context["context"]["ip"] == "203.0.113.9"  # the message's own wins over the batch's
    assert context["context"]["library"] == {"name": "analytics-python"}
    assert context["traits"] == {"email": "kate@example.com", "plan": "free"}
    assert (context["userId"], context["anonymousId"], context["call"]) == ("u-1", "a-1", "track")


def test_context_traits_sent_by_the_browser_library_override_the_stored_ones():
    message = {**TRACK, "context": {"traits": {"plan": "pro"}}}

    mapped = message_map(message, call="track", config=CONFIG, traits={"email": "k@example.com", "plan": "free"})

    assert mapped.context["traits"] == {"email": "k@example.com", "plan": "pro"}


def test_route_mappings_read_the_context_traits_and_ids():
    mapped = message_map(TRACK, call="track", config=CONFIG, traits={"email": "kate@example.com"}, known_types=KNOWN)
    event = OutgoingEvent(
        key=1,
        nonce="1:m-1",
        event_type="purchase",
        event_date=datetime(2026, 11, 30, tzinfo=UTC),
        data=mapped.item["data"],
        context=mapped.context,
    )

    mapping = {
        "ip": "context.ip",
        "page.url": "context.page.url",
        "email": "traits.email",
        "cookie": "anonymousId",
        "user": "userId",
        "order": "data.order_id",
    }
    assert map_fields(event, mapping) == {
        "ip": "203.0.113.9",
        "page": {"url": "https://shop.example/checkout"},
        "email": "kate@example.com",
        "cookie": "a-1",
        "user": "u-1",
        "order": "ORD-1",
    }
    assert resolve_path(event, "traits.missing") is None and resolve_path(event, "context")["ip"] == "203.0.113.9"


def test_a_page_maps_to_the_page_view_type_with_its_name_as_data():
    page = {"type": "page", "name": "Pricing", "properties": {"url": "https://x.example/pricing"}, "userId": "u-1"}

    mapped = message_map(page, call="page", config=CONFIG, known_types=KNOWN)

    assert mapped.errors == [] and mapped.item["eventType"] == "page-view"
    assert mapped.item["data"] == {"name": "Pricing", "url": "https://x.example/pricing"}


def test_a_page_without_a_page_view_type_is_kept_invalid_saying_so():
    mapped = message_map({"name": "Home", "anonymousId": "a"}, call="screen", config=SegmentConfig())

    assert mapped.item["eventType"] == "segment:screen"
    assert "page-view event type" in mapped.errors[0].message


def test_a_call_the_source_does_not_accept_is_kept_invalid_saying_so():
    config = SegmentConfig(calls=frozenset({"identify"}))

    mapped = message_map(TRACK, call="track", config=config, known_types=KNOWN)

    assert mapped.item["eventType"] == "segment:track"
    assert mapped.errors[0].message == "this source does not accept Segment track calls (its Segment settings)"


def test_a_refused_identify_keeps_its_traits_as_data():
    message = {"type": "identify", "traits": {"email": "x@example.com"}, "messageId": "m-9"}

    mapped = message_map(message, call="identify", config=CONFIG, refusal=profile_refusal(message, "identify"))

    assert mapped.item == {"eventType": "segment:identify", "data": {"email": "x@example.com"}, "nonce": "m-9"}
    assert mapped.errors[0].message == "an identify call needs a userId or an anonymousId"


def test_an_unknown_call_type_and_a_message_that_is_no_object_are_named():
    assert "unknown Segment call 'purchase'" in message_map({}, call="purchase", config=CONFIG).errors[0].message
    assert message_map([1], call="track", config=CONFIG).errors[0].message == "must be a JSON object"


@pytest.mark.parametrize(
    ("message", "call", "reason"),
    [
        ({"userId": "u"}, "identify", ""),
        ({"anonymousId": "a", "traits": []}, "identify", "traits must be a JSON object"),
        ({"previousId": "a"}, "alias", "an alias call needs a previousId and a userId"),
        ({"previousId": "a", "userId": "u"}, "alias", ""),
        ({"userId": "u"}, "group", "a group call needs a groupId"),
        ({"userId": "u", "groupId": 12}, "group", ""),
        ({"userId": "u" * 201}, "identify", "ids are at most 200 characters"),
    ],
)
def test_profile_calls_are_refused_for_missing_or_unusable_ids(message, call, reason):
    assert profile_refusal(message, call) == reason


def test_sizes_and_names_of_messages():
    big = {"messageId": "m-big", "properties": {"x": "é" * MAX_MESSAGE_BYTES}}

    assert message_bytes(big) > 2 * MAX_MESSAGE_BYTES  # UTF-8 bytes, as Segment counts them
    assert message_name(big, 3) == "message 3 (messageId 'm-big')"
    assert message_name([], None) == "the message"


def test_the_consent_a_call_states_is_the_events_and_without_it_the_sources_default_applies():
    stated = {**TRACK, "context": {"consent": {"categoryPreferences": {"Advertising": False, "analytics": True}}}}

    assert message_map(stated, call="track", config=CONFIG, known_types=KNOWN).item["consent"] == ["analytics"]
    assert "consent" not in message_map(TRACK, call="track", config=CONFIG, known_types=KNOWN).item
