"""The admin shows what the hub wrote (deliveries, attempts) read-only under their parents."""

from __future__ import annotations

import json

import pytest

from tests.factories import event_type_make, route_make, source_make, user_make, webmarketer_connection_make
from tracking.models import Attempt, Delivery
from tracking.services.ingest import events_ingest

pytestmark = pytest.mark.django_db


def test_deliveries_and_attempts_show_under_their_parents_without_add_or_edit(client):
    route_make(event_type_make(), webmarketer_connection_make())
    source, _ = source_make()
    (result,) = events_ingest(
        source=source, items=[{"eventType": "contact-form", "data": {"email": "a@b.co", "message": "hi"}}]
    )
    delivery = Delivery.objects.get()
    Attempt.objects.create(
        delivery=delivery, method="POST", url="https://vendor.example/events", response_status=503, outcome="retry"
    )
    client.force_login(user_make("admin"))

    event_page = client.get(f"/admin/tracking/event/{result.event.pk}/change/").content.decode()
    delivery_page = client.get(f"/admin/tracking/delivery/{delivery.pk}/change/").content.decode()

    assert "wm (Webmarketer)" in event_page and "https://vendor.example/events" in delivery_page
    for html in (event_page, delivery_page):
        assert 'name="deliveries-0-status"' not in html and 'name="attempt_set-0-url"' not in html


# -- every admin action of every ModelAdmin, walked with every role ------------------------------------------
# What each action needs, as the console asks it: an action missing here (or one without a declared
# permission) fails the walk, so a new action has to say who may run it.
ACTION_NEEDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("vendorconnection", "test_connections"): ("tracking.change_vendorconnection",),
    ("vendorconnection", "pull_event_types"): ("tracking.add_eventtype", "tracking.change_eventtype"),
    ("vendorconnection", "pull_trashed_events"): ("tracking.change_trashedevent",),
    ("vendorconnection", "delete_selected"): ("tracking.delete_vendorconnection",),
    ("eventtype", "push_event_types"): ("tracking.change_eventtype",),
    ("eventtype", "delete_selected"): ("tracking.delete_eventtype",),
    ("event", "replay"): ("tracking.change_event",),
    ("route", "delete_selected"): ("tracking.delete_route",),
    ("source", "delete_selected"): ("tracking.delete_source",),
    ("eventtypeconflict", "keep_local"): ("tracking.change_eventtypeconflict",),
    ("eventtypeconflict", "take_remote"): ("tracking.change_eventtypeconflict",),
    ("eventtypeconflict", "delete_selected"): ("tracking.delete_eventtypeconflict",),
    ("trashedevent", "dismiss"): ("tracking.change_trashedevent",),
    ("trashedevent", "delete_selected"): ("tracking.delete_trashedevent",),
    ("webmarketersync", "delete_selected"): ("tracking.delete_webmarketersync",),
}
APPEND_ONLY = (
    "event",
    "delivery",
    "attempt",
    "leadchange",
    "leaddelivery",
    "leadattempt",
    "auditentry",
    "offlineinteraction",
)
ROLES = ("Marketing", "Sales", "Auditor", "admin")


def _tracking_admins():
    from django.contrib import admin

    return [
        (model, model_admin)
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label == "tracking"
    ]


def _actions_spy(monkeypatch) -> list[tuple[str, str]]:
    """Replace every action (the ModelAdmins' and the site's) by a recorder keeping its permissions."""
    import functools

    from django.contrib import admin

    ran: list[tuple[str, str]] = []

    def spy(name, func):
        @functools.wraps(func)
        def recorder(*args):
            model_admin = args[0]
            ran.append((model_admin.model._meta.model_name, name))

        return recorder

    for _model, model_admin in _tracking_admins():
        cls = type(model_admin)
        spied = []
        for action in cls.actions or []:
            if isinstance(action, str):
                monkeypatch.setattr(cls, action, spy(action, getattr(cls, action)))
                spied.append(action)
            else:
                spied.append(spy(action.__name__, action))
        monkeypatch.setattr(cls, "actions", spied)
    for name, func in list(admin.site._actions.items()):
        monkeypatch.setitem(admin.site._actions, name, spy(name, func))
    return ran


