"""event_type_save: every rule of the editor, the Webmarketer shape it stores, and the audit trail."""

from __future__ import annotations

import pytest

from tests.factories import event_type_make, user_make
from tests.vendors.test_webmarketer_ops import SEED_CREATE_EVENT_TYPE
from tracking.models import AuditEntry, Event, EventType
from tracking.services.event_types import EventTypeInvalid, event_type_clean, event_type_save
from tracking.services.webmarketer import event_type_document
from tracking.vendors.webmarketer import event_type_body

pytestmark = pytest.mark.django_db


def row(key, type_="string", entity="event", **extra) -> dict:
    return {"type": type_, "entity": entity, "storageKey": key, "ingestionKey": "", "label": "", **extra}


def valid(**overrides) -> dict:
    data = {
        "name": "Call me back",
        "reference": "call-me-back",
        "fields": [
            row("phone", "phone", "user", discriminant=True, isPii=True),
            row("first_name", "string", "user", ingestionKey="firstName", optional=True, label="First name"),
            row("qualified", "boolean", "state", optional=True),
            row("turnover", "number", "statistic", optional=True),
        ],
        "phoneParsingConfig": ["fr", "BE"],
        "expirationPolicy": {"from": "event-type", "retentionDurationInDays": "365"},
        "metadata": {"form": "webmarketer"},
    }
    return data | overrides


def problems(data, event_type=None) -> dict[str, list[str]]:
    with pytest.raises(EventTypeInvalid) as caught:
        event_type_clean(data=data, event_type=event_type)
    return caught.value.errors


def test_it_creates_a_webmarketer_shaped_event_type_and_audits_it():
    user = user_make("Marketing")

    event_type = event_type_save(event_type=None, data=valid(), user=user)

    event_type.refresh_from_db()
    assert event_type.fields[0] == {
        "type": "phone",
        "entity": "user",
        "storageKey": "phone",
        "ingestionKey": None,  # as in the seed's create sample: Webmarketer reads the storage key
        "optional": False,
        "discriminant": True,
        "isPii": True,
        "isMostProbableLocation": False,
    }
    assert event_type.fields[1]["ingestionKey"] == "firstName" and event_type.fields[1]["label"] == "First name"
    assert [f["storageKey"] for f in event_type.states + event_type.statistics] == ["qualified", "turnover"]
    assert event_type.phone_parsing_config == [{"order": 1, "countryCode": "FR"}, {"order": 2, "countryCode": "BE"}]
    assert event_type.expiration_policy == {"from": "event-type", "retentionDurationInDays": 365}
    audit = AuditEntry.objects.get(action="event_type.create")
    assert audit.user == user and audit.details["before"] is None
    assert audit.details["after"]["reference"] == "call-me-back"


def test_it_updates_and_keeps_before_and_after_in_the_audit():
    event_type = event_type_save(event_type=None, data=valid(), user=None)

    event_type_save(event_type=event_type, data=valid(name="Call me back, please"), user=user_make("Marketing"))

    audit = AuditEntry.objects.get(action="event_type.update")
    assert (audit.details["before"]["name"], audit.details["after"]["name"]) == ("Call me back", "Call me back, please")
    assert EventType.objects.get().name == "Call me back, please"


@pytest.mark.parametrize(
    "reference, message",
    [
        ("", "A reference is required."),
        ("Contact-Form", "Use 1 to 64 lowercase letters, digits and single dashes (e.g. contact-form)."),
        ("contact--form", "Use 1 to 64 lowercase letters, digits and single dashes (e.g. contact-form)."),
        ("contact_form", "Use 1 to 64 lowercase letters, digits and single dashes (e.g. contact-form)."),
        ("-contact", "Use 1 to 64 lowercase letters, digits and single dashes (e.g. contact-form)."),
        ("a" * 65, "Use 1 to 64 lowercase letters, digits and single dashes (e.g. contact-form)."),
    ],
)
def test_the_reference_is_validated(reference, message):
    assert problems(valid(reference=reference))["reference"] == [message]


def test_a_reference_is_unique():
    event_type_make()  # contact-form
    assert problems(valid(reference="contact-form"))["reference"] == ["An event type 'contact-form' already exists."]


