"""The Tracardi module: the seed's webhook URLs with and without session, GET or POST, answers classified."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from tracking.vendors.base import ConfigurationError, OutgoingEvent
from tracking.vendors.tracardi import Tracardi

COLLECTOR = "http://tracardi.example:8686"
DATA = {"session": "sess-42", "page": "/pricing", "amount": 12.5, "tags": ["a", "b"], "known": True}


@pytest.fixture
def vendor():
    return Tracardi(base_url=COLLECTOR, settings={"source_id": "3b5c-source"})


def page_view(key: int = 1, **overrides) -> OutgoingEvent:
    values = dict(
        key=key,
        nonce=f"n{key}",
        event_type="page-view-form",
        event_date=datetime(2024, 1, 1, tzinfo=UTC),
        data=DATA,
        vendor_event_name="page-view",
    )
    return OutgoingEvent(**{**values, **overrides})


def test_it_posts_the_properties_to_collect_type_and_source(vendor):
    (request,) = vendor.build([page_view(mapping={"*": "data"})], None)

    # tracardi-webhooks.txt: POST /collect/EVENT-TYPE/SOURCE-ID, properties in the body.
    assert (request.method, request.url) == ("POST", f"{COLLECTOR}/collect/page-view/3b5c-source")
    assert request.json == DATA
    assert request.params is None and request.keys == (1,)


def test_it_sends_no_property_the_route_does_not_map(vendor):
    (request,) = vendor.build([page_view()], None)

    # Data minimisation: without a mapping, nothing of the event's data leaves the hub.
    assert request.json == {}


def test_a_spread_and_mapped_properties_add_up_the_mapped_ones_winning(vendor):
    event = page_view(mapping={"*": "data", "page": "=/home", "value": "data.amount"})

    (request,) = vendor.build([event], None)

    assert request.json == {**DATA, "page": "/home", "value": 12.5}


def test_it_adds_the_session_named_by_the_mapping(vendor):
    event = page_view(mapping={"session_id": "data.session", "page": "data.page", "value": "data.amount"})

    (request,) = vendor.build([event], None)

    # POST /collect/EVENT-TYPE/SOURCE-ID/SESSION-ID; mapped properties only.
    assert request.url == f"{COLLECTOR}/collect/page-view/3b5c-source/sess-42"
    assert request.json == {"page": "/pricing", "value": 12.5}


def test_it_goes_without_session_when_the_event_has_none(vendor):
    event = page_view(data={"page": "/"}, mapping={"session_id": "data.session", "*": "data"})

    (request,) = vendor.build([event], None)

    assert request.url == f"{COLLECTOR}/collect/page-view/3b5c-source"
    assert request.json == {"page": "/"}


def test_it_sends_the_properties_as_a_query_with_get(vendor):
    event = page_view(options={"method": "get"}, mapping={"session_id": "data.session", "*": "data"})

    (request,) = vendor.build([event], None)

    assert (request.method, request.json) == ("GET", None)
    assert request.url == f"{COLLECTOR}/collect/page-view/3b5c-source/sess-42"
    assert request.params == {"session": "sess-42", "page": "/pricing", "amount": "12.5", "tags": '["a","b"]',
                              "known": "true"}  # fmt: skip


def test_it_quotes_path_segments(vendor):
    (request,) = vendor.build([page_view(vendor_event_name="add to/cart")], None)

    assert request.url == f"{COLLECTOR}/collect/add%20to%2Fcart/3b5c-source"


def test_it_refuses_a_route_with_an_unknown_method(vendor):
    event = page_view(options={"method": "PUT"})

    assert vendor.build([event], None) == []
    assert vendor.refusals([event]) == {1: "Tracardi: the route's method must be GET or POST, not 'PUT'"}


@pytest.mark.parametrize(("source", "message"), [("@internal", "starting with @"), ("", "missing source_id")])
def test_it_rejects_reserved_or_missing_source_ids(source, message):
    with pytest.raises(ConfigurationError, match=message):
        Tracardi(base_url=COLLECTOR, settings={"source_id": source}).check()


@pytest.mark.parametrize("status", [401, 406, 422])
def test_its_documented_errors_are_permanent_and_need_no_token(vendor, status):
    (request,) = vendor.build([page_view()], None)

    result = vendor.classify(request, httpx.Response(status, json={"detail": "Invalid event source"}))

    assert (result.outcome, result.auth_expired) == ("failed", False)
    assert result.error == f"HTTP {status}: Invalid event source"


def test_it_retries_500_and_429(vendor):
    (request,) = vendor.build([page_view()], None)

    assert vendor.classify(request, httpx.Response(500, json={"detail": "boom"})).outcome == "retry"
    assert vendor.classify(request, httpx.Response(429, headers={"Retry-After": "5"})).retry_after == 5
    assert vendor.classify(request, httpx.Response(200, json={})).outcome == "delivered"


def test_it_checks_a_route():
    assert Tracardi.validate_mapping("page-view", {"session_id": "data.session"}, {"method": "GET"}) == []
    assert len(Tracardi.validate_mapping("a/b", {"session_id": "=fixed"}, {"method": "PATCH"})) == 3