def _rows() -> dict[str, int]:
    """One row of every model with actions, so each changelist has something to select."""
    from django.utils import timezone

    from tracking.models import EventTypeConflict, OfflineInteraction, TrashedEvent, WebmarketerSync

    connection = webmarketer_connection_make()
    event_type = event_type_make()
    route_make(event_type, connection)
    source, _ = source_make()
    (result,) = events_ingest(
        source=source, items=[{"eventType": "contact-form", "data": {"email": "a@b.co", "message": "hi"}}]
    )
    conflict = EventTypeConflict.objects.create(
        event_type=event_type, connection=connection, remote={}, local={}, remote_hash="h"
    )
    trashed = TrashedEvent.objects.create(connection=connection, wm_id="t1", event_type_ref="contact-form")
    sync = WebmarketerSync.objects.create(connection=connection)
    offline = OfflineInteraction.objects.create(connection=connection, date=timezone.now(), status="sent")
    return {
        "vendorconnection": connection.pk,
        "eventtype": event_type.pk,
        "event": result.event.pk,
        "route": connection.routes.get().pk,
        "source": source.pk,
        "eventtypeconflict": conflict.pk,
        "trashedevent": trashed.pk,
        "webmarketersync": sync.pk,
        "offlineinteraction": offline.pk,
    }


def test_every_admin_action_declares_a_permission_and_is_listed():
    found = set()
    for model, model_admin in _tracking_admins():
        for action in model_admin.actions or []:
            func = getattr(type(model_admin), action) if isinstance(action, str) else action
            name = action if isinstance(action, str) else action.__name__
            assert getattr(func, "allowed_permissions", ()), f"{model.__name__}.{name} declares no permission"
            found.add((model._meta.model_name, name))
    assert found == {key for key in ACTION_NEEDS if key[1] != "delete_selected"}


@pytest.mark.parametrize("role", ROLES)
def test_each_role_runs_exactly_the_admin_actions_its_permissions_allow(client, monkeypatch, role):
    rows = _rows()
    ran = _actions_spy(monkeypatch)
    user = user_make(role, is_staff=True)
    client.force_login(user)

    for (model_name, action), needs in ACTION_NEEDS.items():
        allowed = user.has_perms(needs)
        ran.clear()
        url = f"/admin/tracking/{model_name}/"
        listed = client.get(url)
        offered = listed.status_code == 200 and f'value="{action}"' in listed.content.decode()
        client.post(url, {"action": action, "_selected_action": [rows[model_name]], "index": 0})
        assert offered == allowed, f"{role}: {model_name}.{action} offered={offered}"
        assert ran == ([(model_name, action)] if allowed else []), f"{role}: {model_name}.{action} ran={ran}"


def test_an_auditor_cannot_pull_event_types_and_nothing_is_archived(client, monkeypatch):
    from tracking.services import webmarketer as wm

    calls = []
    monkeypatch.setattr(wm, "event_types_pull", lambda **kw: calls.append(kw))
    monkeypatch.setattr(wm, "trash_pull", lambda **kw: calls.append(kw))
    connection = webmarketer_connection_make()
    client.force_login(user_make("Auditor", is_staff=True))

    for action in ("pull_event_types", "pull_trashed_events", "test_connections"):
        client.post("/admin/tracking/vendorconnection/", {"action": action, "_selected_action": [connection.pk]})

    assert calls == []


