"""Webmarketer operations beyond events: requests built and answers read on the seed's samples (no HTTP)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from tracking.vendors.webmarketer import (
    AnswerError,
    UnexpectedAnswer,
    Webmarketer,
    event_type_digest,
    parse_event_type,
    parse_event_types,
    parse_offline_interaction,
    parse_raw_event,
    parse_trashed,
)

BASE = "https://api.webmarketer.io/api/v1/"
FLAGS = {"discriminant": False, "isPii": False, "isMostProbableLocation": False, "optional": False}
EMAIL_FIELD = {**FLAGS, "type": "email", "entity": "user", "storageKey": "email", "ingestionKey": "email"}
EMAIL_FIELD |= {"discriminant": True, "isPii": True}
MESSAGE_FIELD = {**FLAGS, "type": "message", "entity": "event", "storageKey": "message", "ingestionKey": "message"}
PHONE_CONFIG = [{"order": 1, "countryCode": "FR"}, {"order": 2, "countryCode": "BE"}]
# webmarketer-api-1.0.0.txt, "Get an event type" / "Create an event-type" response sample.
SEED_EVENT_TYPE = {
    "_id": "64ea0e9471360401bc438ef6",
    "createdAt": "2023-07-21T10:57:00Z",
    "updatedAt": "2023-08-26T14:35:00Z",
    "archivedAt": None,
    "projectId": "your-project",
    "reference": "contact-form",
    "name": "Generic Contact form",
    "fields": [EMAIL_FIELD, MESSAGE_FIELD],
    "metadata": {"form": "webmarketer"},
    "phoneParsingConfig": PHONE_CONFIG,
}
# "Get event types" response sample.
SEED_EVENT_TYPES = {
    "total": 2,
    "count": 2,
    "data": [
        SEED_EVENT_TYPE,
        {
            **SEED_EVENT_TYPE,
            "_id": "64ea0e9db67c7a3a8310c633",
            "createdAt": "2023-06-21T10:57:00Z",
            "updatedAt": "2023-06-26T14:35:00Z",
            "reference": "newsletter",
            "name": "Newsletter registration",
            "fields": [EMAIL_FIELD],
        },
    ],
}
# "Create an event-type" request sample.
SEED_CREATE_EVENT_TYPE = {
    "reference": "contact-form",
    "name": "Contact Form",
    "fields": [
        {
            "entity": "user",
            "type": "string",
            "storageKey": "phone",
            "ingestionKey": None,
            "optional": False,
            "discriminant": True,
            "isPii": False,
            "isMostProbableLocation": False,
        }
    ],
    "metadata": {},
    "expirationPolicy": {"from": "project, event-type", "retentionDurationInDays": 365},
}
# "Get Trashed events" response sample.
SEED_PHONE_ERROR = {
    "type": "invalid-field",
    "field": {
        **FLAGS,
        "discriminant": True,
        "entity": "user",
        "storageKey": "phone",
        "isPii": True,
        "type": "phone",
        "ingestionKey": "phone",
    },
    "value": "0613",
}
SEED_LOCATION_ERROR = {
    "type": "invalid-field",
    "field": {
        **FLAGS,
        "entity": "user",
        "storageKey": "location",
        "isMostProbableLocation": True,
        "type": "location",
        "ingestionKey": "location",
    },
    "value": {"zipcode": "wd", "country": "wd"},
}
SEED_TRASH = {
    "count": 2,
    "total": 36,
    "data": [
        {
            "_id": "4b51a5d9-4cd0-4c2b-8925-cf7c8ebc973c",
            "projectId": "my-project",
            "errors": [SEED_PHONE_ERROR],
            "eventTypeId": "64c27df69d741cd3db897b93",
            "eventTypeRef": "call-me-back",
            "processingDate": "2023-08-21T19:22:19.600Z",
            "rawEventDate": "2023-08-21T19:22:17.095Z",
        },
        {
            "_id": "99232bfd-af33-4373-af7b-6dffd2938e0b",
            "projectId": "my-project",
            "errors": [SEED_LOCATION_ERROR],
            "eventTypeId": "64c27df69d741cd3db897b93",
            "eventTypeRef": "call-me-back",
            "processingDate": "2023-08-20T18:47:15.520Z",
            "rawEventDate": "2023-08-20T18:47:13.159Z",
        },
    ],
}
# "Gets a Raw Event by ID" response sample.
SEED_RAW_EVENT = {
    "_id": "e5be5b04-0721-4a6e-87eb-b880f81a12d2",
    "projectId": "your-project",
    "nonce": "e5be5b04-0721-4a6e-87eb-b880f81a12d2",
    "eventType": "complaint",
    "trackerId": "ru1cc7QHeklGu2_3MOzLkLncu3KJAQ",
    "createdAt": "2004-09-22 14:15:00Z",
    "data": {
        "message": "Our plane got lost...",
        "email": "john.locke@webmarketer.io",
        "location": {"zipcode": "33000", "country": "France"},
    },
}
# "Create offline interaction" request and 400 response samples.
SEED_OFFLINE = {
    "date": "2023-08-01T22:00:00.000Z",
    "userData": {"email": "example@email.com"},
    "nodeData": {"wmktId": "1234", "cid": "5678"},
}
SEED_OFFLINE_400 = {"statusCode": 400, "message": "wmktId must be present in nodeData", "error": "Bad Request"}
# "Event insights" request sample (groupBy / interval: one of the documented values each).
SEED_INSIGHTS = {
    "since": "2023-08-01T22:00:00.000Z",
    "until": "2023-08-19T22:00:00.000Z",
    "metrics": ["event-count", "turnover", "qualified", "rdv", "converted"],
    "groupBy": "project",
    "interval": "day",
    "filter": None,
}


@pytest.fixture
def vendor() -> Webmarketer:
    return Webmarketer(base_url=BASE.rstrip("/"), settings={"project_id": "my-project"})


def answer(body, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body)


def test_it_builds_the_event_types_listing_with_every_filter(vendor):
    request = vendor.event_types_request(
        "tok",
        offset=50,
        limit=10,
        search="form",
        archived=True,
        storage_key="first_name",
        reference="contact-form",
        sort="name,-createdAt",
    )

    assert (request.method, request.url) == ("GET", BASE + "projects/my-project/event-types")
    assert request.params == {
        "offset": "50",
        "limit": "10",
        "search": "form",
        "archived": "true",
        "storageKey": "first_name",
        "reference": "contact-form",
        "sort": "name,-createdAt",
    }
    assert request.headers == {"Authorization": "Bearer tok"}
    assert "tok" in request.sensitive


def test_it_leaves_unset_filters_out_of_the_listing(vendor):
    assert vendor.event_types_request("tok").params == {"offset": "0", "limit": "100"}


def test_it_builds_get_one_event_type_with_the_reference_in_the_path(vendor):
    request = vendor.event_type_request("tok", "contact form/x")

    assert request.url == BASE + "projects/my-project/event-types/contact%20form%2Fx"


def test_it_builds_the_seed_create_event_type_body(vendor):
    request = vendor.event_type_create_request("tok", {**SEED_CREATE_EVENT_TYPE, "archivedAt": None, "_id": "x"})

    assert (request.method, request.url) == ("POST", BASE + "projects/my-project/event-types")
    assert request.json == SEED_CREATE_EVENT_TYPE


def test_it_reads_the_seed_event_types_page():
    page = parse_event_types(answer(SEED_EVENT_TYPES))

    assert (page.count, page.total) == (2, 2)
    assert [t["reference"] for t in page.data] == ["contact-form", "newsletter"]
    assert page.data[0]["_id"] == "64ea0e9471360401bc438ef6"
    assert page.data[0]["fields"] == [EMAIL_FIELD, MESSAGE_FIELD]
    assert page.data[0]["phoneParsingConfig"] == PHONE_CONFIG and page.data[0]["archivedAt"] is None


def test_it_reads_the_seed_created_event_type():
    created = parse_event_type(answer(SEED_EVENT_TYPE, 201))

    assert created["_id"] == "64ea0e9471360401bc438ef6" and created["name"] == "Generic Contact form"


def test_it_normalises_archived_dates_to_utc():
    archived = parse_event_type(answer({**SEED_EVENT_TYPE, "archivedAt": "2023-08-26T16:35:00+02:00"}))

    assert archived["archivedAt"] == "2023-08-26T14:35:00Z"


def test_it_builds_the_trash_request_on_the_default_path(vendor):
    since, until = datetime(2023, 8, 19, 22, tzinfo=UTC), datetime(2023, 8, 21, 21, 59, 59, 999000, tzinfo=UTC)

    request = vendor.trashed_request("tok", since=since, until=until, offset=50, limit=10)

    assert (request.method, request.url) == ("GET", BASE + "projects/my-project/events/trashed")
    assert request.params == {
        "since": "2023-08-19T22:00:00Z",
        "until": "2023-08-21T21:59:59.999Z",
        "offset": "50",
        "limit": "10",
    }


def test_it_builds_the_trash_and_insights_requests_on_configured_paths():
    vendor = Webmarketer(
        base_url=BASE,
        settings={
            "project_id": "my-project",
            "trash_path": "/trash/{projectId}",
            "insights_path": "projects/{projectId}/stats",
        },
    )
    now = datetime(2023, 8, 1, tzinfo=UTC)

    assert vendor.trashed_request("tok").url == BASE + "trash/my-project"
    assert vendor.insights_request("tok", since=now, until=now, metrics=["event-count"]).url == (
        BASE + "projects/my-project/stats"
    )


def test_it_reads_the_seed_trash_page():
    page = parse_trashed(answer(SEED_TRASH))

    assert (page.count, page.total) == (2, 36)
    first = page.data[0]
    assert first.id == "4b51a5d9-4cd0-4c2b-8925-cf7c8ebc973c"
    assert (first.event_type_ref, first.event_type_id) == ("call-me-back", "64c27df69d741cd3db897b93")
    assert first.errors == [SEED_PHONE_ERROR]
    assert first.processing_date == datetime(2023, 8, 21, 19, 22, 19, 600000, tzinfo=UTC)
    assert first.raw_event_date == datetime(2023, 8, 21, 19, 22, 17, 95000, tzinfo=UTC)


def test_it_builds_the_raw_event_request_and_reads_the_seed_answer(vendor):
    request = vendor.raw_event_request("tok", "bbee1c25-8718-4c95-b720-b00567113233")

    assert (request.method, request.url) == (
        "GET",
        BASE + "projects/my-project/events/bbee1c25-8718-4c95-b720-b00567113233",
    )
    assert parse_raw_event(answer(SEED_RAW_EVENT)) == SEED_RAW_EVENT


def test_it_builds_the_seed_offline_interaction(vendor):
    request = vendor.offline_interaction_request(
        "tok",
        date=datetime(2023, 8, 1, 22, tzinfo=UTC),
        user_data={"email": "example@email.com"},
        node_data={"wmktId": "1234", "cid": "5678"},
    )

    assert (request.method, request.url) == ("POST", BASE + "projects/my-project/interactions/offline")
    assert request.json == {**SEED_OFFLINE, "date": "2023-08-01T22:00:00Z"}


def test_it_reads_an_offline_400_verbatim():
    result = parse_offline_interaction(answer(SEED_OFFLINE_400, 400))

    assert not result.accepted
    assert (result.status, result.message) == (400, "wmktId must be present in nodeData")


def test_it_reads_an_accepted_offline_interaction():
    assert parse_offline_interaction(answer({"_id": "x"}, 201)).accepted


@pytest.mark.parametrize("status", [401, 429, 503])
def test_an_offline_answer_that_says_nothing_of_the_interaction_raises(status):
    with pytest.raises(AnswerError) as caught:
        parse_offline_interaction(answer({"statusCode": status, "message": "Unauthorized"}, status))

    assert caught.value.status == status


def test_it_builds_the_seed_insights_request(vendor):
    request = vendor.insights_request(
        "tok",
        since=datetime(2023, 8, 1, 22, tzinfo=UTC),
        until=datetime(2023, 8, 19, 22, tzinfo=UTC),
        metrics=SEED_INSIGHTS["metrics"],
        group_by="project",
        interval="day",
    )

    assert (request.method, request.url) == ("POST", BASE + "projects/my-project/events/insights")
    assert request.json == {**SEED_INSIGHTS, "since": "2023-08-01T22:00:00Z", "until": "2023-08-19T22:00:00Z"}


@pytest.mark.parametrize(("option", "value"), [("interval", "fortnight"), ("group_by", "user"), ("metrics", [])])
def test_it_refuses_insights_options_the_docs_do_not_list(vendor, option, value):
    options = {"since": datetime.now(UTC), "until": datetime.now(UTC), "metrics": ["event-count"], option: value}

    with pytest.raises(ValueError):
        vendor.insights_request("tok", **options)


@pytest.mark.parametrize(
    ("parse", "body", "words"),
    [
        (parse_event_types, [SEED_EVENT_TYPE], "the answer should be dict"),
        (parse_event_types, {"data": []}, "no 'count'"),
        (parse_event_types, {**SEED_EVENT_TYPES, "total": "2"}, "total should be int"),
        (parse_event_types, {**SEED_EVENT_TYPES, "data": [{"reference": "x"}]}, "data[0]: _id should be str"),
        (parse_event_type, {**SEED_EVENT_TYPE, "fields": {}}, "fields should be list"),
        (parse_event_type, {**SEED_EVENT_TYPE, "archivedAt": "last week"}, "archivedAt should be an RFC3339 date"),
        (parse_trashed, {**SEED_TRASH, "data": [{"errors": []}]}, "data[0]._id should be str"),
        (parse_trashed, {**SEED_TRASH, "data": [{"_id": "x", "errors": "bad phone"}]}, "errors should be list"),
        (parse_raw_event, "e5be5b04", "raw event should be dict"),
    ],
)
def test_it_raises_a_clear_error_on_an_answer_of_the_wrong_shape(parse, body, words):
    with pytest.raises(UnexpectedAnswer) as caught:
        parse(answer(body))

    assert words in str(caught.value)


def test_it_raises_a_clear_error_on_an_answer_that_is_not_json():
    with pytest.raises(UnexpectedAnswer, match="not JSON: <html>"):
        parse_event_types(httpx.Response(200, text="<html>proxy</html>"))


def test_it_raises_webmarketers_own_message_on_an_error():
    with pytest.raises(AnswerError) as caught:
        parse_event_type(answer({"statusCode": 404, "message": "Event type not found", "error": "Not Found"}, 404))

    assert (caught.value.status, caught.value.message) == (404, "Event type not found")
    assert "HTTP 404: Event type not found" in str(caught.value)


def test_the_digest_ignores_key_order_and_bookkeeping_but_not_content():
    shuffled = json.loads(json.dumps(SEED_EVENT_TYPE, sort_keys=True))
    shuffled |= {"_id": "other", "updatedAt": "2024-01-01T00:00:00Z", "createdAt": None}

    assert event_type_digest(shuffled) == event_type_digest(SEED_EVENT_TYPE)
    assert event_type_digest({**SEED_EVENT_TYPE, "name": "Renamed"}) != event_type_digest(SEED_EVENT_TYPE)
    archived = {**SEED_EVENT_TYPE, "archivedAt": "2023-08-26T14:35:00Z"}
    assert event_type_digest(archived) != event_type_digest(SEED_EVENT_TYPE)
    assert event_type_digest(archived) == event_type_digest({**archived, "archivedAt": "2023-08-26T16:35:00+02:00"})
