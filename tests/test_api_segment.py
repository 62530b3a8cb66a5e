"""The Segment HTTP Tracking API (/v1/…): auth as the SDKs send it, answers, limits, CORS, and what each call
becomes (events through the ingest service, profiles, groups)."""

from __future__ import annotations

import base64
import gzip
import json

import pytest

from tests.factories import PURCHASE, event_type_make, route_make, source_make, webmarketer_connection_make
from tracking.models import (
    AuditEntry,
    Delivery,
    Event,
    Route,
    SegmentGroup,
    SegmentIdentity,
    SegmentSettings,
)
from tracking.services.segment import segment_settings_update

pytestmark = pytest.mark.django_db

PAGE_VIEW = {
    "reference": "page-view",
    "name": "Page view",
    "fields": [{"type": "string", "entity": "event", "storageKey": "url", "ingestionKey": "url", "optional": True}],
}


@pytest.fixture
def hub():
    """A source with Segment settings (alias, renames, page views), purchases routed to Webmarketer."""
    purchase = event_type_make(PURCHASE)
    page_view = event_type_make(PAGE_VIEW)
    route_make(purchase, webmarketer_connection_make())
    source, token = source_make()
    SegmentSettings.objects.create(
        source=source,
        event_aliases={"Order Completed": "purchase"},
        property_renames={"revenue": "amount"},
        page_view_type=page_view,
    )
    return source, token


def basic(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{token}:".encode()).decode()}


def post(client, path, body, token=None, *, raw=None, content_type="application/json", **headers):
    return client.post(
        path,
        data=raw if raw is not None else json.dumps(body),
        content_type=content_type,
        headers={**(basic(token) if token else {}), **headers},
    )


ORDER = {
    "event": "Order Completed",
    "userId": "u-1",
    "messageId": "m-1",
    "timestamp": "2026-11-30T10:00:00Z",
    "properties": {"email": "kate@example.com", "revenue": 42.5, "currency": "EUR"},
    "context": {"ip": "203.0.113.9"},
}


def test_a_track_with_basic_auth_becomes_a_valid_event_with_its_delivery(client, hub):
    response = post(client, "/v1/track", ORDER, hub[1])

    assert response.status_code == 200 and response.json() == {"success": True}
    event = Event.objects.get()
    assert (event.event_type_ref, event.status, event.tracker_id, event.nonce) == ("purchase", "ok", "u-1", "m-1")
    assert event.data == {"email": "kate@example.com", "amount": 42.5, "currency": "EUR"}
    assert event.event_date.isoformat() == "2026-11-30T10:00:00+00:00"
    assert event.context["context"] == {"ip": "203.0.113.9"} and event.context["call"] == "track"
    assert Delivery.objects.filter(event=event, status="pending").count() == 1


def test_the_write_key_may_come_in_the_body(client, hub):
    response = post(client, "/v1/track", {**ORDER, "writeKey": hub[1]})

    assert response.status_code == 200 and Event.objects.get().source == hub[0]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing write key"),
        (basic("hub_nope"), "invalid or disabled write key"),
        ({"Authorization": "Basic %%%"}, "must be base64"),
    ],
)
def test_a_missing_or_wrong_write_key_is_a_401_that_stores_nothing(client, hub, headers, message):
    response = post(client, "/v1/track", ORDER, **headers)

    assert response.status_code == 401 and message in response.json()["error"]
    assert response["WWW-Authenticate"] == 'Basic realm="event-hub"'
    assert not Event.objects.exists()


def test_the_same_message_id_twice_is_one_event(client, hub):
    for _ in range(2):
        assert post(client, "/v1/track", ORDER, hub[1]).json() == {"success": True}

    assert Event.objects.count() == 1 and Delivery.objects.count() == 1


def test_an_unknown_event_name_is_stored_invalid_and_the_answer_is_still_success(client, hub):
    response = post(client, "/v1/track", {**ORDER, "event": "Coupon Applied"}, hub[1])

    assert response.json() == {"success": True}
    event = Event.objects.get()
    assert (event.status, event.event_type_ref) == ("invalid", "Coupon Applied")
    assert "'Coupon Applied' names no event type" in event.errors[0]["message"]
    assert not Delivery.objects.exists()


