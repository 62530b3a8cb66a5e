"""Event-type pages: list (pages, archived, conflicts), sync, editor (rows, inline errors), push, conflicts.

Calls to Webmarketer go to the real vendor sandbox process over loopback."""

from __future__ import annotations

import pytest
from django.utils import timezone

from tests.factories import (
    event_type_make,
    sandbox_connection_make,
    sandbox_webmarketer_api,
    user_make,
)
from tracking.models import AuditEntry, EventType, EventTypeConflict
from tracking.services.webmarketer import event_types_pull

pytestmark = pytest.mark.django_db

FLAGS = {"discriminant": False, "isPii": False, "isMostProbableLocation": False, "optional": False}
EMAIL = {**FLAGS, "type": "email", "entity": "user", "storageKey": "email", "ingestionKey": "email"}
PHONE = {**FLAGS, "type": "phone", "entity": "user", "storageKey": "phone", "ingestionKey": "phone", "optional": True}


@pytest.fixture
def marketing(client):
    client.force_login(user_make("Marketing"))
    return client


@pytest.fixture
def wm(sandbox, sandbox_url):
    """A Webmarketer connection to the sandbox, and the sandbox's API as Webmarketer's own console."""
    connection = sandbox_connection_make(sandbox_url)
    with sandbox_webmarketer_api(sandbox_url, connection) as api:
        yield connection, api


