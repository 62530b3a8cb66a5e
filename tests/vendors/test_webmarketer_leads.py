"""Webmarketer state and statistic updates: requests built on the seed's samples, answers classified (no HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest

from tracking.vendors.webmarketer import Webmarketer, classify_update, update_value

BASE = "https://api.webmarketer.io/api/v1/"
EVENT_ID = "bbee1c25-8718-4c95-b720-b00567113233"  # the seed's example event id
SAMPLE_DATE = datetime(2023, 5, 4, 12, 0, tzinfo=UTC)  # the seed's "2023-05-04T12:00:00.000Z"


@pytest.fixture
def vendor() -> Webmarketer:
    return Webmarketer(base_url=BASE, settings={"project_id": "my-project"}, secrets={})


def test_a_state_update_is_the_seed_request_sample(vendor):
    request = vendor.state_update_request(
        "tok-1", event_id=EVENT_ID, storage_key="converted", value=1, date=SAMPLE_DATE
    )

    assert request.method == "PATCH"
    assert request.url == f"{BASE}projects/my-project/events/{EVENT_ID}/states/converted"
    # "Update an event state", request sample: {"value": 1, "date": "2023-05-04T12:00:00.000Z"}
    assert request.json == {"value": 1, "date": "2023-05-04T12:00:00.000Z"}
    assert request.headers == {"Authorization": "Bearer tok-1"}


def test_a_statistic_update_is_the_seed_request_sample(vendor):
    request = vendor.statistic_update_request(
        "tok-1", event_id=EVENT_ID, storage_key="turnover", value=Decimal("4000.00"), date=SAMPLE_DATE
    )

    assert request.method == "PATCH"
    assert request.url == f"{BASE}projects/my-project/events/{EVENT_ID}/statistics/turnover"
    # "Update an event statistic", request sample: {"value": 4000, "date": "2023-05-04T12:00:00.000Z"}
    assert request.json == {"value": 4000, "date": "2023-05-04T12:00:00.000Z"}
    assert isinstance(request.json["value"], int)


def test_an_undo_sends_zero_and_a_date_in_another_zone_goes_as_utc(vendor):
    paris = timezone(timedelta(hours=2))
    request = vendor.state_update_request(
        "t",
        event_id=EVENT_ID,
        storage_key="qualified",
        value=Decimal("0.00"),
        date=datetime(2023, 8, 10, 16, 30, tzinfo=paris),
    )

    assert request.json == {"value": 0, "date": "2023-08-10T14:30:00.000Z"}


def test_the_date_is_left_out_when_not_given(vendor):
    request = vendor.statistic_update_request("t", event_id=EVENT_ID, storage_key="turnover", value=Decimal("99.50"))

    assert request.json == {"value": 99.5}


def test_the_path_parts_are_escaped(vendor):
    request = vendor.state_update_request("t", event_id="a/b", storage_key="x y", value=1)

    assert request.url == f"{BASE}projects/my-project/events/a%2Fb/states/x%20y"


@pytest.mark.parametrize("value", [2, -1, Decimal("0.5"), True, "1", None])
def test_a_state_value_is_0_or_1_only(vendor, value):
    with pytest.raises(ValueError):
        vendor.state_update_request("t", event_id=EVENT_ID, storage_key="converted", value=value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "4000", False])
def test_a_statistic_value_is_a_finite_number(value):
    with pytest.raises(ValueError):
        update_value(value, state=False)


def test_a_naive_date_is_refused(vendor):
    with pytest.raises(ValueError, match="timezone"):
        vendor.state_update_request("t", event_id=EVENT_ID, storage_key="converted", value=1, date=datetime(2023, 5, 4))


def test_the_recorded_request_hides_the_token(vendor):
    request = vendor.state_update_request("secret-token-123", event_id=EVENT_ID, storage_key="converted", value=1)

    assert "secret-token-123" not in request.recorded_url() + request.recorded_body()


def answer(status: int, body=None, headers=None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_any_success_answer_applies_the_update():
    assert classify_update(answer(200, {"ok": True}), kind="state", storage_key="converted").outcome == "delivered"
    assert classify_update(httpx.Response(204), kind="state", storage_key="converted").outcome == "delivered"


def test_a_missing_storage_key_fails_with_the_message_verbatim_and_explained():
    body = {"statusCode": 404, "message": "No storageKey matching field in this eventType"}

    result = classify_update(answer(404, body), kind="state", storage_key="convertd")

    assert result.outcome == "failed"
    assert result.error.startswith("HTTP 404: No storageKey matching field in this eventType — ")
    assert 'no state "convertd"' in result.error
    assert "misspelt" in result.error and "added to the event type after this event was created" in result.error


def test_an_unknown_event_404_is_explained_differently():
    result = classify_update(
        answer(404, {"statusCode": 404, "message": "Event not found"}), kind="statistic", storage_key="turnover"
    )

    assert result.outcome == "failed"
    assert "Event not found" in result.error and "does not know this event" in result.error


def test_429_and_5xx_retry_401_refreshes_and_400_fails():
    too_many = classify_update(
        answer(429, {"statusCode": 429, "message": "Too Many Requests"}, {"Retry-After": "7"}),
        kind="state",
        storage_key="k",
    )
    assert (too_many.outcome, too_many.retry_after) == ("retry", 7.0)
    assert classify_update(answer(503, {}), kind="state", storage_key="k").outcome == "retry"
    unauthorised = classify_update(
        answer(401, {"statusCode": 401, "message": "Unauthorized"}), kind="state", storage_key="k"
    )
    assert unauthorised.auth_expired and unauthorised.error == "HTTP 401: Unauthorized"
    bad = classify_update(
        answer(400, {"statusCode": 400, "message": "value must be 0 or 1"}), kind="state", storage_key="k"
    )
    assert (bad.outcome, bad.error) == ("failed", "HTTP 400: value must be 0 or 1")
