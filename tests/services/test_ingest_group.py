"""Group commit of one-event requests (services/ingest_group.py): concurrent requests share a transaction, each is
answered with its own event once committed, and what fails fails only its own request."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from tests.factories import event_type_make, route_make, source_make, webmarketer_connection_make
from tracking.models import Delivery, Event, Source
from tracking.services.ingest_group import _Request, event_ingest, grouped_ingest

pytestmark = pytest.mark.django_db(transaction=True)


def item(nonce: str, **data) -> dict:
    return {
        "eventType": "contact-form",
        "nonce": nonce,
        "data": {"email": f"{nonce}@example.com", "message": "call me", **data},
    }


@pytest.fixture
def routed():
    event_type = event_type_make()
    route_make(event_type, webmarketer_connection_make())
    return event_type


def test_concurrent_requests_are_each_stored_and_answered_with_their_own_event(routed):
    source, _ = source_make()
    barrier = threading.Barrier(12)
    answers: dict[str, object] = {}

    def post(i: int) -> None:
        try:
            barrier.wait()
            # The same nonce from two threads: one event, the other answer a duplicate of it.
            nonce = "twice" if i in (0, 1) else f"n-{i}"
            answers[f"{i}"] = event_ingest(source=source, item=item(nonce, message="bad" if i == 2 else "x"))
        except Exception as exc:  # the assertion below names it
            answers[f"{i}"] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not [a for a in answers.values() if isinstance(a, Exception)]
    assert Event.objects.count() == 11 and Delivery.objects.count() == 11
    for i in range(2, 12):
        stored = Event.objects.get(nonce=f"n-{i}")
        assert answers[f"{i}"].event.pk == stored.pk and not answers[f"{i}"].duplicate
    twice = {answers["0"].duplicate, answers["1"].duplicate}
    assert twice == {True, False} and answers["0"].event.pk == answers["1"].event.pk


def test_an_invalid_event_in_a_group_is_kept_as_invalid_and_the_others_accepted(routed):
    source, _ = source_make()
    group = [
        _Request(source, item("ok-1")),
        _Request(source, {"eventType": "contact-form"}),
        _Request(source, item("ok-2")),
    ]

    grouped_ingest(group)

    assert [r.error for r in group] == [None, None, None]
    assert [r.result.accepted for r in group] == [True, False, True]
    assert Event.objects.filter(status="ok").count() == 2 and Event.objects.filter(status="invalid").count() == 1


def test_a_request_failing_at_the_commit_fails_alone(routed):
    """A source deleted after its request was authenticated: the foreign key is checked at the commit, so the
    group's transaction fails as a whole; each request is then stored alone, and only that one fails."""
    source, _ = source_make()
    gone, _ = source_make("gone")
    gone_copy = Source.objects.get(pk=gone.pk)
    gone.delete()
    group = [_Request(source, item("a")), _Request(gone_copy, item("b")), _Request(source, item("c"))]

    grouped_ingest(group)

    assert group[0].result.accepted and group[2].result.accepted
    assert group[1].result is None and group[1].error is not None
    assert sorted(Event.objects.values_list("nonce", flat=True)) == ["a", "c"]
    assert Delivery.objects.count() == 2


def test_an_error_raised_by_one_request_takes_back_only_that_request(routed):
    """An item that is no JSON value at all (only a caller in process can pass one) makes ingest raise."""
    source, _ = source_make()
    group = [_Request(source, item("a")), _Request(source, object()), _Request(source, item("c"))]

    grouped_ingest(group)

    assert group[0].result.accepted and group[2].result.accepted
    assert group[1].result is None and isinstance(group[1].error, Exception)
    assert sorted(Event.objects.values_list("nonce", flat=True)) == ["a", "c"]
