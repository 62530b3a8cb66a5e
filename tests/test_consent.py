"""Consent purposes as posted (ingest's list or object, Segment's categoryPreferences) and as routes need them."""

from __future__ import annotations

import pytest

from tracking.consent import (
    ConsentError,
    consent_from_segment_context,
    consent_parse,
    default_route_purposes,
    missing_purposes,
    suppressed_reason,
)


def test_a_list_of_purposes_is_read_in_one_order_without_duplicates():
    assert consent_parse(["personalisation", "Analytics", "analytics"]) == ["analytics", "personalisation"]


def test_an_object_grants_the_purposes_set_to_true():
    assert consent_parse({"advertising": False, "analytics": True, "personalization": True}) == [
        "analytics",
        "personalisation",
    ]


def test_an_empty_list_grants_nothing():
    assert consent_parse([]) == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["tracking"], "unknown purpose 'tracking'"),
        ({"advertising": "yes"}, "must be true or false"),
        ({"spying": False}, "unknown purpose 'spying'"),
        ("analytics", "must be a list of purposes"),
        ([1], "must be a string"),
    ],
)
def test_anything_else_is_refused_with_the_reason(value, message):
    with pytest.raises(ConsentError, match=message):
        consent_parse(value)


def test_segment_category_preferences_grant_the_categories_we_know():
    context = {
        "consent": {
            "categoryPreferences": {
                "Advertising": True,
                "Analytics": False,
                "Personalization": True,
                "Functional": True,  # a workspace's own category: no route of ours needs it
            }
        }
    }

    assert consent_from_segment_context(context) == ["advertising", "personalisation"]


@pytest.mark.parametrize("context", [None, {}, {"consent": {}}, {"consent": {"categoryPreferences": "all"}}, []])
def test_a_segment_call_without_category_preferences_says_nothing_about_consent(context):
    assert consent_from_segment_context(context) is None


def test_a_segment_call_refusing_every_category_grants_nothing():
    context = {"consent": {"categoryPreferences": {"Advertising": False, "Analytics": False}}}

    assert consent_from_segment_context(context) == []


def test_a_route_misses_the_purposes_the_event_does_not_grant():
    assert missing_purposes(["advertising"], ["personalisation"]) == ["advertising"]
    assert missing_purposes(["personalisation"], ["personalisation", "analytics"]) == []
    assert missing_purposes([], []) == []
    # Events stored before consent existed (no consent recorded) keep today's behaviour: sent.
    assert missing_purposes(["advertising"], None) == []
    assert suppressed_reason(["advertising"]) == "suppressed: no consent for advertising"


def test_each_vendor_kind_has_its_usual_purpose():
    assert {k: default_route_purposes(k) for k in ("webmarketer", "tracify", "algonomy", "acquia", "tracardi")} == {
        "webmarketer": ["advertising"],
        "tracify": ["advertising"],
        "algonomy": ["personalisation"],
        "acquia": ["analytics"],
        "tracardi": ["analytics"],
    }
