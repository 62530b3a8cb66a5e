"""Connection operations: pause keeps deliveries due and sends nothing, resume drains them; circuit reset;
the health figures of the last hour."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from tests.factories import user_make
from tests.services.conftest import EVENTS_URL, contact_forms_ingest
from tracking.models import Attempt, AuditEntry, Delivery
from tracking.selectors import connections_health
from tracking.services import delivery as service
from tracking.services.connections import connection_circuit_reset, connection_pause_set

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_sessions")]


def test_a_paused_connection_sends_nothing_and_keeps_its_deliveries_due(
    connection, vendor, django_capture_on_commit_callbacks
):
    posted = vendor.post(EVENTS_URL).mock(return_value=httpx.Response(200, json="wm-1"))
    contact_forms_ingest(connection, 3)
    connection_pause_set(connection=connection, paused=True, user=user_make("Marketing"))

    assert service.connection_dispatch(connection_id=connection.pk) == 0
    assert posted.call_count == 0
    assert set(Delivery.objects.values_list("status", flat=True)) == {"pending"}
    assert service.connections_due(Delivery, now=timezone.now()) == []  # the sweep leaves it alone
    assert connections_health([connection.pk])[connection.pk].due == 3
    assert AuditEntry.objects.filter(action="connection.pause").count() == 1


def test_resume_wakes_the_dispatcher_and_drains_what_was_due(
    connection, vendor, django_capture_on_commit_callbacks, monkeypatch
):
    vendor.post(EVENTS_URL).mock(return_value=httpx.Response(200, json="wm-1"))
    contact_forms_ingest(connection, 3)
    connection_pause_set(connection=connection, paused=True)
    woken = []
    monkeypatch.setattr("tracking.tasks.dispatch_connection.delay", woken.append)
    monkeypatch.setattr("tracking.tasks.dispatch_lead_changes.delay", lambda pk: None)

    with django_capture_on_commit_callbacks(execute=True):
        assert connection_pause_set(connection=connection, paused=False, user=user_make("Marketing"))

    assert woken == [connection.pk]
    assert service.connections_due(Delivery, now=timezone.now()) == [connection.pk]
    assert service.connection_dispatch(connection_id=connection.pk) == 3
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}
    assert AuditEntry.objects.filter(action="connection.resume").count() == 1


def test_pausing_twice_is_one_change_audited_once(connection):
    assert connection_pause_set(connection=connection, paused=True)
    assert not connection_pause_set(connection=connection, paused=True)
    assert AuditEntry.objects.filter(action="connection.pause").count() == 1


def test_a_circuit_reset_closes_it_and_is_audited(connection):
    connection.circuit_failures, connection.circuit_open_until = 12, timezone.now() + timedelta(seconds=30)
    connection.save()

    connection_circuit_reset(connection=connection, user=user_make("Marketing"))

    connection.refresh_from_db()
    assert (connection.circuit_failures, connection.circuit_open) == (0, False)
    assert AuditEntry.objects.get(action="connection.circuit_reset").details["before"] == {"failures": 12, "open": True}


def test_health_counts_the_last_hour_only(connection):
    (delivery,) = contact_forms_ingest(connection)
    now = timezone.now()

    def attempt(minutes_ago, outcome, ms):
        Attempt.objects.create(
            delivery=delivery,
            started_at=now - timedelta(minutes=minutes_ago),
            outcome=outcome,
            duration_ms=ms,
            method="POST",
            url=EVENTS_URL,
        )

    attempt(90, "delivered", 9000)  # before the window
    for i in range(18):
        attempt(50 - i, "delivered", 100 + i)
    attempt(5, "retry", 2000)
    attempt(1, "failed", 50)

    health = connections_health([connection.pk], now=now)[connection.pk]

    assert (health.attempts, health.failures, health.error_percent) == (20, 2, "10 %")
    assert health.p95_ms == 117  # 19th of 20 by duration
    assert health.last_success == now - timedelta(minutes=33)
    assert health.due == 1


def test_a_paused_connection_claims_no_lead_change(connection, monkeypatch):
    from tracking.services import leads

    claimed = []
    monkeypatch.setattr(leads, "lead_deliveries_claim", lambda **kw: claimed.append(kw) or [])
    connection_pause_set(connection=connection, paused=True)

    assert leads.lead_changes_dispatch(connection_id=connection.pk) == 0
    assert claimed == []
    connection_pause_set(connection=connection, paused=False)
    leads.lead_changes_dispatch(connection_id=connection.pk)
    assert claimed == [{"connection_id": connection.pk, "limit": connection.batch_size}]


def test_deliveries_due_are_counted_up_to_a_cap_and_shown_as_more(connection, monkeypatch):
    contact_forms_ingest(connection, 3)
    monkeypatch.setattr("tracking.selectors.DUE_COUNT_CAP", 2)

    health = connections_health([connection.pk])[connection.pk]

    assert (health.due, health.due_label) == (3, "2+")
    monkeypatch.setattr("tracking.selectors.DUE_COUNT_CAP", 3)
    assert connections_health([connection.pk])[connection.pk].due_label == "3"
