"""Connection services: update with write-only secrets (audited by key name), problems in words."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from tests.factories import vendor_connection_make
from tracking.models import AuditEntry, VendorConnection
from tracking.services.connections import connection_problem, connection_update

pytestmark = pytest.mark.django_db


def test_an_update_sets_secrets_and_audits_only_their_names():
    connection = vendor_connection_make("algonomy")

    connection_update(connection=connection, secrets={"client_secret": "fresh-secret-1"}, batch_size=10)

    connection.refresh_from_db()
    assert connection.secrets == {"client_id": "hub-client", "client_secret": "fresh-secret-1"}
    entry = AuditEntry.objects.get()
    assert entry.details == {"fields": ["batch_size"], "secret_keys": ["client_secret"]}
    assert "fresh-secret-1" not in str(entry.details)


def test_an_empty_secret_removes_it():
    connection = vendor_connection_make("tracify")

    connection_update(connection=connection, secrets={"api_key": ""})

    assert VendorConnection.objects.get().secrets == {}


def test_an_invalid_update_saves_nothing():
    connection = vendor_connection_make("tracardi")

    with pytest.raises(ValidationError) as error:
        connection_update(connection=connection, base_url="not a url", name="renamed")

    assert "base_url" in error.value.message_dict
    assert VendorConnection.objects.get().name == "tracardi" and not AuditEntry.objects.exists()
    with pytest.raises(TypeError, match="unknown fields: kind"):
        connection_update(connection=connection, kind="tracify")


@pytest.mark.parametrize(
    ("kind", "values", "problem"),
    [
        ("tracardi", {"base_url": "http://t:8686/", "settings": {"source_id": "@x"}}, "starting with @"),
        ("algonomy", {"base_url": "https://a/", "settings": {"tenant_hash": "A"}}, "missing src_id, src_type"),
        ("tracify", {"base_url": "https://t/", "settings": {"customer_site_id": "s"}, "secrets": {"api_key": "k"}}, ""),
        ("nobody", {"base_url": "https://t/"}, "no vendor module for kind 'nobody'"),
    ],
)
def test_connection_problem_says_what_the_vendor_module_cannot_work_with(kind, values, problem):
    found = connection_problem(kind=kind, **values)
    assert (problem in found) if problem else found == ""


# -- secrets follow the host; egress -------------------------------------------------------------------------
def test_an_update_to_another_host_with_blank_secrets_is_refused_naming_them():
    connection = vendor_connection_make("algonomy")

    with pytest.raises(ValidationError) as error:
        connection_update(connection=connection, auth_url="https://collector.attacker.example", secrets={})

    assert "client_id, client_secret again" in str(error.value.message_dict["secrets"])
    assert VendorConnection.objects.get().auth_url == "https://rcdp-us.algonomy.com"
    with pytest.raises(ValidationError, match="client_secret again"):
        connection_update(
            connection=connection, auth_url="https://collector.attacker.example", secrets={"client_id": "x"}
        )
    connection_update(
        connection=connection, auth_url="https://rcdp-eu.algonomy.com", secrets={"client_id": "x", "client_secret": "y"}
    )
    assert VendorConnection.objects.get().auth_url == "https://rcdp-eu.algonomy.com"


def test_create_and_update_refuse_internal_addresses(settings):
    from tracking.services.connections import connection_create

    settings.HUB_EGRESS_ALLOW = []
    with pytest.raises(ValidationError) as error:
        connection_create(kind="tracardi", name="t", base_url="http://192.168.1.10/", settings={"source_id": "s"})
    assert "192.168.1.10 is a private address" in str(error.value.message_dict["base_url"])
    connection = vendor_connection_make("tracardi")
    with pytest.raises(ValidationError, match="HUB_EGRESS_ALLOW"):
        connection_update(connection=connection, base_url="http://127.0.0.1:8686/")
    assert not VendorConnection.objects.exclude(pk=connection.pk).exists()


def test_a_host_that_does_not_resolve_is_refused_at_save(monkeypatch):
    from tracking.vendors import egress

    def resolve(host, port):
        raise OSError("no such host")

    monkeypatch.setattr(egress, "resolve", resolve)
    connection = vendor_connection_make("tracardi")

    with pytest.raises(ValidationError, match="Cannot resolve host nowhere.example"):
        connection_update(connection=connection, base_url="http://nowhere.example:8686/")
