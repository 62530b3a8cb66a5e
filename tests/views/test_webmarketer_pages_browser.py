"""Event types, trash inbox and offline interactions in a real browser (Playwright + Debian's Chromium).

`window.kept` is set once per page: still there after an HTMX action, it proves nothing reloaded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from tests.conftest import console_login
from tests.factories import sandbox_connection_make, sandbox_webmarketer_api, user_make, webmarketer_connection_make
from tracking.models import EventType, EventTypeConflict, OfflineInteraction, TrashedEvent
from tracking.services.webmarketer import event_types_pull

pytestmark = pytest.mark.browser

FLAGS = {"discriminant": False, "isPii": False, "isMostProbableLocation": False, "optional": False}
EMAIL = {**FLAGS, "type": "email", "entity": "user", "storageKey": "email", "ingestionKey": "email"}
PHONE = {**FLAGS, "type": "phone", "entity": "user", "storageKey": "phone", "ingestionKey": "phone", "isPii": True}


def keep_marker(page) -> None:
    page.evaluate("window.kept = 'same page'")


def still_same_page(page) -> bool:
    return page.evaluate("window.kept") == "same page"


def row(page, section: str, n: int):
    return page.locator(f"#rows-{section} tr").nth(n)


def test_marketing_builds_an_event_type_in_the_editor_fixes_its_errors_and_pushes_it(
    page, transactional_db, sandbox, sandbox_url
):
    user_make("Marketing", password="pw-m")
    connection = sandbox_connection_make(sandbox_url)
    console_login(page, "marketing", "pw-m")

    page.get_by_role("link", name="Event types", exact=True).click()
    page.get_by_role("link", name="New event type").click()
    keep_marker(page)
    page.fill("#id_name", "Call me back")
    page.fill("#id_reference", "Call Me Back")
    first = row(page, "fields", 0)
    first.locator("select[name$=-type]").select_option("email")
    first.locator("select[name$=-entity]").select_option("user")
    first.locator("input[name$=-storageKey]").fill("email")
    first.locator("input[name$=-discriminant]").check()
    page.get_by_role("button", name="Add a field").click()
    expect(page.locator("#rows-fields tr")).to_have_count(2)
    second = row(page, "fields", 1)
    second.locator("select[name$=-type]").select_option("phone")
    second.locator("select[name$=-entity]").select_option("user")
    second.locator("input[name$=-storageKey]").fill("email")  # a mistake: used by row 1
    page.get_by_role("button", name="Add a field").click()
    expect(page.locator("#rows-fields tr")).to_have_count(3)
    row(page, "fields", 2).get_by_role("button", name="Remove").click()
    expect(page.locator("#rows-fields tr")).to_have_count(2)
    page.get_by_role("button", name="Add a state or statistic").click()
    row(page, "states", 0).locator("input[name$=-storageKey]").fill("qualified")
    page.fill("#id_phone_countries", "FR, XX")

    page.get_by_role("button", name="Save").click()

    expect(page.locator("#event-type-editor .error")).to_contain_text("Nothing was saved")
    expect(row(page, "fields", 1).locator(".errorlist")).to_have_text("Storage key 'email' is already used by row 1.")
    expect(page.locator("#id_reference + .errorlist")).to_contain_text("lowercase letters, digits and single dashes")
    expect(page.locator("#id_phone_countries + .errorlist")).to_contain_text("XX")
    assert still_same_page(page) and not EventType.objects.exists()

    page.fill("#id_reference", "call-me-back")
    row(page, "fields", 1).locator("input[name$=-storageKey]").fill("phone")
    page.fill("#id_phone_countries", "FR, BE")
    page.get_by_role("button", name="Save").click()

    expect(page.locator(".messages")).to_contain_text("Saved event type call-me-back.")
    event_type = EventType.objects.get()
    assert [(f["storageKey"], f["type"], f["entity"]) for f in event_type.fields] == [
        ("email", "email", "user"),
        ("phone", "phone", "user"),
        ("qualified", "boolean", "state"),
    ]
    assert event_type.phone_parsing_config == [{"order": 1, "countryCode": "FR"}, {"order": 2, "countryCode": "BE"}]

    page.get_by_role("button", name="Push to Webmarketer").click()

    expect(page.locator(".messages")).to_contain_text("Pushed call-me-back to wm: Webmarketer's _id is")
    event_type.refresh_from_db()
    with sandbox_webmarketer_api(sandbox_url, connection) as api:
        assert api.get("event-types/call-me-back").json()["_id"] == event_type.wm_id
    expect(page.locator(".facts")).to_contain_text("in sync")


def test_marketing_settles_a_conflict_by_taking_webmarketers_version(page, transactional_db, sandbox, sandbox_url):
    user_make("Marketing", password="pw-m")
    connection = sandbox_connection_make(sandbox_url)
    with sandbox_webmarketer_api(sandbox_url, connection) as api:
        api.post("event-types", json={"reference": "contact-form", "name": "Contact", "fields": [EMAIL]})
        event_types_pull(connection=connection)
        EventType.objects.filter(reference="contact-form").update(name="Contact (ours)")
        api.patch("event-types/contact-form", json={"fields": [EMAIL, PHONE]}).raise_for_status()
    console_login(page, "marketing", "pw-m")

    page.goto("/event-types/")
    page.get_by_role("button", name="Sync now").click()
    expect(page.locator(".messages")).to_contain_text(
        "1 changed on both sides (conflict: nothing overwritten): contact-form"
    )
    page.get_by_role("link", name="conflict").click()
    expect(page.locator("table.compare tr.differs").first).to_contain_text("Contact (ours)")
    expect(page.locator(".fields-compare")).to_contain_text("only in Webmarketer")
    page.get_by_role("button", name="Take Webmarketer's").click()

    expect(page.locator(".messages")).to_contain_text("contact-form: took Webmarketer's version.")
    assert EventType.objects.get().name == "Contact"
    assert EventTypeConflict.objects.get().resolution == "took_remote"


def test_marketing_dismisses_selected_trash_rows_without_a_reload(page, transactional_db):
    user_make("Marketing", password="pw-m")
    connection = webmarketer_connection_make()
    error = {"type": "invalid-field", "field": PHONE, "value": "0613"}
    items = [
        TrashedEvent.objects.create(
            wm_id=f"wm-{i}",
            connection=connection,
            event_type_ref="call-me-back",
            errors=[error],
            processing_date=timezone.now() - timedelta(minutes=i),
        )
        for i in range(3)
    ]
    console_login(page, "marketing", "pw-m")

    page.get_by_role("link", name="Trash").click()
    keep_marker(page)
    expect(page.locator("#trash-table tbody tr")).to_have_count(3)
    expect(page.locator("#trash-table tbody tr").first).to_contain_text("phone: '0613' is not a valid phone number")
    page.get_by_label("Select every open row").check()
    expect(page.locator("input[name=ids]:checked")).to_have_count(3)
    page.get_by_label("Select wm-1").uncheck()
    page.fill("#trash-bulk input[name=note]", "test traffic")
    page.get_by_role("button", name="Dismiss selected").click()

    expect(page.locator(".messages")).to_contain_text("2 trashed events dismissed.")
    expect(page.locator("#trash-table tbody tr")).to_have_count(1)
    expect(page.locator("#trash-table tbody tr")).to_contain_text("call-me-back")
    assert still_same_page(page)
    assert list(
        TrashedEvent.objects.filter(resolved=True).order_by("wm_id").values_list("wm_id", "resolution_note")
    ) == [
        ("wm-0", "test traffic"),
        ("wm-2", "test traffic"),
    ]

    page.select_option("select[name=state]", "resolved")
    expect(page.locator("#trash-table tbody tr")).to_have_count(2)
    assert items[1].wm_id not in page.locator("#trash-table").inner_text()


def test_marketing_sends_an_offline_interaction_and_imports_a_csv(page, transactional_db, sandbox, sandbox_url):
    user_make("Marketing", password="pw-m")
    sandbox_connection_make(sandbox_url)
    console_login(page, "marketing", "pw-m")

    page.get_by_role("link", name="Offline").click()
    page.fill("#id_date", "2023-08-01T22:00:00")
    page.fill("#id_email", "kate@example.com")
    page.fill("#id_wmkt_id", "1234")
    page.locator("#node-rows input[name=node_key]").fill("cid")
    page.locator("#node-rows input[name=node_value]").fill("5678")
    page.get_by_role("button", name="Add a key").click()
    expect(page.locator("#node-rows .kv")).to_have_count(2)
    page.locator("#node-rows input[name=node_key]").nth(1).fill("source")
    page.locator("#node-rows input[name=node_value]").nth(1).fill("fair")
    page.get_by_role("button", name="Send to Webmarketer").click()

    expect(page.locator(".messages")).to_contain_text("Sent to Webmarketer (wm).")
    expect(page.locator("#recent-interactions tbody tr").first).to_contain_text("kate@example.com")
    record = OfflineInteraction.objects.get()
    assert record.node_data == {"wmktId": "1234", "cid": "5678", "source": "fair"}

    csv = (
        b"date,wmktId,cid,email\n"
        b"2023-08-02T09:00:00Z,1234,5678,jack@example.com\n"
        b"2023-08-02,1234,5678,hugo@example.com\n"
    )
    page.set_input_files("#id_file", files=[{"name": "fair.csv", "mimeType": "text/csv", "buffer": csv}])
    page.get_by_role("button", name="Import").click()

    expect(page.locator(".messages")).to_contain_text("fair.csv: 1 sent, 1 not sent, of 2 rows.")
    report = page.locator("#import-report tbody tr")
    expect(report).to_have_count(2)
    expect(report.nth(1)).to_contain_text("date '2023-08-02' is not an RFC3339 date-time")
    assert OfflineInteraction.objects.count() == 2


def test_an_admin_uploads_a_csv_of_offline_interactions(page, transactional_db, sandbox, sandbox_url):
    user_make("admin", username="root", password="pw-root")
    sandbox_connection_make(sandbox_url)
    page.goto("/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", "pw-root")
    page.click("input[type=submit]")

    page.goto("/admin/tracking/offlineinteraction/")
    page.get_by_role("link", name="Upload a CSV").click()
    csv = b"date;wmktId;email\n2023-08-02T09:00:00Z;1234;jack@example.com\n2023-08-03T09:00:00Z;;sun@example.com\n"
    page.set_input_files("#id_file", files=[{"name": "crm.csv", "mimeType": "text/csv", "buffer": csv}])
    page.click("input[type=submit]")

    expect(page.locator("ul.messagelist")).to_contain_text("Uploaded crm.csv: 1 sent, 1 not sent, of 2 rows.")
    expect(page.locator("#upload-report tbody tr").nth(1)).to_contain_text("wmktId is empty")
