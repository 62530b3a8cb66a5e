"""manage.py erase: shows what it erases and which vendors to ask, erases, and refuses unclear requests."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from tests.factories import CONTACT_FORM, event_type_make, route_make, vendor_connection_make
from tracking.models import Attempt, AuditEntry, Delivery, Event
from tracking.services.ingest import events_ingest, source_create

pytestmark = pytest.mark.django_db


def erase(*args: str) -> str:
    out = io.StringIO()
    call_command("erase", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def kate():
    """Two contact forms of Kate (one by tracker id only), one of John; Kate's first one sent to Tracardi."""
    form = event_type_make(CONTACT_FORM)
    tracardi = vendor_connection_make("tracardi")
    route_make(form, tracardi, mapping={"*": "data"})
    source, _ = source_create(name="site")
    events_ingest(
        source=source,
        items=[
            {"eventType": "contact-form", "nonce": "k1", "data": {"email": "Kate@Example.com", "message": "hi"}},
            {"eventType": "contact-form", "nonce": "k2", "trackerId": "trk-kate", "data": {"email": "k2@x.io",
             "message": "again"}},
            {"eventType": "contact-form", "nonce": "j1", "data": {"email": "john@example.com", "message": "yo"}},
        ],
    )  # fmt: skip
    delivery = Delivery.objects.get(event__nonce="k1")
    Attempt.objects.create(
        delivery=delivery, method="POST", url="http://tracardi.example:8686/collect/contact-form/s?email=kate%40x",
        request_body='{"email": "Kate@Example.com"}', response_status=200, response_body="ok", outcome="delivered",
    )  # fmt: skip
    Delivery.objects.filter(pk=delivery.pk).update(status="delivered")
    return tracardi


def test_a_dry_run_shows_what_would_be_erased_and_changes_nothing(kate):
    out = erase("--email", "kate@example.com", "--dry-run")

    assert "By email, would be erased: 1 events" in out and "1 attempt bodies" in out
    assert "tracardi (Tracardi webhooks): no deletion API in its document: ask them to erase it" in out
    assert Event.objects.get(nonce="k1").data["email"] == "Kate@Example.com"
    assert not AuditEntry.objects.filter(action="person.erase").exists()


def test_it_erases_by_email_any_case_and_leaves_the_others(kate):
    out = erase("--email", "KATE@example.com")

    assert "Erased." in out
    k1 = Event.objects.get(nonce="k1")
    assert (k1.data, k1.redacted_at is not None) == ({}, True)
    attempt = Attempt.objects.get()
    assert "kate" not in (attempt.url + attempt.request_body + attempt.response_body).lower()
    assert attempt.outcome == "delivered" and Delivery.objects.get(event=k1).status == "delivered"
    assert Event.objects.get(nonce="k2").data["email"] == "k2@x.io"
    assert Event.objects.get(nonce="j1").data["email"] == "john@example.com"
    (entry,) = AuditEntry.objects.filter(action="person.erase")
    assert "kate" not in str(entry.details).lower() and entry.details["via"] == "manage.py erase"


def test_it_erases_by_tracker_id(kate):
    out = erase("--tracker-id", "trk-kate")

    assert "By trackerId, to erase: 1 events" in out and "No vendor received this person's data." in out
    k2 = Event.objects.get(nonce="k2")
    assert (k2.data, k2.tracker_id) == ({}, "")


def test_nobody_found_erases_nothing_and_says_so(kate):
    out = erase("--email", "nobody@example.com")

    assert "Nothing about this person is stored: nothing erased." in out
    assert not AuditEntry.objects.filter(action="person.erase").exists()


def test_it_needs_exactly_one_way_to_name_the_person():
    with pytest.raises(CommandError):
        call_command("erase")
    with pytest.raises(CommandError, match="email must be an email address"):
        call_command("erase", "--email", "not-an-email")
