"""Issue 3's "done means", tried as a new Marketing user would, end to end: a real browser on the live
console, a real Celery worker and beat, the real vendor sandbox over loopback.

Why the event gets trashed: the hub checks every event against its mirror of the event type when it
arrives, so an event that breaks the mirror never reaches Webmarketer (422 at ingest). Webmarketer trashes
an event when ITS version of the type differs from ours: here someone makes `phone` mandatory in
Webmarketer's console after our push (the sandbox's PATCH plays that), before the next sync brings the
change here. The sandbox trashes an event whose data breaks its stored type (`trash_if_invalid`), exactly
as Webmarketer does, while still answering 200 with the event id (ingestion is asynchronous)."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import console_login, wait_until
from tests.factories import route_make, sandbox_connection_make, sandbox_webmarketer_api, source_make, user_make
from tracking.models import Delivery, Event, EventType, TrashedEvent

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_a_new_user_creates_pushes_sees_a_trashed_event_fixes_and_replays_it(
    page, live_server, celery_worker, sandbox, sandbox_url
):
    user_make("Marketing", password="pw-m")
    connection = sandbox_connection_make(sandbox_url, retry_base_seconds=0.2, retry_max_seconds=1.0, timeout_seconds=5)
    _, token = source_make()
    console_login(page, "marketing", "pw-m")

    # 1. Create the event type in the editor.
    page.get_by_role("link", name="Event types", exact=True).click()
    page.get_by_role("link", name="New event type").click()
    page.fill("#id_name", "Callback request")
    page.fill("#id_reference", "callback-request")
    email = page.locator("#rows-fields tr").nth(0)
    email.locator("select[name$=-type]").select_option("email")
    email.locator("select[name$=-entity]").select_option("user")
    email.locator("input[name$=-storageKey]").fill("email")
    email.locator("input[name$=-discriminant]").check()
    page.get_by_role("button", name="Add a field").click()
    phone = page.locator("#rows-fields tr").nth(1)
    phone.locator("select[name$=-type]").select_option("phone")
    phone.locator("select[name$=-entity]").select_option("user")
    phone.locator("input[name$=-storageKey]").fill("phone")
    phone.locator("input[name$=-optional]").check()
    page.fill("#id_phone_countries", "FR")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".messages")).to_contain_text("Saved event type callback-request.")

    # 2. Push it to Webmarketer.
    page.get_by_role("button", name="Push to Webmarketer").click()
    expect(page.locator(".messages")).to_contain_text("Pushed callback-request to wm")
    event_type = EventType.objects.get(reference="callback-request")
    assert event_type.wm_id
    route_make(event_type, connection)  # routing has its own page; not part of this walkthrough

    # 3. In Webmarketer's console, someone makes the phone mandatory; our mirror does not know yet.
    with sandbox_webmarketer_api(sandbox_url, connection) as api:
        remote = api.get("event-types/callback-request").json()
        fields = [{**f, "optional": False} if f["storageKey"] == "phone" else f for f in remote["fields"]]
        api.patch("event-types/callback-request", json={"fields": fields}).raise_for_status()

    # 4. The website posts an event without a phone: valid for us, so it is sent; Webmarketer trashes it.
    answer = httpx.post(
        f"{live_server.url}/api/v1/events",
        json={"eventType": "callback-request", "data": {"email": "kate@example.com"}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 202, answer.text
    event = Event.objects.get()
    first = wait_until(
        lambda: Delivery.objects.filter(event=event, status="delivered").first(), timeout=30, message="the delivery"
    )

    # 5. Pull the trash: the inbox explains the error in words and links our event.
    page.get_by_role("link", name="Trash").click()
    page.get_by_role("button", name="Pull now").click()
    expect(page.locator(".messages")).to_contain_text("Pulled the trash of wm:")
    item = page.locator("#trash-table tbody tr").first
    expect(item).to_contain_text("phone: required but missing (expected a valid phone number)")
    expect(item.locator(f'a[href="/events/{event.uuid}/"]')).to_be_visible()
    trashed = TrashedEvent.objects.get()
    assert trashed.wm_id == first.vendor_ref and trashed.event == event

    # 6. Fix it: the form knows Webmarketer now wants a phone.
    item.get_by_role("link", name="Fix").click()
    expect(page.locator("table.fix tr.in-error")).to_contain_text("phone")
    expect(page.locator("table.fix input[name=f0]")).to_have_value("kate@example.com")
    page.get_by_role("button", name="Fix and replay").click()
    expect(page.locator("#trash-fix .errorlist")).to_contain_text("phone: is required")
    page.fill("table.fix input[name=f1]", "06 12 34 56 78")
    page.fill("#trash-fix-form input[name=note]", "called back: phone from the CRM")
    page.get_by_role("button", name="Fix and replay").click()

    # 7. Replayed with a new nonce, and delivered.
    expect(page.locator(".messages")).to_contain_text("Fixed and replayed: delivery #")
    replay = Delivery.objects.get(event=event, generation=1)
    assert replay.nonce not in (first.nonce, "")
    wait_until(lambda: Delivery.objects.filter(pk=replay.pk, status="delivered").exists(), timeout=30, message="replay")
    page.reload()
    expect(page.locator(f"#delivery-{replay.pk}")).to_contain_text("Delivered")
    received = {e["nonce"]: e for e in sandbox.get("/__sandbox__/webmarketer/events").json()["data"]}
    assert received[replay.nonce]["data"] == {"email": "kate@example.com", "phone": "06 12 34 56 78"}
    assert received[replay.nonce]["_id"] == Delivery.objects.get(pk=replay.pk).vendor_ref
    with sandbox_webmarketer_api(sandbox_url, connection) as api:
        assert api.get("events/trashed").json()["total"] == 1  # the fixed event went through

    # 8. The next sync brings Webmarketer's change here: such an event is now refused at the door.
    page.get_by_role("link", name="Event types", exact=True).click()
    page.get_by_role("button", name="Sync now").click()
    expect(page.locator(".messages")).to_contain_text("1 updated from Webmarketer: callback-request")
    again = httpx.post(
        f"{live_server.url}/api/v1/events",
        json={"eventType": "callback-request", "data": {"email": "jack@example.com"}},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert again.status_code == 422 and "phone" in again.text
