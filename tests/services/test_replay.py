"""Replay: only what was not delivered, unless delivered ones are asked for explicitly; a still-owed delivery is
superseded, never owed twice."""

from __future__ import annotations

import pytest

from tests.factories import (
    event_store,
    event_type_make,
    route_make,
    vendor_connection_make,
    webmarketer_connection_make,
)
from tracking.models import AuditEntry, Delivery
from tracking.services.replay import dedups_by_nonce, event_replay, vendors_without_dedup
from tracking.vendors import VENDORS

pytestmark = pytest.mark.django_db


@pytest.fixture
def owed():
    """An event owed to Webmarketer and Tracify: delivered at Webmarketer, failed at Tracify."""
    event_type = event_type_make()
    wm = route_make(event_type, webmarketer_connection_make())
    tracify = route_make(event_type, vendor_connection_make("tracify"))
    event = event_store(event_type, {"email": "a@b.co", "message": "x"}, nonce="n-1", routes=(wm, tracify))
    event.deliveries.filter(connection=wm.connection).update(status="delivered")
    event.deliveries.filter(connection=tracify.connection).update(status="failed", last_error="HTTP 400")
    return event, wm.connection, tracify.connection


def test_only_webmarketer_dedups_by_nonce():
    assert {kind for kind, cls in VENDORS.items() if cls.dedups_by_nonce} == {"webmarketer"}
    assert dedups_by_nonce("webmarketer") and not dedups_by_nonce("tracify") and not dedups_by_nonce("nope")


def test_a_replay_sends_again_only_what_was_not_delivered(owed):
    event, wm, tracify = owed

    (again,) = event_replay(event=event)

    assert (again.connection, again.generation, again.nonce) == (tracify, 1, event.vendor_nonce)
    assert not Delivery.objects.filter(connection=wm, generation=1).exists()
    audit = AuditEntry.objects.get(action="event.replay")
    assert audit.details["deliveries"] == [again.pk]
    assert audit.details["not_replayed"] == ["wm: already delivered"]


def test_a_replay_of_an_event_delivered_everywhere_is_refused(owed):
    event, wm, tracify = owed
    event.deliveries.update(status="delivered")

    with pytest.raises(ValueError, match="nothing to replay: .*already delivered"):
        event_replay(event=event)
    assert Delivery.objects.count() == 2


def test_include_delivered_sends_a_delivered_one_again_and_says_so(owed):
    event, wm, tracify = owed

    (again,) = event_replay(event=event, connection_ids=[wm.pk], include_delivered=True)

    assert (again.connection, again.generation, again.nonce) == (wm, 1, event.vendor_nonce)
    assert AuditEntry.objects.get(action="event.replay").details["delivered_sent_again"] == ["wm"]


def test_a_still_owed_delivery_is_superseded_not_owed_twice(owed):
    event, wm, tracify = owed
    event.deliveries.filter(connection=tracify).update(status="retrying")

    (again,) = event_replay(event=event)

    old = Delivery.objects.get(connection=tracify, generation=0)
    assert old.status == "cancelled" and "superseded by generation 1" in old.last_error
    assert list(Delivery.objects.filter(status__in=Delivery.DUE_STATUSES)) == [again]


def test_a_delivery_being_sent_is_not_replayed(owed):
    event, wm, tracify = owed
    event.deliveries.filter(connection=tracify).update(status="sending")

    with pytest.raises(ValueError, match="being sent right now"):
        event_replay(event=event)


def test_the_vendors_without_nonce_dedup_are_named(owed):
    event, wm, tracify = owed
    assert vendors_without_dedup([wm, tracify]) == ["tracify (Tracify)"]
