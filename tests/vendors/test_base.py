from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tracking.vendors.base import VendorRequest, parse_retry_after, redact


def test_it_reads_retry_after_in_seconds_and_as_a_date():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    assert parse_retry_after("12") == 12
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_it_redacts_secrets_raw_and_url_encoded():
    secret = "s3cr/et+key=="
    request = VendorRequest(
        "POST",
        "https://v.example/track",
        params={"accessKey": secret, "a": "1"},
        json={"token": secret},
        sensitive=(secret,),
    )

    assert secret not in request.recorded_url()
    assert "s3cr%2Fet%2Bkey%3D%3D" not in request.recorded_url()
    assert "a=1" in request.recorded_url()
    assert request.recorded_body() == '{"token": "[redacted]"}'


def test_it_does_not_redact_trivially_short_strings():
    assert redact("abc", ("a",)) == "abc"


def test_it_never_waits_a_negative_time_for_a_past_retry_date():
    # parse_retry_after never returns a negative delay for a date in the past.
    past = (datetime(2026, 1, 1, tzinfo=UTC) - timedelta(minutes=5)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(past, datetime(2026, 1, 1, tzinfo=UTC)) == 0