def test_a_gzip_batch_mixes_calls_in_order_and_traits_reach_the_later_events(client, hub):
    body = {
        "batch": [
            {"type": "identify", "userId": "u-7", "anonymousId": "a-7", "traits": {"email": "kate@example.com"}},
            {**ORDER, "type": "track", "userId": None, "anonymousId": "a-7", "messageId": "m-7"},
            {"type": "page", "anonymousId": "a-7", "name": "Home", "properties": {"url": "https://x.example/"}},
            {"type": "group", "userId": "u-7", "groupId": "acme", "traits": {"plan": "gold"}},
            {"type": "alias", "previousId": "old-7", "userId": "u-7"},
        ],
        "context": {"library": {"name": "analytics-python"}},
    }

    raw = gzip.compress(json.dumps(body).encode())
    response = post(client, "/v1/batch", None, hub[1], raw=raw, **{"Content-Encoding": "gzip"})

    assert response.status_code == 200
    track = Event.objects.get(nonce="m-7")
    assert track.tracker_id == "a-7" and track.context["traits"] == {"email": "kate@example.com"}
    assert track.context["context"] == {"ip": "203.0.113.9", "library": {"name": "analytics-python"}}
    page = Event.objects.get(event_type_ref="page-view")
    assert page.status == "ok" and page.data == {"name": "Home", "url": "https://x.example/"}
    # identify joined u-7 and a-7; alias joined old-7; the group is stored and the profile belongs to it.
    profiles = {i.external_id: i.profile_id for i in SegmentIdentity.objects.all()}
    assert set(profiles) == {"u-7", "a-7", "old-7"} and len(set(profiles.values())) == 1
    assert SegmentGroup.objects.get().traits == {"plan": "gold"}
    assert SegmentIdentity.objects.get(external_id="old-7").profile.group_id == "acme"
    assert Event.objects.count() == 2


def test_alias_merges_two_profiles_traits(client, hub):
    post(client, "/v1/identify", {"anonymousId": "anon", "traits": {"email": "a@example.com", "plan": "free"}}, hub[1])
    post(client, "/v1/identify", {"userId": "user", "traits": {"plan": "pro"}}, hub[1])

    assert post(client, "/v1/alias", {"previousId": "anon", "userId": "user"}, hub[1]).status_code == 200
    post(client, "/v1/track", {**ORDER, "userId": "user", "messageId": "after-alias"}, hub[1])

    assert Event.objects.get().context["traits"] == {"email": "a@example.com", "plan": "pro"}


def test_a_message_over_32_kb_is_a_400_naming_it_and_the_others_of_the_batch_are_kept(client, hub):
    big = {**ORDER, "type": "track", "messageId": "big", "properties": {"blob": "x" * 33_000}}
    small = {**ORDER, "type": "track", "messageId": "small"}

    response = post(client, "/v1/batch", {"batch": [small, big]}, hub[1])

    assert response.status_code == 400
    error = response.json()["error"]
    assert "message 1 (messageId 'big') is" in error and "32 KB per message" in error
    assert "the other 1 messages are" in error
    assert list(Event.objects.values_list("nonce", flat=True)) == ["small"]


def test_a_single_call_over_32_kb_and_a_batch_over_500_kb_are_400s(client, hub):
    single = post(client, "/v1/track", {**ORDER, "properties": {"blob": "x" * 33_000}}, hub[1])
    many = [{**ORDER, "type": "track", "messageId": f"m-{i}", "properties": {"b": "x" * 30_000}} for i in range(18)]
    batch = post(client, "/v1/batch", {"batch": many}, hub[1])

    assert single.status_code == 400 and "the track message is" in single.json()["error"]
    assert batch.status_code == 400 and "500 KB" in batch.json()["error"]
    assert not Event.objects.exists()


def test_a_gzip_bomb_is_refused_by_the_ingest_apis_output_cap(client, hub, settings):
    settings.INGEST_MAX_BODY_BYTES = 100_000
    bomb = gzip.compress(b'{"batch": [' + b" " * 1_000_000 + b"]}")

    response = post(client, "/v1/batch", None, hub[1], raw=bomb, **{"Content-Encoding": "gzip"})

    assert response.status_code == 413 and "decompressed exceeds" in response.json()["error"]


def test_page_and_screen_without_a_page_view_type_and_calls_not_accepted_are_kept_invalid(client, hub):
    source, token = hub
    segment_settings_update(source=source, page_view_type=None, calls=["track", "page", "screen"])

    post(client, "/v1/screen", {"anonymousId": "a", "name": "Home", "messageId": "s-1"}, token)
    post(client, "/v1/identify", {"userId": "u", "traits": {"email": "x@example.com"}, "messageId": "i-1"}, token)

    screen, identify = Event.objects.get(nonce="s-1"), Event.objects.get(nonce="i-1")
    assert screen.status == identify.status == "invalid"
    assert "page-view event type" in screen.errors[0]["message"]
    assert identify.event_type_ref == "segment:identify" and identify.data == {"email": "x@example.com"}
    assert "does not accept Segment identify calls" in identify.errors[0]["message"]
    assert not SegmentIdentity.objects.exists()


def test_text_plain_as_analytics_js_sends_it_and_the_one_letter_paths(client, hub):
    response = post(client, "/v1/t", {**ORDER, "writeKey": hub[1]}, content_type="text/plain")

    assert response.status_code == 200 and Event.objects.get().event_type_ref == "purchase"


