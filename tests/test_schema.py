from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tracking.demo import EVENT_TYPES, PHONE_CONFIG
from tracking.schema import parse_rfc3339, validate_data

CONTACT = next(e for e in EVENT_TYPES if e["reference"] == "contact-form")["fields"]


def field(type_, key="f", **extra):
    return {"type": type_, "entity": "event", "storageKey": key, "ingestionKey": key, "optional": False, **extra}


def errors(fields, data, phone=None):
    return [(e.field, e.message) for e in validate_data(fields, data, phone)]


def test_a_valid_contact_form_has_no_errors():
    assert errors(CONTACT, {"email": "john.locke@webmarketer.io", "message": "Hello"}) == []


def test_required_fields_are_reported_and_optional_ones_are_not():
    assert errors(CONTACT, {"message": "Hello"}) == [("email", "is required")]


def test_states_and_statistics_are_not_expected_in_data():
    fields = CONTACT + [{"type": "boolean", "entity": "state", "storageKey": "rdv", "optional": False}]
    assert errors(fields, {"email": "a@b.co", "message": "x"}) == []


def test_fields_are_read_by_ingestion_key():
    fields = [field("string", key="first_name", ingestionKey="firstName")]
    assert errors(fields, {"firstName": "John"}) == []
    assert errors(fields, {"first_name": "John"}) == [("firstName", "is required")]


@pytest.mark.parametrize(
    "type_, good, bad",
    [
        ("string", "text", 12),
        ("message", "text", ["x"]),
        ("email", "john@example.com", "john@"),
        ("number", 12.5, "12"),
        ("number", 0, True),
        ("currency", "EUR", "euro"),
        ("boolean", False, "false"),
        ("date", "2023-08-21T19:22:17.095Z", "21/08/2023"),
        ("date", "2023-08-21T19:22:17", "2023-08-21"),
        ("location", {"zipcode": "33000", "country": "France"}, {"zipcode": "33000"}),
    ],
)
def test_each_webmarketer_field_type_is_checked(type_, good, bad):
    assert errors([field(type_)], {"f": good}) == []
    assert len(errors([field(type_)], {"f": bad})) == 1


def test_phone_numbers_are_parsed_in_the_configured_country_order():
    fields = [field("phone")]
    assert errors(fields, {"f": "06 12 34 56 78"}, PHONE_CONFIG) == []  # French national format
    assert errors(fields, {"f": "0470 12 34 56"}, PHONE_CONFIG) == []  # Belgian mobile, second in order
    assert errors(fields, {"f": "+33 6 12 34 56 78"}, []) == []
    assert errors(fields, {"f": "0613"}, PHONE_CONFIG) == [("f", "is not a valid phone number (tried: FR, BE)")]


def test_data_must_be_an_object():
    assert errors(CONTACT, ["not", "an", "object"]) == [("data", "must be a JSON object")]


def test_dates_without_offset_are_utc():
    assert parse_rfc3339("2022-04-01T05:00:00") == datetime(2022, 4, 1, 5, tzinfo=UTC)
    assert parse_rfc3339("2022-04-01T06:00:00+01:00") == datetime(2022, 4, 1, 6, tzinfo=timezone(timedelta(hours=1)))
    with pytest.raises(ValueError):
        parse_rfc3339("yesterday")