@pytest.mark.parametrize("model_name", APPEND_ONLY)
def test_nobody_deletes_from_the_log_or_the_audit_trail_in_the_admin(client, model_name):
    from django.apps import apps
    from django.contrib import admin

    from tracking.models import AuditEntry, LeadAttempt, LeadChange, LeadDelivery, OfflineInteraction

    rows = _rows()
    delivery = Delivery.objects.get()
    attempt = Attempt.objects.create(delivery=delivery, method="POST", url="https://vendor.example/e", outcome="retry")
    change = LeadChange.objects.create(
        event=delivery.event, kind="state", storage_key="qualified", value=1, date=delivery.created_at
    )
    lead_delivery = LeadDelivery.objects.create(
        change=change, connection=delivery.connection, event=delivery.event, kind="state", storage_key="qualified"
    )
    lead_attempt = LeadAttempt.objects.create(delivery=lead_delivery, method="PATCH", url="https://v.example/")
    audit = AuditEntry.objects.create(action="connection.update", target="wm")
    offline = OfflineInteraction.objects.create(
        connection=delivery.connection, date=delivery.created_at, status=OfflineInteraction.Status.SENT
    )
    pks = {
        "event": rows["event"],
        "delivery": delivery.pk,
        "attempt": attempt.pk,
        "leadchange": change.pk,
        "leaddelivery": lead_delivery.pk,
        "leadattempt": lead_attempt.pk,
        "auditentry": audit.pk,
        "offlineinteraction": offline.pk,
    }
    model = apps.get_model("tracking", model_name)
    for role in ("Marketing", "admin"):
        user = user_make(role, is_staff=True, username=f"{role}-{model_name}".lower())
        client.force_login(user)
        request = client.get("/admin/").wsgi_request
        model_admin = admin.site._registry[model]

        assert not model_admin.has_delete_permission(request)
        assert "delete_selected" not in model_admin.get_actions(request)
        client.post(f"/admin/tracking/{model_name}/{pks[model_name]}/delete/", {"post": "yes"})
        client.post(
            f"/admin/tracking/{model_name}/",
            {"action": "delete_selected", "_selected_action": [pks[model_name]], "post": "yes"},
        )
        assert model.objects.filter(pk=pks[model_name]).exists()


def test_deleting_a_connection_does_not_take_its_deliveries_with_it(client):
    rows = _rows()
    client.force_login(user_make("Marketing", is_staff=True))

    client.post(f"/admin/tracking/vendorconnection/{rows['vendorconnection']}/delete/", {"post": "yes"})

    assert Delivery.objects.filter(connection_id=rows["vendorconnection"]).exists()


# -- the admin's connection form: the same egress and secret rules as the console ----------------------------
def _admin_connection_form(connection, **overrides) -> dict:
    return {
        "kind": connection.kind,
        "name": connection.name,
        "enabled": "on",
        "base_url": connection.base_url,
        "auth_url": connection.auth_url,
        "settings": json.dumps(connection.settings),
        "timeout_seconds": "10",
        "batch_size": "50",
        "retry_base_seconds": "10",
        "retry_max_seconds": "600",
        "give_up_after_seconds": "86400",
        "new_secrets": "",
        **overrides,
    }


def test_the_admin_asks_for_the_secrets_again_when_a_connection_moves_host(client):
    from tests.factories import vendor_connection_make
    from tracking.models import VendorConnection

    connection = vendor_connection_make("algonomy")
    client.force_login(user_make("admin"))
    url = f"/admin/tracking/vendorconnection/{connection.pk}/change/"

    refused = client.post(url, _admin_connection_form(connection, auth_url="https://collector.attacker.example"))
    moved = client.post(
        url,
        _admin_connection_form(
            connection,
            auth_url="https://rcdp-eu.algonomy.com",
            new_secrets=json.dumps({"client_id": "c", "client_secret": "s"}),
        ),
    )

    assert "set client_id, client_secret again" in refused.content.decode()
    assert moved.status_code == 302
    assert VendorConnection.objects.get().auth_url == "https://rcdp-eu.algonomy.com"


def test_the_admin_refuses_internal_addresses(client, settings):
    from tests.factories import vendor_connection_make

    settings.HUB_EGRESS_ALLOW = []
    connection = vendor_connection_make("tracardi")
    client.force_login(user_make("admin"))

    response = client.post(
        f"/admin/tracking/vendorconnection/{connection.pk}/change/",
        _admin_connection_form(connection, base_url="http://127.0.0.1:8686/"),
    )

    assert "127.0.0.1 is a loopback address" in response.content.decode()
