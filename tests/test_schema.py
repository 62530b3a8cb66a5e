from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tracking.demo import EVENT_TYPES, PHONE_CONFIG
from tracking.schema import (
    MAX_DEPTH,
    TOO_DEEP_MARK,
    FieldError,
    json_float,
    json_int,
    parse_rfc3339,
    storable_copy,
    validate_data,
)

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


@pytest.mark.parametrize(
    "value", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"]
)
def test_a_date_past_the_years_datetime_holds_once_in_utc_is_refused(value):
    with pytest.raises(ValueError, match="out of range once converted to UTC"):
        parse_rfc3339(value)


def test_dates_are_written_with_ascii_digits_only():
    with pytest.raises(ValueError, match="not an RFC3339"):
        parse_rfc3339("٢٠٢٣-٠٨-٢١T19:22:17Z")


def test_an_integer_past_a_double_is_not_a_number_to_a_vendor():
    assert errors([field("number")], {"f": 10**400}) == [("f", "must be a number")]
    assert errors([field("number")], {"f": 2**64}) == []


def test_a_storable_copy_names_and_escapes_what_no_vendor_takes():
    item = {"data": {"a\x00": "x\ud800", "n": json_float("1e400"), "i": 10**400, "ok": [1, "é"]}, "nonce": "n"}

    copy, problems = storable_copy(item)

    assert copy == {"data": {"a\\u0000": "x\\ud800", "n": "1e400", "i": "1" + "0" * 400, "ok": [1, "é"]}, "nonce": "n"}
    assert [p.field for p in problems] == ["data.a\\u0000", "data.a\\u0000", "data.n", "data.i"]
    assert problems[0].message == "key contains a NUL character (\\u0000), which no vendor takes"
    assert problems[1].message == "contains a lone UTF-16 surrogate (\\ud800), which no vendor takes"


def test_a_storable_copy_cuts_nesting_past_the_limit_and_keeps_a_key_that_was_sent_as_its_escape():
    deep: list = []
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]

    copy, problems = storable_copy({"data": {"d": deep, "k\\u0000": 1, "k\x00": 2}})

    assert copy["data"]["k\\u0000"] == 1 and copy["data"]["k\\u0000~"] == 2  # sent as text, then as a NUL
    cut = copy["data"]["d"]
    for _ in range(MAX_DEPTH - 2):
        cut = cut[0]
    assert cut == TOO_DEEP_MARK
    too_deep = "data.d" + "[0]" * (MAX_DEPTH - 2)
    assert [(p.field, p.message) for p in problems] == [
        (too_deep, f"is nested deeper than {MAX_DEPTH} levels"),
        ("data.k\\u0000", "key contains a NUL character (\\u0000), which no vendor takes"),
    ]


def test_a_storable_copy_names_twenty_problems_and_counts_the_rest():
    _, problems = storable_copy({"data": {str(i): "\x00" for i in range(30)}})

    assert len(problems) == 21 and problems[-1] == FieldError("event", "and 10 more values no vendor takes")


def test_json_numbers_past_a_double_keep_their_text():
    assert json_float("1.5") == 1.5 and json_float("1e400").text == "1e400"
    assert json_int("12") == 12 and json_int("9" * 5000).text == "9" * 5000
