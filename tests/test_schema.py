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


def test_phone_countries_are_tried_by_their_order_not_their_place_in_the_list():
    shuffled = [{"order": 2, "countryCode": "BE"}, {"order": 1, "countryCode": "FR"}]
    assert errors([field("phone")], {"f": "0613"}, shuffled) == [("f", "is not a valid phone number (tried: FR, BE)")]
    assert errors([field("phone")], {"f": "02 512 34 56"}, shuffled) == []  # Brussels: valid in BE only


def test_a_national_number_needs_its_country_in_the_parsing_config():
    assert errors([field("phone")], {"f": "02 512 34 56"}, [{"order": 1, "countryCode": "FR"}]) == [
        ("f", "is not a valid phone number (tried: FR)")
    ]
    assert errors([field("phone")], {"f": "06 12 34 56 78"}, []) == [
        ("f", "is not a valid phone number (tried: international format only)")
    ]
    assert errors([field("phone")], {"f": 612345678}, PHONE_CONFIG) == [("f", "must be a phone number (a string)")]


@pytest.mark.parametrize(
    "value, message",
    [
        ({"zipcode": "33000"}, "needs country as text"),
        ({"country": "France"}, "needs zipcode as text"),
        ({"zipcode": 33000, "country": "France"}, "needs zipcode as text"),
        ({"zipcode": "", "country": ""}, "needs zipcode and country as text"),
        ("33000 France", "must be an object {zipcode, country}"),
    ],
)
def test_a_location_is_an_object_with_zipcode_and_country(value, message):
    assert errors([field("location")], {"f": value}) == [("f", message)]


@pytest.mark.parametrize(
    "type_, bad, message",
    [
        ("email", 42, "must be an email address (a string)"),
        ("number", float("nan"), "must be a number"),
        ("number", float("inf"), "must be a number"),
        ("currency", "eur", "must be an ISO 4217 currency code such as EUR"),
        ("currency", "EURO", "must be an ISO 4217 currency code such as EUR"),
        ("boolean", 1, "must be true or false"),
        ("date", 1692645737, "is not an RFC3339 date-time (e.g. 2023-08-21T19:22:17Z)"),
        ("date", "2023-02-30T10:00:00Z", "is not a real date-time (day is out of range for month)"),
        ("date", "2023-08-21T19:22:17+0100", "is not an RFC3339 date-time (e.g. 2023-08-21T19:22:17Z)"),
    ],
)
def test_bad_values_are_explained(type_, bad, message):
    assert errors([field(type_)], {"f": bad}) == [("f", message)]


def test_the_seeds_three_spellings_of_one_instant_are_equal():
    # webmarketer-api-1.0.0.txt, "Date Specification": UTC, UTC+1 and UTC-2 for the same instant.
    instants = {
        parse_rfc3339(v) for v in ("2022-04-01T05:00:00", "2022-04-01T06:00:00+01:00", "2022-04-01T03:00:00-02:00")
    }
    assert instants == {datetime(2022, 4, 1, 5, tzinfo=UTC)}


def test_dates_take_fractions_and_lowercase_separators():
    assert parse_rfc3339("2023-08-21t19:22:17.095z") == datetime(2023, 8, 21, 19, 22, 17, 95000, tzinfo=UTC)
    assert parse_rfc3339("2023-08-21 19:22:17") == datetime(2023, 8, 21, 19, 22, 17, tzinfo=UTC)


def test_false_and_zero_are_values_not_missing_ones():
    assert errors([field("boolean", "b"), field("number", "n")], {"b": False, "n": 0}) == []
    assert errors([field("string", "s")], {"s": None}) == [("s", "is required")]
    assert errors([field("string", "s", optional=True)], {"s": ""}) == []