def remote_type(api, reference: str, fields=None, **extra) -> dict:
    body = {"reference": reference, "name": reference.title(), "fields": fields or [EMAIL], **extra}
    response = api.post("event-types", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def editor_post(**overrides) -> dict:
    """What the editor's form posts: the type's inputs, then one prefix per row and the row's inputs."""
    data = {
        "name": "Call me back",
        "reference": "call-me-back",
        "phone_countries": "FR, BE",
        "expiration_from": "event-type",
        "retention_days": "365",
        "metadata": '{"form": "website"}',
        "fields_row": ["r0", "na1b2c3d4"],
        "r0-type": "phone",
        "r0-entity": "user",
        "r0-storageKey": "phone",
        "r0-discriminant": "on",
        "r0-isPii": "on",
        "na1b2c3d4-type": "email",
        "na1b2c3d4-entity": "user",
        "na1b2c3d4-storageKey": "email",
        "na1b2c3d4-optional": "on",
        "na1b2c3d4-label": "Email address",
        "states_row": ["s1"],
        "s1-type": "boolean",
        "s1-entity": "state",
        "s1-storageKey": "qualified",
        "s1-optional": "on",
    }
    return data | overrides


# -- permissions -------------------------------------------------------------------------------------------
def test_anonymous_users_are_sent_to_the_login_page(client):
    assert client.get("/event-types/").url.startswith("/login/")


def test_sales_cannot_see_event_types(client):
    client.force_login(user_make("Sales"))
    assert client.get("/event-types/").status_code == 403
    assert "/event-types/" not in client.get("/leads/").content.decode()


def test_auditors_see_event_types_but_change_nothing(client):
    event_type = event_type_make()
    conflict = EventTypeConflict.objects.create(
        event_type=event_type,
        connection=sandbox_free_connection(),
        remote={**doc(event_type), "_id": "x"},
        local={},
        remote_hash="h",
    )
    client.force_login(user_make("Auditor"))

    listing = client.get("/event-types/").content.decode()
    detail = client.get(f"/event-types/{event_type.pk}/").content.decode()

    assert "contact-form" in listing and ">New event type</a>" not in listing and ">Sync now</button>" not in listing
    assert ">Push to Webmarketer</button>" not in detail and ">Edit</a>" not in detail
    assert "Keep ours" not in client.get(f"/event-types/conflicts/{conflict.pk}/").content.decode()
    assert client.get("/event-types/new/").status_code == 403
    assert client.post("/event-types/new/", editor_post()).status_code == 403
    assert client.post(f"/event-types/{event_type.pk}/edit/", editor_post()).status_code == 403
    assert client.post(f"/event-types/{event_type.pk}/push").status_code == 403
    assert client.post(f"/event-types/sync/{conflict.connection.pk}").status_code == 403
    assert client.post(f"/event-types/conflicts/{conflict.pk}/resolve", {"keep": "local"}).status_code == 403
    assert not AuditEntry.objects.exists()


def sandbox_free_connection():
    from tests.factories import webmarketer_connection_make

    return webmarketer_connection_make()


def doc(event_type):
    from tracking.services.webmarketer import event_type_document

    return event_type_document(event_type)


# -- list ------------------------------------------------------------------------------------------------------
def test_the_list_pages_through_many_event_types(marketing):
    for i in range(55):
        EventType.objects.create(reference=f"form-{i:02d}", name=f"Form {i}", fields=[EMAIL])

    first = marketing.get("/event-types/")
    second = marketing.get("/event-types/", {"page": 2})

    assert [e.reference for e in first.context["page"]][:2] == ["form-00", "form-01"]
    assert len(first.context["page"]) == 50 and "Page 1 of 2 (55 types)" in first.content.decode()
    assert [e.reference for e in second.context["page"]] == [f"form-{i}" for i in range(50, 55)]


def test_the_list_shows_fields_states_archived_ids_sync_and_conflicts(marketing):
    contact = event_type_make()  # 5 data fields, states qualified / converted, statistic turnover
    EventType.objects.filter(pk=contact.pk).update(wm_id="64ea0e9471360401bc438ef6", synced_at=timezone.now())
    EventType.objects.create(reference="old-form", name="Old", fields=[EMAIL], archived_at=timezone.now())
    EventTypeConflict.objects.create(
        event_type=contact, connection=sandbox_free_connection(), remote={"_id": "x"}, local={}, remote_hash="h"
    )

    response = marketing.get("/event-types/")
    html = response.content.decode()
    rows = {e.reference: e for e in response.context["page"]}

    assert rows["contact-form"].data_field_count == 5
    assert "64ea0e9471360401bc438ef6" in html and ">qualified<" in html and ">turnover<" in html
    assert rows["contact-form"].conflict is not None and ">conflict</a>" in html
    assert rows["old-form"].archived_at is not None and rows["old-form"].sync_state == "local"
    active = marketing.get(
        "/event-types/", {"archived": "no"}, headers={"HX-Request": "true", "HX-Target": "event-type-table"}
    )
    assert [e.reference for e in active.context["page"]] == ["contact-form"]
    assert b"<html" not in active.content
    archived = marketing.get("/event-types/", {"archived": "yes", "q": "old"})
    assert [e.reference for e in archived.context["page"]] == ["old-form"]


def test_sync_now_pulls_and_says_what_it_did(marketing, wm):
    connection, api = wm
    remote_type(api, "contact-form")
    remote_type(api, "newsletter")
    api.patch("event-types/newsletter", json={"archived": True}).raise_for_status()

    response = marketing.post(f"/event-types/sync/{connection.pk}", follow=True)

    html = response.content.decode()
    assert "Synced with wm: 2 created here: contact-form, newsletter." in html
    assert EventType.objects.get(reference="newsletter").archived_at is not None
    assert AuditEntry.objects.get(action="event_types.pull").user.username == "marketing"
    again = marketing.post(f"/event-types/sync/{connection.pk}", follow=True).content.decode()
    assert "Synced with wm: 2 unchanged." in again


def test_sync_now_shows_why_it_failed(marketing, wm):
    connection, _ = wm
    connection.settings = {"project_id": "Not A Project"}
    connection.save()

    html = marketing.post(f"/event-types/sync/{connection.pk}", follow=True).content.decode()

    assert "Sync with wm failed: Webmarketer: project_id must be 3–64 lowercase letters" in html


# -- editor ----------------------------------------------------------------------------------------------------
def test_the_editor_creates_an_event_type_with_fields_states_phone_order_and_expiration(marketing):
    response = marketing.post("/event-types/new/", editor_post())

    event_type = EventType.objects.get(reference="call-me-back")
    assert response.status_code == 302 and response.url == f"/event-types/{event_type.pk}/"
    assert [(f["storageKey"], f["entity"], f["type"]) for f in event_type.fields] == [
        ("phone", "user", "phone"),
        ("email", "user", "email"),
        ("qualified", "state", "boolean"),
    ]
    phone, email, _ = event_type.fields
    assert phone["discriminant"] and phone["isPii"] and not phone["optional"] and phone["ingestionKey"] is None
    assert email["optional"] and email["label"] == "Email address"
    assert event_type.phone_parsing_config == [{"order": 1, "countryCode": "FR"}, {"order": 2, "countryCode": "BE"}]
    assert event_type.expiration_policy == {"from": "event-type", "retentionDurationInDays": 365}
    assert event_type.metadata == {"form": "website"}
    assert AuditEntry.objects.get(action="event_type.create").user.username == "marketing"


def test_an_htmx_save_redirects_the_browser_to_the_new_type(marketing):
    response = marketing.post("/event-types/new/", editor_post(), headers={"HX-Request": "true"})

    assert response.headers["HX-Redirect"] == f"/event-types/{EventType.objects.get().pk}/"


def test_the_editor_shows_each_error_next_to_its_row_and_saves_nothing(marketing):
    post = editor_post(
        reference="Call Me",
        phone_countries="FR, ZZ",
        retention_days="soon",
        **{"na1b2c3d4-storageKey": "phone", "s1-type": "email", "r0-type": "telepathy"},
    )

    response = marketing.post("/event-types/new/", post, headers={"HX-Request": "true"})

    html = response.content.decode()
    editor = response.context["editor"]
    phone_row, email_row = editor.rows["fields"]
    (state_row,) = editor.rows["states"]
    assert response.status_code == 200 and "Nothing was saved" in html and b"<html" not in response.content
    assert phone_row.errors["type"] == [
        "Choose a type among string, email, phone, number, currency, boolean, date, location, message"
        " (not 'telepathy')."
    ]
    assert email_row.errors["storageKey"] == ["Storage key 'phone' is already used by row 1."]
    assert state_row.errors["type"] == ["A state is set to 0 or 1: use type boolean or number."]
    assert editor.form.errors["reference"][0].startswith("Use 1 to 64 lowercase letters")
    assert "ZZ" in editor.form.errors["phone_countries"][0]
    assert editor.form.errors["retention_days"] == ["Give the retention as a whole number of days, 1 to 36500."]
    # What was typed stays, rows included, so nothing is lost.
    assert 'value="na1b2c3d4"' in html and 'value="Email address"' in html
    assert not EventType.objects.exists()


def test_an_empty_row_and_a_type_without_fields_are_explained(marketing):
    post = editor_post(fields_row=["r0"], **{"r0-storageKey": "", "r0-entity": "user"})
    response = marketing.post("/event-types/new/", post)
    assert response.context["editor"].rows["fields"][0].errors["storageKey"] == ["A storage key is required."]

    post = editor_post(fields_row=[])
    html = marketing.post("/event-types/new/", post).content.decode()
    assert "Add at least one user or event field" in html


def test_the_add_buttons_get_a_new_row_for_their_section(marketing):
    first = marketing.get("/event-types/row", {"section": "fields"}, headers={"HX-Request": "true"})
    second = marketing.get("/event-types/row", {"section": "states"}, headers={"HX-Request": "true"})

    html = first.content.decode()
    assert html.lstrip().startswith("<tr") and 'name="fields_row"' in html
    assert '<option value="user"' in html and '<option value="state"' not in html
    states = second.content.decode()
    assert 'name="states_row"' in states and '<option value="statistic"' in states
    assert first.context["row"].prefix != second.context["row"].prefix
    assert marketing.get("/event-types/row", {"section": "nope"}).status_code == 404


def test_editing_shows_the_type_and_keeps_it_equal_when_saved_unchanged(marketing):
    event_type = event_type_make()
    before = list(event_type.fields)

    page = marketing.get(f"/event-types/{event_type.pk}/edit/")
    editor = page.context["editor"]
    assert [r.initial["storageKey"] for r in editor.rows["fields"]] == [
        "email",
        "first_name",
        "last_name",
        "phone",
        "message",
    ]
    assert [r.initial["storageKey"] for r in editor.rows["states"]] == ["qualified", "converted", "turnover"]
    assert editor.form.initial["phone_countries"] == "FR, BE"

    post = {
        "name": event_type.name,
        "reference": event_type.reference,
        "phone_countries": "FR, BE",
        "metadata": '{"form": "webmarketer"}',
        "fields_row": [r.prefix for r in editor.rows["fields"]],
        "states_row": [r.prefix for r in editor.rows["states"]],
    }
    for row in editor.all_rows:
        for key, value in row.initial.items():
            if value is True:
                post[f"{row.prefix}-{key}"] = "on"
            elif value is not False:
                post[f"{row.prefix}-{key}"] = value
    response = marketing.post(f"/event-types/{event_type.pk}/edit/", post)

    assert response.status_code == 302
    event_type.refresh_from_db()
    # ingestionKey equal to the storage key comes back as typed: the same field.
    assert event_type.fields == before


# -- push ------------------------------------------------------------------------------------------------------
def test_push_creates_the_type_in_webmarketer_and_keeps_its_id(marketing, wm):
    connection, api = wm
    marketing.post("/event-types/new/", editor_post())
    event_type = EventType.objects.get()

    response = marketing.post(f"/event-types/{event_type.pk}/push", {"connection": connection.pk}, follow=True)

    event_type.refresh_from_db()
    remote = api.get("event-types/call-me-back").json()
    assert event_type.wm_id == remote["_id"]
    assert f"Pushed call-me-back to wm: Webmarketer&#x27;s _id is {remote['_id']}." in response.content.decode()
    assert remote["fields"] == event_type.fields and remote["expirationPolicy"] == event_type.expiration_policy
    assert remote["phoneParsingConfig"] == [{"order": 1, "countryCode": "FR"}, {"order": 2, "countryCode": "BE"}]
    assert "in sync" in marketing.get(f"/event-types/{event_type.pk}/").content.decode()


def test_a_refused_push_shows_webmarketers_message_verbatim(marketing, wm):
    connection, api = wm
    remote_type(api, "contact-form")
    event_type = event_type_make()

    html = marketing.post(
        f"/event-types/{event_type.pk}/push", {"connection": connection.pk}, follow=True
    ).content.decode()

    assert (
        "Webmarketer refused the push (HTTP 409): An event type with reference &#x27;contact-form&#x27; already exists"
        in html
    )
    event_type.refresh_from_db()
    assert event_type.wm_id == ""


def test_a_type_edited_after_a_push_says_webmarketer_needs_the_change_too(marketing, wm):
    connection, _ = wm
    marketing.post("/event-types/new/", editor_post())
    event_type = EventType.objects.get()
    marketing.post(f"/event-types/{event_type.pk}/push", {"connection": connection.pk})

    response = marketing.post(f"/event-types/{event_type.pk}/edit/", editor_post(name="Call me back soon"), follow=True)

    html = response.content.decode()
    assert "changed here" in html and "cannot update them" in html
    assert (
        "its reference cannot change"
        in marketing.post(f"/event-types/{event_type.pk}/edit/", editor_post(reference="renamed")).content.decode()
    )


# -- conflicts -------------------------------------------------------------------------------------------------
@pytest.fixture
def conflict(wm):
    """contact-form changed here (name) and in Webmarketer (a phone field added) since the last sync."""
    connection, api = wm
    remote_type(api, "contact-form", [EMAIL])
    event_types_pull(connection=connection)
    EventType.objects.filter(reference="contact-form").update(name="Contact form (ours)")
    api.patch("event-types/contact-form", json={"fields": [EMAIL, PHONE]}).raise_for_status()
    event_types_pull(connection=connection)
    return EventTypeConflict.objects.get()


def test_the_conflict_shows_ours_and_webmarketers_side_by_side(marketing, conflict):
    response = marketing.get(f"/event-types/conflicts/{conflict.pk}/")

    facts = {f["label"]: f for f in response.context["facts"]}
    assert facts["Name"]["ours"] == "Contact form (ours)" and facts["Name"]["theirs"] == "Contact-Form"
    assert facts["Name"]["differs"] and not facts["Metadata"]["differs"]
    fields = {f["key"]: f for f in response.context["fields"]}
    assert fields["email"]["status"] == "same"
    assert fields["phone"]["status"] == "only in Webmarketer" and fields["phone"]["theirs"].startswith(
        "phone · user · optional"
    )
    html = response.content.decode()
    assert ">Keep ours</button>" in html and ">Take Webmarketer's</button>" in html
    listing = marketing.get("/event-types/").content.decode()
    assert f'href="/event-types/conflicts/{conflict.pk}/"' in listing


def test_taking_webmarketers_version_settles_the_conflict(marketing, conflict):
    response = marketing.post(f"/event-types/conflicts/{conflict.pk}/resolve", {"keep": "remote"}, follow=True)

    event_type = EventType.objects.get()
    assert "contact-form: took Webmarketer&#x27;s version." in response.content.decode()
    assert (event_type.name, [f["storageKey"] for f in event_type.fields]) == ("Contact-Form", ["email", "phone"])
    conflict.refresh_from_db()
    assert conflict.resolution == "took_remote" and conflict.resolved_by.username == "marketing"


def test_keeping_ours_settles_the_conflict_and_later_pulls_leave_it_alone(marketing, conflict, wm):
    connection, _ = wm
    response = marketing.post(f"/event-types/conflicts/{conflict.pk}/resolve", {"keep": "local"}, follow=True)

    assert "contact-form: kept ours." in response.content.decode()
    assert EventType.objects.get().name == "Contact form (ours)"
    assert event_types_pull(connection=connection).local_ahead == ["contact-form"]
    again = marketing.post(f"/event-types/conflicts/{conflict.pk}/resolve", {"keep": "remote"}, follow=True)
    assert "Not resolved: this conflict is already resolved." in again.content.decode()
    assert EventType.objects.get().name == "Contact form (ours)"


def test_without_an_enabled_webmarketer_connection_there_is_nothing_to_push_to(marketing):
    event_type = event_type_make()
    sandbox_free_connection().__class__.objects.update(enabled=False)

    detail = marketing.get(f"/event-types/{event_type.pk}/").content.decode()
    pushed = marketing.post(f"/event-types/{event_type.pk}/push", follow=True).content.decode()

    assert "No enabled Webmarketer connection to push to." in detail and ">Push to Webmarketer</button>" not in detail
    assert "Choose an enabled Webmarketer connection to push to." in pushed
    assert not AuditEntry.objects.filter(action="event_type.push").exists()


# -- polish ----------------------------------------------------------------------------------------------------
def test_the_detail_page_shows_metadata_as_json_like_the_editor_takes_it(marketing):
    event_type = event_type_make(metadata={"form": "website", "consent": True, "tags": None})

    html = marketing.get(f"/event-types/{event_type.pk}/").content.decode()

    assert "&quot;consent&quot;: true" in html and "&quot;tags&quot;: null" in html
    assert "True" not in html.split("Metadata", 1)[1].split("</section>", 1)[0]


def test_the_push_button_goes_once_the_type_is_in_webmarketer(marketing, wm):
    connection, _ = wm
    marketing.post("/event-types/new/", editor_post())
    event_type = EventType.objects.get()
    assert "Push to Webmarketer" in marketing.get(f"/event-types/{event_type.pk}/").content.decode()

    marketing.post(f"/event-types/{event_type.pk}/push", {"connection": connection.pk})

    html = marketing.get(f"/event-types/{event_type.pk}/").content.decode()
    assert "Push to Webmarketer" not in html and "In sync with Webmarketer: nothing to push." in html
