"""The Segment service: profiles joined by identify and alias, and route mappings that read a Segment call's
context and traits (checked when saved, resolved in the preview and when sent)."""

from __future__ import annotations

import pytest

from tests.factories import PURCHASE, event_type_make, source_make, vendor_connection_make
from tracking.models import Event, SegmentIdentity, SegmentProfile
from tracking.route_forms import path_parse
from tracking.services.routes import route_preview, route_source_problems
from tracking.services.segment import profile_alias, profile_identify, profile_traits, segment_messages_ingest

pytestmark = pytest.mark.django_db


def test_identify_merges_traits_latest_first_and_alias_joins_two_profiles():
    profile_identify(ids=["anon"], traits={"email": "old@example.com", "plan": "free"})
    profile_identify(ids=["user"], traits={"plan": "pro"})
    profile_identify(ids=["anon"], traits={"email": "new@example.com"})

    profile_alias(previous_id="anon", user_id="user")

    assert SegmentProfile.objects.count() == 1
    assert profile_traits(ids=["user"]) == {"email": "new@example.com", "plan": "pro"}
    assert set(SegmentIdentity.objects.values_list("external_id", flat=True)) == {"anon", "user"}


def test_mappings_may_read_context_traits_and_ids_and_the_route_editor_takes_them():
    purchase = event_type_make(PURCHASE)
    mapping = {"session_id": "anonymousId", "email": "traits.email", "ip": "context.ip", "all": "context"}

    assert route_source_problems(event_type=purchase, mapping=mapping) == []
    assert route_source_problems(event_type=purchase, mapping={"x": "contexts.ip"})[0].startswith(
        "contexts.ip is not a source"
    )
    assert [path_parse(p) for p in ("context.page.url", "traits.email", "userId")] == [
        "context.page.url",
        "traits.email",
        "userId",
    ]


def test_the_route_preview_builds_the_request_from_the_segment_context():
    purchase = event_type_make(PURCHASE)
    source, _ = source_make()
    profile_identify(ids=["u-1"], traits={"email": "kate@example.com"})
    segment_messages_ingest(
        source=source,
        call="track",
        messages=[
            {
                "event": "purchase",
                "userId": "u-1",
                "anonymousId": "cookie-1",
                "properties": {"email": "kate@example.com", "amount": 10, "currency": "EUR"},
                "context": {"ip": "203.0.113.9"},
            }
        ],
    )
    event = Event.objects.get()
    assert event.status == "ok", event.errors

    preview = route_preview(
        connection=vendor_connection_make("tracardi"),
        event=event,
        mapping={"session_id": "anonymousId", "email": "traits.email", "ip": "context.ip"},
        options={"method": "POST"},
    )

    (request,) = preview.requests
    assert '"email": "kate@example.com"' in request.body and '"ip": "203.0.113.9"' in request.body
    assert "cookie-1" in request.url + request.body
    assert purchase.reference == event.event_type_ref
