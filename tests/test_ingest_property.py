"""Property: whatever is posted to the ingest API, it never answers 5xx, every refusal is a JSON error, and a
request is stored whole (as its per-item answers say) or not at all."""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import PURCHASE, event_type_make, route_make, source_make, webmarketer_connection_make
from tracking.models import Delivery, Event
from tracking.schema import MAX_DEPTH, UNSTORABLE

pytestmark = pytest.mark.django_db

ONE, BATCH = "/api/v1/events", "/api/v1/events/batch"
# Derandomized (the same examples on every run, so CI is not flaky) and with no example database on disk.
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
BODY_LIMIT = 64 * 1024  # small, so bodies past the limit are cheap to build


@dataclass(frozen=True)
class Raw:
    """JSON text written as is: what Python's json.dumps would not write (1e400, 5,000 levels of nesting)."""

    text: str


def to_json(value) -> str:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(to_json(v) for v in value) + "]"
    return json.dumps(value)


HOSTILE_CHARS = ["\x00", "\ud800", "\udbff", "\udc00", "\udfff", "\u2028", "é", "\U0001f600", '"', "\\"]
texts = st.text(st.one_of(st.characters(exclude_categories=()), st.sampled_from(HOSTILE_CHARS)), max_size=12)
raw_numbers = st.sampled_from(["1e400", "-1e400", "1e308", "-0.0", "1" + "0" * 400, "1" + "0" * 5000, "4e-400"])
deep = st.sampled_from([MAX_DEPTH, MAX_DEPTH + 1, 100, 1000, 5000]).map(lambda n: Raw("[" * n + "]" * n))
long_texts = st.sampled_from([200, 201, 1000, BODY_LIMIT]).map(lambda n: "x" * n)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**60, max_value=2**1100),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
    raw_numbers.map(Raw),
    deep,
)
json_values = st.recursive(
    leaves,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(texts, children, max_size=4)),
    max_leaves=12,
)
dates = st.one_of(
    st.sampled_from(
        [
            "2023-08-21T19:22:17Z",
            "2022-04-01T06:00:00+01:00",
            "9999-12-31T23:59:59-23:59",
            "0001-01-01T00:30:00+01:00",
            "9999-12-31T23:30:00-01:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2023-02-30T10:00:00Z",
            "2023-08-21T24:00:00Z",
            "2023-08-21T19:22:17+24:00",
            "٢٠٢٣-٠٨-٢١T19:22:17Z",
            "2023-08-21T19:22:17.1234567890123Z",
        ]
    ),
    texts,
    json_values,
)
contact_data = st.fixed_dictionaries(
    {"email": st.sampled_from(["john@example.com", "nope", "a\x00@b.co"]), "message": st.one_of(texts, leaves)},
    optional={"extra": json_values},
)
events = st.fixed_dictionaries(
    {},
    optional={
        "eventType": st.one_of(st.sampled_from(["contact-form", "purchase", "nope", "contact-form\x00"]), texts),
        "data": st.one_of(contact_data, json_values),
        "eventDate": dates,
        "trackerId": st.one_of(texts, long_texts, json_values),
        "nonce": st.one_of(st.sampled_from(["n-1", "n-2", "n\x00", "\ud800"]), texts, long_texts, json_values),
        "unexpected": json_values,
    },
)
# Mostly valid contact forms, so the answers hold accepted events and duplicates (nonces repeat) too.
good_events = st.fixed_dictionaries(
    {
        "eventType": st.just("contact-form"),
        "data": st.fixed_dictionaries({"email": st.just("john@example.com"), "message": texts.filter(bool)}),
    },
    optional={
        "nonce": st.one_of(st.sampled_from(["n-1", "n-2", "n-3"]), texts),
        "eventDate": st.one_of(st.just("2023-08-21T19:22:17Z"), dates),
        "trackerId": texts,
    },
)
single_bodies = st.one_of(good_events, events, json_values, deep)
batch_bodies = st.one_of(
    st.fixed_dictionaries({"events": st.lists(st.one_of(good_events, events, json_values), max_size=7)}),
    json_values,
)


@pytest.fixture
def token(settings):
    settings.INGEST_MAX_BODY_BYTES = BODY_LIMIT
    settings.INGEST_MAX_BATCH = 5
    event_type_make(PURCHASE)
    connection = webmarketer_connection_make()
    route_make(event_type_make(), connection)
    return source_make()[1]