def test_other_methods_are_405_and_errors_are_json(client, hub):
    assert client.get("/v1/track").status_code == 405
    response = post(client, "/v1/batch", None, hub[1], raw=b"{nope")
    assert response.status_code == 400 and response.json()["error"].startswith("malformed JSON")
    assert post(client, "/v1/batch", {"batch": []}, hub[1]).status_code == 400


# -- CORS ------------------------------------------------------------------------------------------------
def test_cors_is_off_by_default(client, hub):
    preflight = client.options("/v1/t", headers={"Origin": "https://shop.example"})
    posted = post(client, "/v1/track", ORDER, hub[1], Origin="https://shop.example")

    assert preflight.status_code == 403 and "Access-Control-Allow-Origin" not in preflight
    assert posted.status_code == 403 and "may not post" in posted.json()["error"]
    assert not Event.objects.exists()


def test_an_allowed_origin_gets_its_preflight_and_its_answers(client, hub):
    source, token = hub
    segment_settings_update(source=source, cors_origins=["https://shop.example"])

    preflight = client.options("/v1/t", headers={"Origin": "https://shop.example"})
    posted = post(client, "/v1/t", ORDER, token, Origin="https://shop.example")
    other = post(client, "/v1/t", {**ORDER, "messageId": "m-2"}, token, Origin="https://evil.example")

    assert preflight.status_code == 204 and preflight["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "Authorization" in preflight["Access-Control-Allow-Headers"]
    assert posted.status_code == 200 and posted["Access-Control-Allow-Origin"] == "https://shop.example"
    assert other.status_code == 403
    assert list(Event.objects.values_list("nonce", flat=True)) == ["m-1"]


# -- settings --------------------------------------------------------------------------------------------
def test_settings_changes_are_checked_and_audited(hub, django_user_model):
    source, _ = hub
    user = django_user_model.objects.create_user("marketer")

    with pytest.raises(Exception) as refused:
        segment_settings_update(
            source=source, user=user, event_aliases={"X": "no-such-type"}, cors_origins=["shop.example/path"]
        )
    assert set(refused.value.message_dict) == {"event_aliases", "cors_origins"}

    segment_settings_update(source=source, user=user, event_aliases={"Checkout": "purchase"})

    entry = AuditEntry.objects.get(action="segment_settings.update")
    assert entry.user == user and entry.target == "website"
    assert entry.details["fields"] == ["event_aliases"] and entry.details["page_view_type"] == "page-view"


# -- hostile input: refused with a 4xx, or kept as invalid with the reason; never a 500, never lost -----------
def test_values_no_database_takes_are_kept_as_invalid_events_with_their_escapes(client, hub):
    raw = json.dumps(
        {
            "batch": [
                {"type": "track", "event": "Bad\ud800Name", "messageId": "h-1", "anonymousId": "a"},
                {**ORDER, "type": "track", "messageId": "h-2", "context": {"userAgent": "x\u0000y"}},
                {"type": "identify", "userId": "u-h", "traits": {"name": "nul\u0000here"}},
                {**ORDER, "type": "track", "messageId": "h-3", "userId": "u-h"},
                "not an object",
                {"type": ["track"], "messageId": "h-4"},
            ]
        }
    )

    response = post(client, "/v1/batch", None, hub[1], raw=raw)

    assert response.status_code == 200
    surrogate, nul, after, odd = (Event.objects.get(nonce=n) for n in ("h-1", "h-2", "h-3", "h-4"))
    assert surrogate.status == "invalid" and "names no event type" in surrogate.errors[0]["message"]
    assert nul.status == "invalid" and any("context.userAgent" in e["field"] for e in nul.errors)
    assert after.status == "ok" and after.context["traits"]["name"] == "nul\\u0000here"
    assert odd.event_type_ref == "segment:(none)" and "unknown Segment call" in odd.errors[0]["message"]
    assert Event.objects.filter(status="invalid").count() == 4  # the string message too


def test_a_batch_nested_past_the_depth_limit_is_kept_and_named(client, hub):
    nested: list = []
    for _ in range(40):
        nested = [nested]
    deep = {**ORDER, "type": "track", "messageId": "deep", "context": {"x": nested}}

    response = post(client, "/v1/batch", {"batch": [deep]}, hub[1])

    assert response.status_code == 200
    event = Event.objects.get(nonce="deep")
    assert event.status == "invalid" and "nested deeper than" in json.dumps(event.errors)


def test_a_call_refusing_advertising_is_stored_with_its_consent_and_its_advertising_route_suppressed(client, hub):
    Route.objects.update(purposes=["advertising"])
    refusing = {**ORDER, "context": {"consent": {"categoryPreferences": {"advertising": False, "analytics": True}}}}

    assert post(client, "/v1/track", refusing, hub[1]).json() == {"success": True}

    event = Event.objects.get()
    assert (event.consent, event.consent_origin) == (["analytics"], "event")
    delivery = Delivery.objects.get(event=event)
    assert (delivery.status, delivery.last_error) == ("suppressed", "suppressed: no consent for advertising")
