"""The ingest API under hostile input: never a 5xx, always a JSON answer, the good events of a batch kept."""

from __future__ import annotations

import gzip
import io
import json

import pytest

from tests.factories import source_make
from tracking.models import Delivery, Event
from tracking.services import ingest
from tracking.services.ingest import events_ingest

pytestmark = pytest.mark.django_db

ONE, BATCH = "/api/v1/events", "/api/v1/events/batch"
VALID = {"eventType": "contact-form", "data": {"email": "john@example.com", "message": "Call me"}}
VALID_JSON = json.dumps(VALID)


def post(client, raw: str | bytes, token: str, path: str = ONE, content_type: str = "application/json", **extra):
    return client.post(path, data=raw, content_type=content_type, headers={"Authorization": f"Bearer {token}"}, **extra)


def batch(*items: str) -> str:
    """A batch body from items given as JSON text (so they can hold what Python's json would not write)."""
    return '{"events": [' + ", ".join(items) + "]}"


def errors_by_field(result: dict) -> dict[str, str]:
    return {e["field"]: e["message"] for e in result["errors"]}


# -- the same nonce from two sources --------------------------------------------------------------------------
def test_a_second_source_using_a_nonce_of_the_first_gets_a_new_event_with_another_vendor_nonce(client, contact_form):
    first_token, second_token = source_make("website")[1], source_make("crm")[1]
    body = json.dumps({**VALID, "nonce": "n-1"})

    first = post(client, body, first_token).json()
    second = post(client, body, second_token).json()
    again = post(client, body, second_token).json()

    assert (first["status"], second["status"], again["status"]) == ("accepted", "accepted", "duplicate")
    assert first["id"] != second["id"] == again["id"]
    assert first["nonce"] == second["nonce"] == "n-1"
    events = list(Event.objects.order_by("id"))
    assert len(events) == 2 and events[0].vendor_nonce != events[1].vendor_nonce
    assert sorted(Delivery.objects.values_list("nonce", flat=True)) == sorted(e.vendor_nonce for e in events)


def test_a_nonce_stored_by_a_concurrent_request_is_answered_as_a_duplicate(monkeypatch, contact_form):
    source, _ = source_make()
    stored = events_ingest(source=source, items=[{**VALID, "nonce": "race"}])[0].event
    known = ingest._known
    calls = []

    def late_lookup(source, nonces):
        # The first lookup runs before the other request committed: it sees nothing, the insert then conflicts.
        calls.append(nonces)
        return {} if len(calls) == 1 else known(source, nonces)

    monkeypatch.setattr(ingest, "_known", late_lookup)

    results = events_ingest(source=source, items=[{**VALID, "nonce": "race"}, {**VALID, "nonce": "other"}])

    assert len(calls) == 2
    assert [(r.duplicate, r.event.nonce) for r in results] == [(True, "race"), (False, "other")]
    assert results[0].event.pk == stored.pk
    assert Event.objects.count() == 2 and Delivery.objects.count() == 2


# -- lone surrogates and NUL: refused where they are, the rest kept ----------------------------------------------
def hostile(envelope: str = "", data: str = "") -> str:
    """A contact-form event as JSON text, with envelope keys and data keys added (escapes kept as written)."""
    envelope = envelope or '"eventType": "contact-form"'
    return "{" + envelope + ', "data": {"email": "a@b.co", "message": "x"' + (", " + data if data else "") + "}}"


CONTACT = '"eventType": "contact-form"'
HOSTILE = [
    ("a value", hostile(data='"comment": "Hi \\ud800"'), "data.comment"),
    ("a key", hostile(data='"\\udc00": 1'), "data.\\udc00"),
    ("a nested value", hostile(data='"l": [{"a": "\\ud800"}]'), "data.l[0].a"),
    ("the nonce", hostile(CONTACT + ', "nonce": "n\\ud800"'), "nonce"),
    ("the event type", hostile('"eventType": "contact-\\udfff"'), "eventType"),
    ("the tracker id", hostile(CONTACT + ', "trackerId": "\\ud83d"'), "trackerId"),
    ("NUL in a value", hostile(data='"comment": "a\\u0000b"'), "data.comment"),
    ("NUL in a key", hostile(data='"k\\u0000": 1'), "data.k\\u0000"),
    ("NUL in the nonce", hostile(CONTACT + ', "nonce": "\\u0000"'), "nonce"),
    ("NUL in the event type", hostile('"eventType": "contact-form\\u0000"'), "eventType"),
    ("NUL in the tracker id", hostile(CONTACT + ', "trackerId": "t\\u0000"'), "trackerId"),
]