def send(client, path: str, body: bytes, token: str, content_type="application/json", encoding=""):
    headers = {"Authorization": f"Bearer {token}"}
    if encoding:
        headers["Content-Encoding"] = encoding
    return client.generic("POST", path, body, content_type=content_type, headers=headers)


def assert_whole_or_nothing(response, events_before: int, deliveries_before: int) -> None:
    """Never a 5xx; JSON always; a refusal changed nothing; an answer with results matches what was stored."""
    assert response.status_code < 500, response.content[:500]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    if response.status_code >= 400:
        assert isinstance(body.get("error"), str) and body["error"]
    results = body.get("events", [body] if "id" in body else [])
    if response.status_code not in (202, 422) or not results:
        assert (Event.objects.count(), Delivery.objects.count()) == (events_before, deliveries_before)
        return
    stored = {str(e.uuid): e for e in Event.objects.filter(uuid__in=[r["id"] for r in results])}
    assert set(stored) == {r["id"] for r in results}
    new = {r["id"] for r in results if r["status"] != "duplicate"}
    assert Event.objects.count() == events_before + len(new)
    for result in results:
        event = stored[result["id"]]
        # A refused nonce is answered null (the errors name it): the stored one was generated, not sent.
        refused = any(e["field"] == "nonce" for e in event.errors)
        assert result["nonce"] == (None if refused else event.nonce)
        if result["status"] != "duplicate":
            assert event.status == {"accepted": "ok", "invalid": "invalid"}[result["status"]]
            assert (event.status == "invalid") == bool(result.get("errors"))
    new_deliveries = Delivery.objects.filter(event__uuid__in=new)
    assert Delivery.objects.count() == deliveries_before + new_deliveries.count()
    assert not new_deliveries.exclude(event__status="ok").exists()
    for uuid in new:  # what was stored is what any vendor and database take
        event = stored[uuid]
        text = json.dumps(
            [event.data, event.errors, event.nonce, event.event_type_ref, event.tracker_id], ensure_ascii=False
        )
        assert not UNSTORABLE.search(text)
        assert len(event.nonce) <= 200 and len(event.event_type_ref) <= 200 and len(event.tracker_id) <= 200
        assert all(r["status"] == "accepted" for r in results if r["id"] == uuid) or event.errors


def counts() -> tuple[int, int]:
    return Event.objects.count(), Delivery.objects.count()


@PROPERTY
@given(body=single_bodies)
def test_one_event_of_any_json_is_stored_whole_or_refused_in_json(client, token, body):
    before = counts()

    response = send(client, ONE, to_json(body).encode(), token)

    assert_whole_or_nothing(response, *before)


@PROPERTY
@given(body=batch_bodies)
def test_a_batch_of_any_json_is_stored_as_answered_per_item_or_refused_in_json(client, token, body):
    before = counts()

    response = send(client, BATCH, to_json(body).encode(), token)

    assert_whole_or_nothing(response, *before)


@PROPERTY
@given(
    path=st.sampled_from([ONE, BATCH]),
    body=st.one_of(st.binary(max_size=300), single_bodies.map(lambda b: to_json(b).encode(errors="surrogatepass"))),
    content_type=st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""]),
    encoding=st.sampled_from(["", "", "gzip", "gzip-truncated", "br"]),
)
def test_any_bytes_at_either_endpoint_get_a_json_answer_and_change_nothing_half_way(
    client, token, path, body, content_type, encoding
):
    if encoding.startswith("gzip"):
        body = gzip.compress(body)
        if encoding == "gzip-truncated":
            body, encoding = body[: len(body) // 2], "gzip"
    before = counts()

    response = send(client, path, body, token, content_type=content_type, encoding=encoding)

    assert_whole_or_nothing(response, *before)


def test_the_generated_json_holds_what_the_properties_are_about():
    # The strategies reach what broke the API: a guard that they keep doing so.
    text = to_json({"a": Raw("1e400"), "b": "\ud800\x00", "c": [Raw("[[]]")]})
    assert text == '{"a": 1e400, "b": "\\ud800\\u0000", "c": [[[]]]}'
    assert re.search(r"\\ud800", text)
