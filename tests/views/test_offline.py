"""Offline interactions page (form, CSV import, recent list) and the admin's CSV upload.

Sent to the real sandbox; respx plays Webmarketer where a test needs a refusal the sandbox never gives for
input our checks let through (its 400s are shown verbatim)."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.factories import sandbox_connection_make, user_make, webmarketer_connection_make
from tracking.models import AuditEntry, OfflineInteraction

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_sessions")]

OFFLINE_URL = "https://api.webmarketer.io/api/v1/projects/my-project/interactions/offline"


@pytest.fixture
def marketing(client):
    client.force_login(user_make("Marketing"))
    return client


@pytest.fixture
def wm(sandbox, sandbox_url):
    return sandbox_connection_make(sandbox_url)


def form(connection, **overrides) -> dict:
    data = {
        "connection": connection.pk,
        "date": "2023-08-01T22:00:00",
        "email": "kate@example.com",
        "phone": "",
        "wmkt_id": "1234",
        "node_key": ["cid"],
        "node_value": ["5678"],
    }
    return data | overrides


def csv_file(text: str, name: str = "leads.csv") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


@pytest.fixture
def webmarketer_refuses():
    """Webmarketer (respx) accepting every interaction but those of campaign "bad"."""
    with respx.mock:
        respx.post("https://oauth.webmarketer.io/oidc/token").respond(json={"access_token": "t", "expires_in": 3600})
        refusal = {"statusCode": 400, "message": "cid bad is not a campaign of node 1234", "error": "Bad Request"}
        route = respx.post(OFFLINE_URL).mock(
            side_effect=lambda request: httpx.Response(
                400 if b'"cid":"bad"' in request.content.replace(b" ", b"") else 201, json=refusal
            )
        )
        yield route


# -- permissions ---------------------------------------------------------------------------------------------
def test_sales_cannot_open_the_page_and_auditors_cannot_send(client):
    connection = webmarketer_connection_make()
    client.force_login(user_make("Sales"))
    assert client.get("/offline/").status_code == 403
    client.force_login(user_make("Auditor"))

    page = client.get("/offline/").content.decode()

    assert "Recent" in page and "Send to Webmarketer" not in page and "Import a CSV" not in page
    assert client.post("/offline/send", form(connection)).status_code == 403
    assert client.post("/offline/import", {"connection": connection.pk, "file": csv_file("date")}).status_code == 403
    assert not OfflineInteraction.objects.exists()


# -- the form ------------------------------------------------------------------------------------------------
def test_the_form_sends_one_interaction_in_the_seeds_shape(marketing, wm, sandbox):
    response = marketing.post("/offline/send", form(wm), follow=True)

    assert "Sent to Webmarketer (wm)." in response.content.decode()
    record = OfflineInteraction.objects.get()
    assert (record.status, record.response_status, record.origin) == ("sent", 201, "console form")
    assert record.created_by.username == "marketing"
    # The sandbox answers 201 with the interaction as it stored it.
    received = json.loads(record.answer)
    assert {k: received[k] for k in ("date", "userData", "nodeData")} == {
        "date": "2023-08-01T22:00:00Z",
        "userData": {"email": "kate@example.com"},
        "nodeData": {"wmktId": "1234", "cid": "5678"},
    }
    assert AuditEntry.objects.get(action="offline_interaction.send").details["status"] == "sent"
    assert "kate@example.com" in marketing.get("/offline/").content.decode()


def test_webmarketers_refusal_is_shown_verbatim_and_the_form_kept(marketing, webmarketer_refuses):
    connection = webmarketer_connection_make()

    response = marketing.post("/offline/send", form(connection, node_value=["bad"]))

    # Something was stored (the refusal): the page comes after a redirect, so a reload sends nothing again.
    assert response.status_code == 302 and response.url == "/offline/"
    html = marketing.get(response.url).content.decode()
    assert "Webmarketer refused it (HTTP 400): cid bad is not a campaign of node 1234" in html
    assert 'value="kate@example.com"' in html and 'value="bad"' in html
    record = OfflineInteraction.objects.get()
    assert (record.status, record.answer) == ("rejected", "cid bad is not a campaign of node 1234")
    assert 'value="bad"' not in marketing.get("/offline/").content.decode()  # kept for the one page only


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"email": "", "phone": ""}, "email", "Give an email or a phone: Webmarketer needs one to find the user."),
        ({"email": "kate@"}, "email", "Enter a valid email address."),
        ({"phone": "call me"}, "phone", "phone 'call me' is not a phone number"),
        ({"wmkt_id": ""}, "wmkt_id", "This field is required."),
        ({"date": "yesterday"}, "date", "Enter a valid date/time."),
    ],
)
def test_bad_input_is_explained_next_to_its_input_and_nothing_is_sent(marketing, overrides, field, message):
    response = marketing.post("/offline/send", form(webmarketer_connection_make(), **overrides))

    assert response.context["form"].errors[field] == [message]
    assert not OfflineInteraction.objects.exists()


def test_node_data_keys_are_checked(marketing):
    post = form(
        webmarketer_connection_make(),
        node_key=["cid", "cid", "", "wmktId", "source"],
        node_value=["1", "2", "x", "9", ""],
    )

    response = marketing.post("/offline/send", post)

    assert response.context["form"].node_errors == [
        "The key 'cid' is given twice.",
        "The value 'x' has no key.",
        "Give wmktId in its own input above.",
        "The key 'source' has no value.",
    ]
    assert not OfflineInteraction.objects.exists()


def test_the_add_a_key_button_gets_an_empty_pair(marketing):
    html = marketing.get("/offline/node-row", headers={"HX-Request": "true"}).content.decode()
    assert 'name="node_key"' in html and 'name="node_value"' in html and "<html" not in html


# -- CSV import ----------------------------------------------------------------------------------------------
CSV = """date;wmktId;cid;email;phone
2023-08-01T22:00:00Z;1234;5678;a@example.com;
2023-08-01;1234;5678;b@example.com;
2023-08-02T10:00:00+02:00;;5678;c@example.com;
2023-08-03 09:00:00;1234;bad;;+33 6 12 34 56 78
2023-08-04T00:00:00Z;1234;5678;not-an-email;
"""


def test_a_csv_import_reports_every_row_by_number_with_webmarketers_400_verbatim(marketing, webmarketer_refuses):
    connection = webmarketer_connection_make()

    response = marketing.post("/offline/import", {"connection": connection.pk, "file": csv_file(CSV)}, follow=True)

    report = response.context["report"]
    assert [(r.row, r.status) for r in report.rows] == [
        (2, "sent"),
        (3, "invalid"),
        (4, "invalid"),
        (5, "rejected"),
        (6, "invalid"),
    ]
    html = response.content.decode()
    assert "leads.csv: 1 sent, 4 not sent, of 5 rows." in html
    assert "cid bad is not a campaign of node 1234" in html
    assert "wmktId is empty (Webmarketer needs it to find the advertiser node)" in html
    assert "email &#x27;not-an-email&#x27; is not a valid email address" in html
    assert webmarketer_refuses.call_count == 2
    assert list(OfflineInteraction.objects.order_by("id").values_list("origin", flat=True)) == [
        "leads.csv row 2",
        "leads.csv row 5",
    ]


def test_a_csv_with_a_bad_header_sends_nothing_and_says_why(marketing, wm, sandbox):
    response = marketing.post(
        "/offline/import", {"connection": wm.pk, "file": csv_file("date,email\n2023-08-01T00:00:00Z,a@b.co\n")}
    )

    assert response.context["csv_form"].errors["file"] == [
        "row 1 (header): missing column wmktId (see the header convention)"
    ]
    assert not OfflineInteraction.objects.exists()


def test_a_csv_too_large_for_the_console_is_sent_to_the_command(marketing, wm, sandbox):
    rows = "".join(f"2023-08-01T00:00:00Z,1234,p{i}@example.com\n" for i in range(501))

    response = marketing.post("/offline/import", {"connection": wm.pk, "file": csv_file("date,wmktId,email\n" + rows)})

    message = response.context["csv_form"].errors["file"][0]
    assert (
        message.startswith("the file has 501 rows; at most 500 are taken here")
        and "import_offline_interactions" in message
    )
    assert not OfflineInteraction.objects.exists()


def test_a_csv_import_to_the_sandbox_sends_the_valid_rows(marketing, wm, sandbox):
    text = (
        "date,wmktId,cid,email\n"
        "2023-08-01T22:00:00Z,1234,5678,a@example.com\n"
        "2023-08-02T00:00:00Z,,5678,b@example.com\n"
    )

    response = marketing.post("/offline/import", {"connection": wm.pk, "file": csv_file(text)}, follow=True)

    assert [(r.row, r.status) for r in response.context["report"].rows] == [(2, "sent"), (3, "invalid")]
    (sent,) = OfflineInteraction.objects.all()
    assert (sent.status, json.loads(sent.answer)["userData"]) == ("sent", {"email": "a@example.com"})


def test_the_import_redirects_to_its_report_so_a_reload_sends_nothing_again(marketing, webmarketer_refuses):
    connection = webmarketer_connection_make()

    response = marketing.post("/offline/import", {"connection": connection.pk, "file": csv_file(CSV)})

    assert response.status_code == 302 and response.url == "/offline/#import-report"
    html = marketing.get("/offline/").content.decode()
    assert 'id="import-report"' in html and "leads.csv: 1 sent, 4 not sent, of 5 rows." in html
    assert 'id="import-report"' not in marketing.get("/offline/").content.decode()  # the report is shown once
    assert OfflineInteraction.objects.count() == 2 and webmarketer_refuses.call_count == 2


TWICE = """date,wmktId,cid,email
2023-08-01T22:00:00Z,1234,5678,a@example.com
2023-08-02T00:00:00+02:00,1234,5678,b@example.com
2023-08-03T00:00:00Z,,5678,c@example.com
2023-08-01T22:00:00Z,1234,5678,a@example.com
"""


def test_importing_the_same_rows_again_sends_them_only_when_asked(marketing, webmarketer_refuses):
    connection = webmarketer_connection_make()
    first = marketing.post("/offline/import", {"connection": connection.pk, "file": csv_file(TWICE)}, follow=True)
    # The same row twice in one file goes once.
    assert [(r.row, r.status) for r in first.context["report"].rows] == [
        (2, "sent"),
        (3, "sent"),
        (4, "invalid"),
        (5, "already_sent"),
    ]
    assert webmarketer_refuses.call_count == 2

    # The same file again, and once more as another file with its columns in another order.
    again = marketing.post("/offline/import", {"connection": connection.pk, "file": csv_file(TWICE)}, follow=True)
    other = "email,cid,wmktId,date\nb@example.com,5678,1234,2023-08-01T22:00:00Z\n"
    moved = marketing.post(
        "/offline/import", {"connection": connection.pk, "file": csv_file(other, "crm.csv")}, follow=True
    )

    assert [(r.row, r.status) for r in again.context["report"].rows] == [
        (2, "already_sent"),
        (3, "already_sent"),
        (4, "invalid"),
        (5, "already_sent"),
    ]
    html = again.content.decode()
    assert "leads.csv: 0 sent, 3 already sent before, not sent again, 1 not sent, of 4 rows." in html
    assert "already sent on " in html and "(leads.csv row 2)" in html
    assert [(r.row, r.status) for r in moved.context["report"].rows] == [(2, "already_sent")]
    assert webmarketer_refuses.call_count == 2
    assert OfflineInteraction.objects.filter(status="sent").count() == 2

    # Asked for: sent again, every valid row.
    resent = marketing.post(
        "/offline/import", {"connection": connection.pk, "file": csv_file(TWICE), "resend": "1"}, follow=True
    )

    assert [r.status for r in resent.context["report"].rows] == ["sent", "sent", "invalid", "sent"]
    assert webmarketer_refuses.call_count == 5
    assert (
        AuditEntry.objects.filter(action="offline_interactions.import").order_by("id").last().details["resend"] is True
    )


def test_a_row_sent_to_another_connection_or_refused_before_is_sent(marketing, webmarketer_refuses):
    connection = webmarketer_connection_make()
    other = webmarketer_connection_make(name="wm-2")
    text = "date,wmktId,email\n2023-08-01T22:00:00Z,1234,a@example.com\n"
    OfflineInteraction.objects.create(
        connection=other,
        date="2023-08-01T22:00:00Z",
        user_data={"email": "a@example.com"},
        node_data={"wmktId": "1234"},
        status="sent",
    )
    OfflineInteraction.objects.create(
        connection=connection,
        date="2023-08-01T22:00:00Z",
        user_data={"email": "a@example.com"},
        node_data={"wmktId": "1234"},
        status="failed",
    )

    response = marketing.post("/offline/import", {"connection": connection.pk, "file": csv_file(text)}, follow=True)

    assert [r.status for r in response.context["report"].rows] == ["sent"]


# -- admin upload --------------------------------------------------------------------------------------------
def test_the_admin_changelist_links_to_the_upload(client):
    client.force_login(user_make("admin"))
    html = client.get("/admin/tracking/offlineinteraction/").content.decode()
    assert 'href="/admin/tracking/offlineinteraction/upload/"' in html and "Upload a CSV" in html


def test_the_admin_upload_sends_a_csv_and_shows_the_report(client, webmarketer_refuses):
    connection = webmarketer_connection_make()
    client.force_login(user_make("admin"))

    response = client.post(
        "/admin/tracking/offlineinteraction/upload/", {"connection": connection.pk, "file": csv_file(CSV, "crm.csv")}
    )

    html = response.content.decode()
    assert response.status_code == 200 and 'id="upload-report"' in html
    assert [(r.row, r.status) for r in response.context["report"].rows][:2] == [(2, "sent"), (3, "invalid")]
    assert "Uploaded crm.csv: 1 sent, 4 not sent, of 5 rows." in html
    assert "cid bad is not a campaign of node 1234" in html
    assert AuditEntry.objects.get(action="offline_interactions.import").details["file"] == "crm.csv"


def test_the_admin_upload_needs_the_add_permission(client):
    auditor = user_make("Auditor", is_staff=True)
    client.force_login(auditor)

    assert client.get("/admin/tracking/offlineinteraction/upload/").status_code == 403
    assert "Upload a CSV" not in client.get("/admin/tracking/offlineinteraction/").content.decode()


def test_admin_upload_errors_are_shown_on_the_form(client):
    client.force_login(user_make("admin"))
    connection = webmarketer_connection_make()

    response = client.post(
        "/admin/tracking/offlineinteraction/upload/", {"connection": connection.pk, "file": csv_file("email\na@b.co\n")}
    )

    assert "row 1 (header): missing column date and wmktId" in response.content.decode()
    assert response.context["report"] is None


def test_recent_interactions_show_their_status_and_answer(marketing):
    connection = webmarketer_connection_make()
    OfflineInteraction.objects.create(
        connection=connection,
        date="2023-08-01T22:00:00Z",
        user_data={"email": "a@example.com"},
        node_data={"cid": "1"},
        status="rejected",
        response_status=400,
        answer="wmktId must be present in nodeData",
    )

    html = marketing.get("/offline/").content.decode()

    assert "Rejected by Webmarketer" in html and "HTTP 400" in html and "wmktId must be present in nodeData" in html