def test_the_reference_cannot_change_once_the_type_is_in_webmarketer_or_has_events():
    pushed = event_type_save(event_type=None, data=valid(), user=None)
    EventType.objects.filter(pk=pushed.pk).update(wm_id="64ea0e9471360401bc438ef6")
    pushed.refresh_from_db()
    used = event_type_save(event_type=None, data=valid(reference="used"), user=None)
    Event.objects.create(nonce="n-1", event_type=used, event_type_ref="used", event_date="2023-08-01T00:00:00Z")
    fresh = event_type_save(event_type=None, data=valid(reference="fresh"), user=None)

    assert "its reference cannot change" in problems(valid(reference="renamed"), pushed)["reference"][0]
    assert "its reference cannot change" in problems(valid(reference="renamed-too"), used)["reference"][0]
    assert event_type_save(event_type=fresh, data=valid(reference="renamed"), user=None).reference == "renamed"


def test_every_row_problem_is_reported_at_its_row_and_key():
    fields = [
        row("email", "email", "user"),
        row("", "string", "event"),  # empty key
        row("email", "email", "user"),  # duplicate storage key
        row("amount", "money", "event"),  # bad type
        row("with space", "string", "crowd"),  # bad key, bad entity
        row("qualified", "string", "state"),  # a state holds 0 or 1
        row("city", "string", "event", isMostProbableLocation=True, discriminant=True),
        row("mail", "email", "user", ingestionKey="email"),  # fed from a key another field reads
    ]

    errors = problems(valid(fields=fields))

    assert errors["fields.1.storageKey"] == ["A storage key is required."]
    assert errors["fields.2.storageKey"] == ["Storage key 'email' is already used by row 1."]
    assert (
        errors["fields.3.type"][0].startswith("Choose a type among string, email, phone")
        and "'money'" in errors["fields.3.type"][0]
    )
    assert errors["fields.4.storageKey"] == ["Storage key 'with space': use letters, digits, _ . - and no spaces."]
    assert errors["fields.4.entity"] == ["Choose user, event, state or statistic (not 'crowd')."]
    assert errors["fields.5.type"] == ["A state is set to 0 or 1: use type boolean or number."]
    assert errors["fields.6.isMostProbableLocation"] == ["Only a location field can be the most probable location."]
    assert errors["fields.6.discriminant"] == ["Only user fields identify the user (discriminant)."]
    assert errors["fields.7.ingestionKey"] == ["Events already bring 'email' to row 1."]
    assert not EventType.objects.exists()


def test_an_event_type_needs_a_user_or_event_field():
    errors = problems(valid(fields=[row("qualified", "boolean", "state")]))
    assert errors == {
        "fields": ["Add at least one user or event field: an event type without one has nothing to check."]
    }


@pytest.mark.parametrize(
    "config, message",
    [
        (["FR", "XX"], "Not an ISO 3166 alpha-2 country code with phone numbering: XX (e.g. FR, BE, GB)."),
        (["FRA"], "Not an ISO 3166 alpha-2 country code with phone numbering: FRA (e.g. FR, BE, GB)."),
        (["FR", "fr"], "Given twice: FR."),
    ],
)
def test_phone_parsing_countries_are_known_regions(config, message):
    assert problems(valid(phoneParsingConfig=config))["phoneParsingConfig"] == [message]


def test_phone_parsing_config_keeps_the_given_order_and_takes_webmarketers_shape():
    data = valid(phoneParsingConfig=[{"order": 2, "countryCode": "BE"}, {"order": 1, "countryCode": "FR"}])
    assert event_type_clean(data=data)["phoneParsingConfig"] == [
        {"order": 1, "countryCode": "FR"},
        {"order": 2, "countryCode": "BE"},
    ]
    assert event_type_clean(data=valid(phoneParsingConfig=["BE", "FR"]))["phoneParsingConfig"][0]["countryCode"] == "BE"


