"""Audit pages: what was sent (filters, keyset pages, streamed CSV) and who did what, by role."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.http import StreamingHttpResponse

from tests.factories import event_store, event_type_make, route_make, user_make, vendor_connection_make
from tracking.models import Attempt, AuditEntry
from tracking.selectors import attempt_id_at
from tracking.services.connections import connection_secrets_update

pytestmark = pytest.mark.django_db
DAY = datetime(2026, 11, 25, tzinfo=UTC)


@pytest.fixture
def attempts():
    """Tracify: 60 attempts on 25 Nov (every 10th a 429 retry); Algonomy: 5 on 26 Nov, HTTP 200."""
    event_type = event_type_make()
    tracify = route_make(event_type, vendor_connection_make("tracify"))
    algonomy = route_make(event_type, vendor_connection_make("algonomy"))
    event = event_store(event_type, {"email": "a@b.co"}, nonce="n-1", routes=(tracify, algonomy))
    t, a = event.deliveries.get(connection=tracify.connection), event.deliveries.get(connection=algonomy.connection)
    for i in range(60):
        retry = i % 10 == 0
        Attempt.objects.create(
            delivery=t,
            started_at=DAY + timedelta(minutes=i),
            method="POST",
            url="https://api.tracify.ai/x",
            response_status=429 if retry else 200,
            outcome="retry" if retry else "delivered",
            duration_ms=i,
        )
    for i in range(5):
        Attempt.objects.create(
            delivery=a,
            started_at=DAY + timedelta(days=1, minutes=i),
            method="POST",
            url="https://algonomy/x",
            response_status=200,
            outcome="delivered",
            duration_ms=5,
        )
    return tracify.connection, algonomy.connection, event


def test_what_was_sent_pages_newest_first_and_links_each_row_to_its_event(client, attempts):
    tracify, algonomy, event = attempts
    client.force_login(user_make("Auditor"))

    first = client.get("/audit/sent/")
    items = first.context["page"].items
    assert len(items) == 50 and items[0].delivery.connection == algonomy
    assert f"/events/{event.uuid}/" in first.content.decode()
    second = client.get("/audit/sent/", {"after": first.context["page"].next_cursor}, headers={"HX-Request": "true"})
    assert len(second.context["page"].items) == 15 and second.context["page"].next_cursor == ""


def test_what_was_sent_filters_by_connection_outcome_status_and_date(client, attempts):
    tracify, algonomy, event = attempts
    client.force_login(user_make("Marketing"))

    def count(**params):
        return len(client.get("/audit/sent/", params).context["page"].items)

    assert count(connection=tracify.pk, outcome="retry") == 6
    assert count(status_code="429") == 6
    assert count(since="2026-11-26") == 5 and count(until="2026-11-25") == 50  # a page of the 60
    assert count(event_type="contact-form", connection=algonomy.pk, until="2026-11-25") == 0


def test_a_date_becomes_an_id_bound(attempts):
    ids = sorted(Attempt.objects.values_list("pk", flat=True))
    assert attempt_id_at(DAY + timedelta(days=1)) == ids[60]
    assert attempt_id_at(DAY - timedelta(days=1)) == ids[0]
    assert attempt_id_at(DAY + timedelta(days=9)) == ids[-1] + 1


def test_the_csv_export_streams_the_filtered_attempts(client, attempts, monkeypatch):
    tracify, algonomy, event = attempts
    monkeypatch.setattr("tracking.selectors.id_chunks.__kwdefaults__", {"size": 7})  # several chunks
    client.force_login(user_make("Auditor"))

    response = client.get("/audit/sent.csv", {"connection": tracify.pk, "outcome": "delivered"})

    assert isinstance(response, StreamingHttpResponse) and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 54 and {r["connection"] for r in rows} == {"tracify"}
    assert {r["outcome"] for r in rows} == {"delivered"} and rows[0]["event_uuid"] == str(event.uuid)
    assert [int(r["attempt_id"]) for r in rows] == sorted((int(r["attempt_id"]) for r in rows), reverse=True)


def test_who_did_what_filters_by_who_and_what_and_shows_secret_names_only(client, attempts):
    tracify, algonomy, event = attempts
    marketing = user_make("Marketing", username="mia")
    connection_secrets_update(connection=tracify, secrets={"api_key": "SUPER-SECRET-VALUE"}, user=marketing)
    AuditEntry.objects.create(action="route.create", target="x")
    client.force_login(user_make("Auditor"))

    html = client.get("/audit/log/", {"user": "mia"}).content.decode()

    assert "connection.secrets" in html and "api_key" in html and "SUPER-SECRET-VALUE" not in html
    assert "route.create" not in html.split("<tbody")[1]
    assert len(client.get("/audit/log/", {"action": "route"}).context["page"].items) == 1
    entry = AuditEntry.objects.get(action="connection.secrets")
    assert f"{entry.at:%Y-%m-%d %H:%M} UTC" in html


@pytest.mark.parametrize("url", ["/audit/sent/", "/audit/sent.csv", "/audit/log/"])
def test_sales_cannot_open_the_audit_pages(client, url):
    client.force_login(user_make("Sales"))
    assert client.get(url).status_code == 403
