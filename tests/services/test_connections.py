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