@pytest.mark.parametrize("raw, field", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_a_lone_surrogate_or_nul_is_refused_naming_its_field_and_kept_as_a_visible_copy(
    client, token, contact_form, raw, field
):
    response = post(client, raw, token)

    assert response.status_code == 422
    body = response.json()
    assert body["status"] == "invalid" and field in errors_by_field(body)
    assert "no vendor" in errors_by_field(body)[field] and field in body["error"]
    event = Event.objects.get(uuid=body["id"])
    assert event.status == "invalid" and not event.deliveries.exists()
    stored = json.dumps([event.data, event.errors, event.nonce, event.event_type_ref, event.tracker_id])
    assert "\\ud8" not in stored.lower().replace("\\\\", "") and "\\u0000" not in stored.replace("\\\\", "")


def test_a_nul_in_a_value_is_stored_as_its_visible_escape(client, token, contact_form):
    raw = '{"eventType": "contact-form", "data": {"email": "a@b.co", "message": "a\\u0000b\\ud800"}}'

    body = post(client, raw, token).json()

    assert Event.objects.get(uuid=body["id"]).data["message"] == "a\\u0000b\\ud800"
    assert len(body["errors"]) == 1


@pytest.mark.parametrize("raw, field", [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_a_hostile_item_of_a_batch_is_answered_by_itself_and_the_others_are_kept(
    client, token, contact_form, raw, field
):
    response = post(client, batch(VALID_JSON, raw, json.dumps({**VALID, "nonce": "last"})), token, BATCH)

    assert response.status_code == 202
    body = response.json()
    assert [e["status"] for e in body["events"]] == ["accepted", "invalid", "accepted"]
    assert field in errors_by_field(body["events"][1])
    assert Event.objects.filter(status="ok").count() == 2 and Event.objects.filter(status="invalid").count() == 1
    assert Delivery.objects.count() == 2


def test_a_nonce_refused_for_its_characters_is_replaced_so_a_retry_stays_refused(client, token, contact_form):
    raw = '{"eventType": "contact-form", "nonce": "n\\u0000", "data": {"email": "a@b.co", "message": "x"}}'

    first, second = post(client, raw, token).json(), post(client, raw, token).json()

    assert first["nonce"] != "n\\u0000" and first["status"] == second["status"] == "invalid"
    assert not Event.objects.filter(status="ok").exists()


# -- numbers, depth, lengths and dates that used to answer an HTML 500 ----------------------------------------
def test_a_number_out_of_range_is_refused_naming_it(client, token, contact_form):
    raw = '{"eventType": "contact-form", "data": {"email": "a@b.co", "message": "x", "amount": 1e400}}'

    response = post(client, raw, token)

    assert response.status_code == 422
    assert "out of range" in errors_by_field(response.json())["data.amount"]
    assert Event.objects.get().data["amount"] == "1e400"


def test_an_integer_too_large_for_any_vendor_is_refused_naming_it(client, token, contact_form):
    raw = '{"eventType": "contact-form", "data": {"email": "a@b.co", "message": "x", "n": 1' + "0" * 5000 + "}}"

    response = post(client, raw, token)

    assert response.status_code == 422
    assert "out of range" in errors_by_field(response.json())["data.n"]


@pytest.mark.parametrize("depth", [40, 1000, 5000])
def test_deep_nesting_is_refused_naming_the_limit_and_the_batch_keeps_the_others(client, token, contact_form, depth):
    deep = '{"eventType": "contact-form", "data": {"email": "a@b.co", "message": "x", "deep": ' + "[" * depth
    deep += "]" * depth + "}}"

    response = post(client, batch(VALID_JSON, deep), token, BATCH)

    assert response.status_code == 202
    body = response.json()
    assert [e["status"] for e in body["events"]] == ["accepted", "invalid"]
    (field, message), *_ = errors_by_field(body["events"][1]).items()
    assert field.startswith("data.deep[0]") and "nested deeper than 32 levels" in message
    assert Event.objects.count() == 2


def test_a_deeply_nested_single_event_gets_a_422_naming_the_limit(client, token, contact_form):
    raw = '{"eventType": "contact-form", "data": {"email": "a@b.co", "message": "x", "d": '
    raw += '{"a": ' * 3000 + "1" + "}" * 3000 + "}}"

    response = post(client, raw, token)

    assert response.status_code == 422
    assert "nested deeper than 32 levels" in response.json()["error"]


def test_an_unbalanced_deep_body_is_a_400_naming_the_depth(client, token):
    response = post(client, "[" * 100_000, token)

    assert response.status_code == 400
    assert "nested" in response.json()["error"]


@pytest.mark.parametrize("key", ["eventType", "trackerId"])
def test_an_event_type_or_tracker_id_over_200_characters_is_refused_and_kept(client, token, contact_form, key):
    response = post(client, batch(VALID_JSON, json.dumps({**VALID, key: "x" * 201})), token, BATCH)

    assert response.status_code == 202
    item = response.json()["events"][1]
    assert item["status"] == "invalid" and "200 characters" in errors_by_field(item)[key]
    assert Event.objects.count() == 2


@pytest.mark.parametrize(
    "date", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"]
)
def test_an_event_date_out_of_range_in_utc_is_kept_as_invalid_with_the_reason(client, token, contact_form, date):
    response = post(client, batch(VALID_JSON, json.dumps({**VALID, "eventDate": date})), token, BATCH)

    assert response.status_code == 202
    item = response.json()["events"][1]
    assert item["status"] == "invalid" and "out of range" in errors_by_field(item)["eventDate"]
    assert Event.objects.count() == 2


# -- the body: length, chunks, encodings, media type ---------------------------------------------------------
def chunked(body: bytes, *, terminated: bool = True) -> dict:
    """WSGI environ of a chunked request: no Content-Length; a server that decodes chunks says so."""
    extra = {"CONTENT_LENGTH": "", "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(body)}
    extra["CONTENT_TYPE"] = "application/json"
    return {**extra, "wsgi.input_terminated": True} if terminated else extra


def test_a_chunked_body_without_content_length_is_read(client, token, contact_form):
    response = post(client, "", token, **chunked(VALID_JSON.encode()))

    assert response.status_code == 202
    assert Event.objects.get().status == "ok"


def test_a_chunked_body_over_the_limit_gets_413(client, token, contact_form, settings):
    settings.INGEST_MAX_BODY_BYTES = 1000
    body = json.dumps({**VALID, "data": {**VALID["data"], "message": "x" * 2000}}).encode()

    response = post(client, "", token, **chunked(body))

    assert response.status_code == 413 and "1000 bytes" in response.json()["error"]
    assert not Event.objects.exists()


def test_a_body_of_unknown_length_from_a_server_that_does_not_delimit_it_gets_411(client, token, contact_form):
    response = post(client, "", token, **chunked(VALID_JSON.encode(), terminated=False))

    assert response.status_code == 411
    assert "Content-Length" in response.json()["error"]


def test_a_gzip_body_is_accepted(client, token, contact_form):
    response = post(client, gzip.compress(VALID_JSON.encode()), token, HTTP_CONTENT_ENCODING="gzip")

    assert response.status_code == 202
    assert Event.objects.get().data == VALID["data"]


def test_a_gzip_bomb_stops_at_the_limit_with_413(client, token, contact_form):
    bomb = gzip.compress(b'{"eventType": "' + b"x" * (8 * 1024 * 1024) + b'"}')
    assert len(bomb) < 1024 * 1024

    response = post(client, bomb, token, HTTP_CONTENT_ENCODING="gzip")

    assert response.status_code == 413
    assert "decompressed" in response.json()["error"]


def test_a_body_that_is_not_gzip_as_declared_gets_400(client, token):
    response = post(client, VALID_JSON, token, HTTP_CONTENT_ENCODING="gzip")

    assert response.status_code == 400 and "gzip" in response.json()["error"]


@pytest.mark.parametrize("encoding", ["br", "deflate", "gzip, br", "compress"])
def test_other_content_encodings_get_415(client, token, encoding):
    response = post(client, VALID_JSON, token, HTTP_CONTENT_ENCODING=encoding)

    assert response.status_code == 415 and "Content-Encoding" in response.json()["error"]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"]
)
def test_a_body_that_is_not_json_text_gets_415(client, token, contact_form, content_type):
    response = post(client, VALID_JSON, token, content_type=content_type)

    assert response.status_code == 415 and "application/json" in response.json()["error"]
    assert not Event.objects.exists()


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON; charset=UTF-8"])
def test_a_json_content_type_may_name_utf_8(client, token, contact_form, content_type):
    assert post(client, VALID_JSON, token, content_type=content_type).status_code == 202


def test_a_body_without_content_type_gets_415(client, token):
    response = client.generic("POST", ONE, VALID_JSON, content_type="", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 415


@pytest.mark.parametrize("path", [ONE, BATCH])
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_a_wrong_method_gets_a_json_405_naming_post(client, token, path, method):
    response = client.generic(method, path, headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response["Content-Type"] == "application/json" and "POST" in response.json()["error"]


def test_a_head_request_gets_405_too(client, token):
    response = client.head(ONE)

    assert response.status_code == 405 and response["Allow"] == "POST"


def test_a_token_that_is_not_text_is_refused_with_401(client, contact_form):
    response = client.post(ONE, VALID_JSON, content_type="application/json", headers={"Authorization": "Bearer \udc80"})

    assert response.status_code == 401