@pytest.mark.parametrize(
    "policy, path, message",
    [
        ({"from": "forever", "retentionDurationInDays": 30}, "expirationPolicy.from", "Choose project or event-type."),
        (
            {"from": "project", "retentionDurationInDays": "a year"},
            "expirationPolicy.retentionDurationInDays",
            "Give the retention as a whole number of days, 1 to 36500.",
        ),
        (
            {"from": "project", "retentionDurationInDays": 0},
            "expirationPolicy.retentionDurationInDays",
            "Give the retention as a whole number of days, 1 to 36500.",
        ),
    ],
)
def test_the_expiration_policy_has_the_seeds_shape(policy, path, message):
    assert problems(valid(expirationPolicy=policy))[path] == [message]


def test_no_expiration_policy_is_webmarketers_default():
    assert event_type_clean(data=valid(expirationPolicy=None))["expirationPolicy"] is None


def test_metadata_must_be_an_object():
    assert problems(valid(metadata="form=webmarketer"))["metadata"] == [
        'Metadata must be a JSON object, e.g. {"form": "webmarketer"}.'
    ]


def test_unknown_field_keys_are_kept_and_a_reordered_save_changes_nothing():
    mirrored = EventType.objects.create(
        reference="mirrored",
        name="Mirrored",
        fields=[
            {**row("qualified", "boolean", "state", optional=True), "ingestionKey": None, "since": "2023"},
            {**row("email", "email", "user"), "ingestionKey": None},
        ],
    )
    for f in mirrored.fields:
        for flag in ("optional", "discriminant", "isPii", "isMostProbableLocation"):
            f.setdefault(flag, False)
        f.pop("label")
    mirrored.save()
    before = list(mirrored.fields)
    # The editor lists fields first, then states: the same fields in another order.
    data = valid(reference="mirrored", name="Mirrored", fields=[before[1], before[0]], phoneParsingConfig=[])
    data["expirationPolicy"] = None
    data["metadata"] = {}

    saved = event_type_save(event_type=mirrored, data=data, user=None)

    assert saved.fields == before
    assert saved.fields[0]["since"] == "2023"


def test_what_the_editor_saves_pushes_as_the_seeds_create_sample():
    # webmarketer-api-1.0.0.txt, "Create an event-type", request sample ("from" names one of its two values).
    seed = {**SEED_CREATE_EVENT_TYPE, "expirationPolicy": {"from": "event-type", "retentionDurationInDays": 365}}
    typed = {
        "name": "Contact Form",
        "reference": "contact-form",
        "fields": [row("phone", "string", "user", discriminant=True)],
        "phoneParsingConfig": [],
        "expirationPolicy": {"from": "event-type", "retentionDurationInDays": "365"},
        "metadata": "",
    }

    event_type = event_type_save(event_type=None, data=typed, user=None)

    assert event_type_body(event_type_document(event_type)) == seed


def test_saving_a_pulled_type_unchanged_keeps_it_in_sync():
    """Webmarketer leaves out flags that are false and a null ingestionKey; the editor spells them out."""
    from tracking.services.event_types import event_type_sync_state
    from tracking.vendors.webmarketer import event_type_digest

    pulled = EventType.objects.create(
        reference="pulled",
        name="Pulled",
        fields=[
            {"type": "email", "entity": "user", "storageKey": "email", "discriminant": True},
            {"type": "boolean", "entity": "state", "storageKey": "qualified", "optional": True, "label": ""},
        ],
        phone_parsing_config=[{"countryCode": "FR", "order": 1, "_id": "pc-1"}],
        wm_id="wm-type-1",
    )
    pulled.synced_hash = event_type_digest(event_type_document(pulled))
    pulled.save()
    # What the editor posts back for it, untouched: every flag and key spelled out.
    data = valid(
        reference="pulled",
        name="Pulled",
        fields=[row("email", "email", "user", discriminant=True), row("qualified", "boolean", "state", optional=True)],
        phoneParsingConfig=["FR"],
        expirationPolicy=None,
        metadata={},
    )

    saved = event_type_save(event_type=pulled, data=data, user=None)

    assert event_type_sync_state(saved) == "synced"
    # A real change still shows.
    data["fields"][1]["label"] = "Qualified"
    assert event_type_sync_state(event_type_save(event_type=saved, data=data, user=None)) == "changed"
