"""Webmarketer services: event-type mirror, trash pull / fix / replay, raw events, offline interactions.

Against the vendor sandbox mounted in-process (its Starlette app behind the session's httpx client), and
respx where a test needs answers the sandbox does not give."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import respx
from django.core.management import CommandError, call_command
from django.db import connection as db_connection
from django.utils import timezone
from starlette.testclient import TestClient

from tests.factories import events_deliver, service_account_make, webmarketer_connection_make
from tracking import tasks
from tracking.models import (
    AuditEntry,
    Delivery,
    Event,
    EventType,
    EventTypeConflict,
    OfflineInteraction,
    TrashedEvent,
    VendorConnection,
)
from tracking.sandbox import create_app
from tracking.services import delivery as delivery_service
from tracking.services.webmarketer import (
    AnswerError,
    FixInvalid,
    UnexpectedAnswer,
    event_type_conflict_resolve,
    event_type_push,
    event_types_pull,
    offline_interaction_send,
    offline_interactions_import_csv,
    raw_event_fetch,
    trash_dismiss,
    trash_error_explain,
    trash_error_keys,
    trash_fix_fields,
    trash_pull,
    trash_replay,
)
from tracking.vendors import http as vendor_http
from tracking.vendors.webmarketer import Webmarketer

API = "/webmarketer/api/v1/projects/my-project"
FLAGS = {"discriminant": False, "isPii": False, "isMostProbableLocation": False, "optional": False}
PHONE = {**FLAGS, "type": "phone", "entity": "user", "storageKey": "phone", "ingestionKey": "phone", "isPii": True}
EMAIL = {**FLAGS, "type": "email", "entity": "user", "storageKey": "email", "ingestionKey": "email", "optional": True}
PHONE_CONFIG = [{"order": 1, "countryCode": "FR"}]

pytestmark = pytest.mark.usefixtures("fresh_sessions")


@dataclass
class Sandbox:
    """The sandbox app, its Webmarketer state, an API client with a token, and the hub's requests to it."""

    api: TestClient
    state: object
    requests: list[httpx.Request] = field(default_factory=list)
    account: dict = field(default_factory=dict)

    def event_type(self, reference: str, fields: list | None = None, **extra) -> dict:
        body = {"reference": reference, "name": reference.title(), "fields": fields or [PHONE], **extra}
        response = self.api.post(f"{API}/event-types", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def change(self, reference: str, **changes) -> None:
        assert self.api.patch(f"{API}/event-types/{reference}", json=changes).status_code == 200

    def sent(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path.endswith(path)]


@pytest.fixture
def wm(monkeypatch, settings) -> Sandbox:
    settings.HUB_DISPATCH_CONCURRENCY = 1  # one thread: the in-process sandbox is not made for parallel calls
    app = create_app()
    sandbox = Sandbox(api=TestClient(app), state=app.state.sandbox.vendors["webmarketer"])

    def client(**options) -> TestClient:
        client = TestClient(app)
        client.event_hooks = {"request": [sandbox.requests.append], "response": []}
        return client

    monkeypatch.setattr(vendor_http, "build_client", client)
    account = sandbox.api.post("/__sandbox__/webmarketer/service-accounts").json()
    vendor = Webmarketer(base_url="http://testserver/", settings={}, secrets={"service_account": account})
    token = sandbox.api.post("/webmarketer/oidc/token", data=vendor.token_request(datetime.now(UTC)).form)
    sandbox.api.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    sandbox.account = account
    return sandbox


@pytest.fixture
def connection(wm, db) -> VendorConnection:
    connection = webmarketer_connection_make(
        base_url="http://sandbox/webmarketer/api/v1/",
        auth_url="http://sandbox/webmarketer/oidc/token",
        service_account=wm.account,
        name="wm-sandbox",
    )
    connection.settings = {"project_id": "my-project", "page_size": 2}
    connection.save()
    return connection


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("marketing", password="x")  # noqa: S106


# -- event types ---------------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_it_pulls_event_types_across_pages(wm, connection):
    remote = [wm.event_type(f"form-{i}") for i in range(5)]

    summary = event_types_pull(connection=connection)

    assert summary.created == [f"form-{i}" for i in range(5)]
    assert len(wm.sent("/event-types")) == 3 + 1  # 5 types by 2, then the (empty) archived listing
    first = EventType.objects.get(reference="form-0")
    assert (first.wm_id, first.fields, first.name) == (remote[0]["_id"], [PHONE], "Form-0")
    assert first.synced_at is not None and first.synced_hash


@pytest.mark.django_db
def test_a_second_pull_changes_nothing(wm, connection):
    wm.event_type("contact-form", [PHONE, EMAIL], metadata={"form": "webmarketer"}, phoneParsingConfig=PHONE_CONFIG)
    event_types_pull(connection=connection)

    summary = event_types_pull(connection=connection)

    assert summary.as_dict() == {
        "created": [],
        "updated": [],
        "archived": [],
        "conflicts": [],
        "local_ahead": [],
        "unchanged": 1,
    }


@pytest.mark.django_db
def test_it_marks_event_types_archived_in_webmarketer(wm, connection):
    wm.event_type("contact-form")
    wm.event_type("old-form")
    wm.change("old-form", archived=True)
    event_types_pull(connection=connection)
    wm.change("contact-form", archived=True)

    summary = event_types_pull(connection=connection)

    assert summary.archived == ["contact-form"]
    assert EventType.objects.get(reference="contact-form").archived_at is not None
    assert EventType.objects.get(reference="old-form").archived_at is not None


@pytest.mark.django_db
def test_it_takes_changes_made_only_in_webmarketer(wm, connection):
    wm.event_type("contact-form")
    event_types_pull(connection=connection)
    wm.change("contact-form", name="Contact form v2", fields=[PHONE, EMAIL])

    summary = event_types_pull(connection=connection)

    assert summary.updated == ["contact-form"]
    event_type = EventType.objects.get(reference="contact-form")
    assert (event_type.name, event_type.fields) == ("Contact form v2", [PHONE, EMAIL])


@pytest.mark.django_db
def test_it_keeps_local_changes_webmarketer_has_not_touched(wm, connection):
    wm.event_type("contact-form")
    event_types_pull(connection=connection)
    EventType.objects.filter(reference="contact-form").update(name="Ours")

    summary = event_types_pull(connection=connection)

    assert summary.local_ahead == ["contact-form"]
    assert EventType.objects.get(reference="contact-form").name == "Ours"


@pytest.mark.django_db
def test_it_records_a_conflict_when_both_sides_changed_and_overwrites_nothing(wm, connection):
    wm.event_type("contact-form")
    event_types_pull(connection=connection)
    event_type = EventType.objects.get(reference="contact-form")
    event_type.name = "Ours"
    event_type.save()
    wm.change("contact-form", fields=[PHONE, EMAIL])

    summary = event_types_pull(connection=connection)
    again = event_types_pull(connection=connection)

    assert summary.conflicts == again.conflicts == ["contact-form"]
    event_type.refresh_from_db()
    assert (event_type.name, event_type.fields) == ("Ours", [PHONE])
    (conflict,) = EventTypeConflict.objects.all()
    assert conflict.resolved_at is None and conflict.connection == connection
    assert conflict.remote["fields"] == [PHONE, EMAIL] and conflict.local["name"] == "Ours"


@pytest.mark.django_db
def test_a_conflict_settled_for_webmarketers_version_syncs_again(wm, connection, staff):
    wm.event_type("contact-form")
    event_types_pull(connection=connection)
    EventType.objects.filter(reference="contact-form").update(name="Ours")
    wm.change("contact-form", fields=[PHONE, EMAIL])
    event_types_pull(connection=connection)

    event_type_conflict_resolve(conflict=EventTypeConflict.objects.get(), keep="remote", user=staff)

    event_type = EventType.objects.get(reference="contact-form")
    assert (event_type.name, event_type.fields) == ("Contact-Form", [PHONE, EMAIL])
    assert EventTypeConflict.objects.get().resolution == "took_remote"
    assert event_types_pull(connection=connection).unchanged == 1


@pytest.mark.django_db
def test_a_type_defined_on_both_sides_before_any_sync_is_a_conflict_unless_equal(wm, connection):
    wm.event_type("contact-form")
    wm.event_type("newsletter", [EMAIL])
    EventType.objects.create(reference="contact-form", name="Contact form", fields=[PHONE])
    EventType.objects.create(reference="newsletter", name="Newsletter", fields=[EMAIL])

    summary = event_types_pull(connection=connection)

    assert (summary.conflicts, summary.unchanged) == (["contact-form"], 1)
    assert EventType.objects.get(reference="newsletter").wm_id


@pytest.mark.django_db
def test_it_pushes_an_event_type_and_keeps_its_id(wm, connection, staff):
    event_type = EventType.objects.create(
        reference="call-me-back", name="Call me back", fields=[PHONE], phone_parsing_config=PHONE_CONFIG
    )

    event_type_push(event_type=event_type, connection=connection, user=staff)

    remote = wm.api.get(f"{API}/event-types/call-me-back").json()
    assert event_type.wm_id == remote["_id"] and event_type.synced_at is not None
    assert (remote["fields"], remote["phoneParsingConfig"]) == ([PHONE], PHONE_CONFIG)
    assert AuditEntry.objects.get(action="event_type.push").user == staff
    assert event_types_pull(connection=connection).unchanged == 1


@pytest.mark.django_db
def test_a_refused_push_raises_webmarketers_message(wm, connection):
    wm.event_type("call-me-back")
    event_type = EventType.objects.create(reference="call-me-back", name="Call me back", fields=[PHONE])

    with pytest.raises(AnswerError) as caught:
        event_type_push(event_type=event_type, connection=connection)

    assert caught.value.status == 409
    assert caught.value.message == "An event type with reference 'call-me-back' already exists"


@pytest.mark.django_db
def test_it_takes_a_fresh_token_once_on_401(wm, connection):
    wm.event_type("contact-form")
    event_types_pull(connection=connection)
    wm.api.delete("/__sandbox__/webmarketer/tokens")

    assert event_types_pull(connection=connection).unchanged == 1
    assert wm.state.token_requests == 1 + 2  # the test client's, the hub's first, the hub's refresh


@pytest.mark.django_db
@respx.mock
def test_an_answer_of_the_wrong_shape_raises_a_clear_error_and_changes_nothing():
    connection = webmarketer_connection_make(service_account=service_account_make())
    respx.post("https://oauth.webmarketer.io/oidc/token").respond(json={"access_token": "tok", "expires_in": 3600})
    respx.get("https://api.webmarketer.io/api/v1/projects/my-project/event-types").respond(json=[{"reference": "x"}])

    with pytest.raises(UnexpectedAnswer, match="event types: the answer should be dict, got list"):
        event_types_pull(connection=connection)

    assert not EventType.objects.exists()


@pytest.mark.django_db
def test_the_sync_task_pulls_one_connection_and_fans_out_over_enabled_ones(wm, connection, monkeypatch):
    wm.event_type("contact-form")
    VendorConnection.objects.create(kind="webmarketer", name="off", enabled=False, base_url="http://x/")
    queued: list[int] = []
    monkeypatch.setattr(tasks.event_types_sync, "delay", queued.append)

    assert tasks.event_types_sync(connection.pk)["created"] == ["contact-form"]
    assert tasks.event_types_sync() is None and queued == [connection.pk]


# -- trash ---------------------------------------------------------------------------------------------------
@pytest.fixture
def call_me_back(wm, connection) -> EventType:
    """The type on both sides; locally a looser phone check let bad phones through before."""
    wm.event_type("call-me-back", [PHONE, EMAIL])
    return EventType.objects.create(
        reference="call-me-back", name="Call me back", fields=[PHONE, EMAIL], phone_parsing_config=PHONE_CONFIG
    )


def delivered_events(connection, event_type, datas: list[dict]) -> list[Event]:
    """Events sent to the sandbox through the delivery pipeline."""
    return events_deliver(connection, event_type, datas)


@pytest.mark.django_db
def test_it_pulls_the_trash_across_pages_links_our_events_and_stores_nothing_twice(wm, connection, call_me_back):
    events = delivered_events(
        connection,
        call_me_back,
        [{"phone": "0613"}, {"phone": "+33612345678"}, {"phone": "0614"}, {"email": "kate@example.com"}],
    )

    first = trash_pull(connection=connection)
    second = trash_pull(connection=connection)

    assert (first.fetched, first.stored, first.linked, first.since) == (3, 3, 3, None)
    assert len(wm.sent("/events/trashed")) == 2 + 2  # 3 items by 2, twice
    assert (second.fetched, second.stored) == (3, 0) and second.since is not None
    assert TrashedEvent.objects.count() == 3
    by_event = {t.event_id: t for t in TrashedEvent.objects.all()}
    assert set(by_event) == {events[0].pk, events[2].pk, events[3].pk}
    trashed = by_event[events[0].pk]
    assert trashed.event_type_ref == "call-me-back" and trashed.processing_date is not None
    assert trashed.errors == [{"type": "invalid-field", "field": PHONE, "value": "0613"}]
    assert trashed.wm_id == Delivery.objects.get(event=events[0]).vendor_ref


def test_it_explains_the_seeds_trash_errors():
    phone = {"type": "invalid-field", "value": "0613", "field": {**PHONE, "discriminant": True, "isPii": True}}
    location = {
        "type": "invalid-field",
        "value": {"zipcode": "wd", "country": "wd"},
        "field": {
            **FLAGS,
            "entity": "user",
            "storageKey": "location",
            "isMostProbableLocation": True,
            "type": "location",
            "ingestionKey": "location",
        },
    }

    assert trash_error_explain(phone) == "phone: '0613' is not a valid phone number"
    assert trash_error_explain(location) == (
        'location: {"country": "wd", "zipcode": "wd"} is not a valid location {zipcode, country}'
    )


def test_it_explains_missing_fields_and_the_announced_string_field():
    assert trash_error_explain({"type": "missing-field", "field": PHONE, "value": None}) == (
        "phone: required but missing (expected a valid phone number)"
    )
    assert trash_error_explain({"type": "invalid-field", "field": "amount", "value": "12€"}) == (
        "amount: '12€' is not a valid value"
    )


@pytest.mark.django_db
def test_it_fixes_and_replays_a_trashed_event_with_a_new_nonce(
    wm, connection, call_me_back, staff, django_capture_on_commit_callbacks
):
    (event,) = delivered_events(connection, call_me_back, [{"phone": "0613", "email": "kate@example.com"}])
    trash_pull(connection=connection)
    trashed = TrashedEvent.objects.get()
    fixed = {"phone": "+33612345678", "email": "kate@example.com"}

    with django_capture_on_commit_callbacks() as wake:
        delivery = trash_replay(trashed=trashed, data=fixed, user=staff)

    event.refresh_from_db()
    trashed.refresh_from_db()
    assert (event.data, event.nonce) == (fixed, "nonce-0")
    assert delivery.generation == 1 and delivery.nonce not in ("", event.nonce)
    assert delivery.status == "pending" and len(wake) == 1
    assert trashed.resolved and trashed.resolution == "replayed" and trashed.replay_delivery == delivery
    assert trashed.resolved_by == staff and delivery.nonce in trashed.resolution_note
    audit = AuditEntry.objects.get(action="trash.replay")
    assert audit.details["before"] == {"phone": "0613", "email": "kate@example.com"} and audit.details["after"] == fixed
    assert audit.details["nonce"] == delivery.nonce and audit.user == staff

    delivery_service.connection_dispatch(connection_id=connection.pk)

    delivery.refresh_from_db()
    assert delivery.status == "delivered" and delivery.vendor_ref != trashed.wm_id
    assert wm.state.events[delivery.vendor_ref]["nonce"] == delivery.nonce
    assert len(wm.state.trash) == 1  # the fixed event went through


@pytest.mark.django_db
def test_it_refuses_a_fix_that_still_breaks_the_event_type(wm, connection, call_me_back, staff):
    (event,) = delivered_events(connection, call_me_back, [{"phone": "0613"}])
    trash_pull(connection=connection)

    with pytest.raises(FixInvalid, match="phone: is not a valid phone number"):
        trash_replay(trashed=TrashedEvent.objects.get(), data={"phone": "0614"}, user=staff)

    event.refresh_from_db()
    assert event.data == {"phone": "0613"} and not TrashedEvent.objects.get().resolved
    assert Delivery.objects.count() == 1


@pytest.mark.django_db
def test_a_fix_follows_webmarketers_definition_of_the_fields_it_refused(connection):
    """Its version may be newer than our mirror: here the phone became required, and an `amount` appeared."""
    local_phone = {**PHONE, "optional": True}
    event_type = EventType.objects.create(reference="call-me-back", name="Call", fields=[local_phone, EMAIL])
    event = Event.objects.create(
        nonce="n-1", event_type=event_type, event_type_ref="call-me-back", data={}, event_date=timezone.now()
    )
    trashed = TrashedEvent.objects.create(
        wm_id="wm-1",
        connection=connection,
        event=event,
        event_type_ref="call-me-back",
        errors=[
            {"type": "missing-field", "field": PHONE, "value": None},
            {"type": "invalid-field", "field": "amount", "value": "12€"},  # the string form the docs announce
        ],
    )

    assert trash_fix_fields(trashed=trashed) == [
        PHONE,
        EMAIL,
        {"type": "string", "entity": "event", "storageKey": "amount", "ingestionKey": "amount", "optional": True},
    ]
    assert trash_error_keys(trashed.errors) == {"phone", "amount"}
    with pytest.raises(FixInvalid, match="phone: is required"):
        trash_replay(trashed=trashed, data={"email": "kate@example.com"}, user=None)


@pytest.mark.django_db
def test_it_dismisses_trashed_events_in_bulk(wm, connection, call_me_back, staff):
    delivered_events(connection, call_me_back, [{"phone": "0613"}, {"phone": "0614"}])
    trash_pull(connection=connection)

    assert trash_dismiss(items=TrashedEvent.objects.all(), user=staff, note="test traffic") == 2
    assert trash_dismiss(items=TrashedEvent.objects.all(), user=staff) == 0
    assert set(TrashedEvent.objects.values_list("resolution", "resolution_note")) == {("dismissed", "test traffic")}
    assert AuditEntry.objects.get(action="trash.dismiss").details["note"] == "test traffic"


@pytest.mark.django_db
def test_the_trash_task_pulls_one_connection_and_fans_out_over_enabled_ones(wm, connection, call_me_back, monkeypatch):
    delivered_events(connection, call_me_back, [{"phone": "0613"}, {"phone": "+33612345678"}])
    VendorConnection.objects.create(kind="webmarketer", name="off", enabled=False, base_url="http://x/")
    queued: list[int] = []
    monkeypatch.setattr(tasks.trash_pull_all, "delay", queued.append)

    assert tasks.trash_pull_all(connection.pk) == {"fetched": 1, "stored": 1, "linked": 1}
    assert tasks.trash_pull_all() is None and queued == [connection.pk]
    assert TrashedEvent.objects.get().errors[0]["value"] == "0613"


@pytest.mark.django_db
def test_it_fetches_the_raw_event_of_a_delivery(wm, connection, call_me_back):
    (event,) = delivered_events(connection, call_me_back, [{"phone": "+33612345678"}])

    raw = raw_event_fetch(delivery=Delivery.objects.get())

    assert raw["nonce"] == event.nonce and raw["data"] == {"phone": "+33612345678"}
    assert raw["eventType"] == "call-me-back"


# -- offline interactions ------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_it_shows_webmarketers_400_on_an_offline_interaction_verbatim(wm, connection):
    when = datetime(2023, 8, 1, 22, tzinfo=UTC)

    refused = offline_interaction_send(
        connection=connection, date=when, user_data={"email": "a@example.com"}, node_data={"cid": "5678"}
    )
    sent = offline_interaction_send(
        connection=connection,
        date=when,
        user_data={"email": "a@example.com"},
        node_data={"wmktId": "1234", "cid": "5678"},
    )

    assert (refused.status, refused.response_status) == ("rejected", 400)
    assert refused.answer == "wmktId must be present in nodeData"
    assert (sent.status, sent.response_status) == ("sent", 201)
    assert len(wm.state.offline_interactions) == 1


CSV = """date;wmktId;cid;email;phone
2023-08-01T22:00:00Z;1234;5678;a@example.com;
2023-08-01;1234;5678;b@example.com;
2023-08-02T10:00:00+02:00;;5678;c@example.com;
2023-08-03 09:00:00;1234;bad;;+33 6 12 34 56 78
;;;;
2023-08-04T00:00:00Z;1234;5678;not-an-email;
"""


@pytest.mark.django_db
@respx.mock
def test_it_imports_a_csv_reporting_bad_rows_by_number_and_webmarketers_400_verbatim():
    connection = webmarketer_connection_make(service_account=service_account_make())
    respx.post("https://oauth.webmarketer.io/oidc/token").respond(json={"access_token": "tok", "expires_in": 3600})
    refusal = {"statusCode": 400, "message": "cid bad is not a campaign of node 1234", "error": "Bad Request"}
    offline = respx.post("https://api.webmarketer.io/api/v1/projects/my-project/interactions/offline").mock(
        side_effect=lambda request: httpx.Response(400 if b'"bad"' in request.content else 201, json=refusal)
    )

    report = offline_interactions_import_csv(connection=connection, file=io.BytesIO(CSV.encode("utf-8-sig")))

    assert [(r.row, r.status) for r in report.rows] == [
        (2, "sent"),
        (3, "invalid"),
        (4, "invalid"),
        (5, "rejected"),
        (7, "invalid"),
    ]
    messages = {r.row: r.message for r in report.rows}
    assert messages[3].startswith("date '2023-08-01' is not an RFC3339 date-time")
    assert messages[4] == "wmktId is empty (Webmarketer needs it to find the advertiser node)"
    assert messages[5] == "cid bad is not a campaign of node 1234"
    assert messages[7] == "email 'not-an-email' is not a valid email address"
    assert (report.sent, report.failed) == (1, 4)
    assert offline.call_count == 2
    assert json.loads(offline.calls[1].request.content) == {
        "date": "2023-08-03T09:00:00Z",
        "userData": {"phone": "+33 6 12 34 56 78"},
        "nodeData": {"wmktId": "1234", "cid": "bad"},
    }
    assert list(OfflineInteraction.objects.order_by("id").values_list("status", "origin")) == [
        ("sent", "upload.csv row 2"),
        ("rejected", "upload.csv row 5"),
    ]


@pytest.mark.django_db
def test_a_csv_without_the_required_columns_sends_nothing(wm, connection):
    with pytest.raises(ValueError, match=r"row 1 \(header\): missing column wmktId"):
        offline_interactions_import_csv(
            connection=connection, file=io.StringIO("date,email\n2023-08-01T00:00:00Z,a@b.co\n")
        )

    assert not OfflineInteraction.objects.exists() and not wm.state.offline_interactions


@pytest.mark.django_db
def test_the_import_command_prints_each_row_and_fails_when_one_was_not_sent(wm, connection, tmp_path):
    path = tmp_path / "offline.csv"
    path.write_text(
        "date,wmktId,cid,email\n2023-08-01T22:00:00Z,1234,5678,a@example.com\n2023-08-02T00:00:00Z,1234,5678,nope\n"
    )
    out = io.StringIO()

    with pytest.raises(CommandError, match="1 of 2 rows were not sent"):
        call_command("import_offline_interactions", str(path), "--connection", "wm-sandbox", stdout=out)

    assert out.getvalue().splitlines() == [
        "row 2: sent",
        "row 3: invalid: email 'nope' is not a valid email address",
        "1 sent, 1 not sent, of 2 rows.",
    ]


@pytest.mark.django_db
def test_the_import_command_succeeds_when_every_row_was_sent(wm, connection, tmp_path):
    path = tmp_path / "offline.csv"
    path.write_text("date,wmktId,cid,user.firstName,email\n2023-08-01T22:00:00Z,1234,5678,Kate,k@example.com\n")
    out = io.StringIO()

    call_command("import_offline_interactions", str(path), "--connection", "wm-sandbox", stdout=out)

    assert "row 2: sent" in out.getvalue()
    assert wm.state.offline_interactions[0]["userData"] == {"firstName": "Kate", "email": "k@example.com"}


@pytest.mark.django_db
def test_the_import_command_skips_rows_already_sent_unless_told_to_resend(wm, connection, tmp_path):
    path = tmp_path / "offline.csv"
    path.write_text("date,wmktId,email\n2023-08-01T22:00:00Z,1234,k@example.com\n")
    call_command("import_offline_interactions", str(path), "--connection", "wm-sandbox", stdout=io.StringIO())
    out = io.StringIO()

    call_command("import_offline_interactions", str(path), "--connection", "wm-sandbox", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0].startswith("row 2: already sent, not sent again: already sent on ")
    assert lines[0].endswith("UTC (offline.csv row 2)")
    assert lines[1] == "0 sent, 1 already sent before (not sent again), 0 not sent, of 1 rows."
    assert len(wm.state.offline_interactions) == 1

    call_command("import_offline_interactions", str(path), "--connection", "wm-sandbox", "--resend", stdout=out)

    assert len(wm.state.offline_interactions) == 2
    assert OfflineInteraction.objects.filter(status="sent").count() == 2


# -- trash pulls: a first pull of a big trash, late items, a clock ahead of Webmarketer's -------------------
TRASH_URL = "https://api.webmarketer.io/api/v1/projects/my-project/events/trashed"


class Trash:
    """Webmarketer's trash as its listing answers: items filtered on processingDate by since/until, newest
    first, with its own clock in the Date header."""

    def __init__(self, mock, clock_offset=None):
        self.items: list[dict] = []
        self.offset = clock_offset or (lambda: timedelta(0))
        mock.post("https://oauth.webmarketer.io/oidc/token").mock(
            return_value=httpx.Response(200, json={"access_token": "tok", "expires_in": 3600})
        )
        mock.get(TRASH_URL).mock(side_effect=self.answer)

    def add(self, wm_id: str, processed: datetime) -> None:
        self.items.append(
            {"_id": wm_id, "eventTypeRef": "call-me-back", "errors": [], "processingDate": processed.isoformat()}
        )

    def answer(self, request: httpx.Request) -> httpx.Response:
        query = request.url.params
        since, until = (datetime.fromisoformat(query[k]) if query.get(k) else None for k in ("since", "until"))
        items = [
            i
            for i in sorted(self.items, key=lambda i: i["processingDate"], reverse=True)
            if (since is None or datetime.fromisoformat(i["processingDate"]) >= since)
            and (until is None or datetime.fromisoformat(i["processingDate"]) <= until)
        ]
        offset, limit = int(query["offset"]), int(query["limit"])
        page = items[offset : offset + limit]
        date = format_datetime(timezone.now() + self.offset(), usegmt=True)
        return httpx.Response(200, json={"count": len(page), "total": len(items), "data": page}, headers={"Date": date})


SQLITE_DEFAULT_MAX_PARAMS = 32_766  # SQLite's default limit per statement; PostgreSQL's protocol allows 65,535


@pytest.mark.django_db
def test_a_first_pull_of_a_big_trash_never_binds_more_parameters_than_a_database_allows():
    connection = webmarketer_connection_make()
    connection.settings["page_size"] = 40_000
    connection.save()
    largest = []

    def measured(execute, sql, params, many, context):
        largest.append(len(params or ()))
        return execute(sql, params, many, context)

    with respx.mock() as mock:
        trash = Trash(mock)
        past = timezone.now() - timedelta(days=1)
        for i in range(33_000):  # a first pull (no watermark yet) reads the whole trash
            trash.add(f"t{i}", past)

        with db_connection.execute_wrapper(measured):
            pulled = trash_pull(connection=connection)

    assert (pulled.fetched, pulled.stored) == (33_000, 33_000)
    assert TrashedEvent.objects.count() == 33_000
    assert max(largest) <= SQLITE_DEFAULT_MAX_PARAMS


@pytest.mark.django_db
def test_an_item_that_shows_up_late_in_the_trash_is_still_pulled():
    connection = webmarketer_connection_make()
    with respx.mock() as mock:
        trash = Trash(mock)
        trash.add("early", timezone.now() - timedelta(minutes=1))
        assert trash_pull(connection=connection).stored == 1
        # Processed 20 minutes ago, listed only now.
        trash.add("late", timezone.now() - timedelta(minutes=20))

        assert trash_pull(connection=connection).stored == 1

    assert set(TrashedEvent.objects.values_list("wm_id", flat=True)) == {"early", "late"}


@pytest.mark.django_db
def test_a_clock_ahead_of_webmarketers_misses_no_trash_item():
    connection = webmarketer_connection_make()
    behind = timedelta(hours=-2)  # Webmarketer's clock is 2 hours behind ours
    with respx.mock() as mock:
        trash = Trash(mock, clock_offset=lambda: behind)
        trash_pull(connection=connection)
        trash.add("processed-just-now", timezone.now() + behind)  # dated by Webmarketer's clock

        assert trash_pull(connection=connection).stored == 1

    assert TrashedEvent.objects.get().wm_id == "processed-just-now"
