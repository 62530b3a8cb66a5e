"""Connection pages: list, a form per vendor kind with write-only secrets, test connection, permissions."""

from __future__ import annotations

import json
from datetime import timedelta

import httpx
import pytest
import respx
from django.utils import timezone

from tests.factories import (
    sandbox_vendor_connection_make,
    service_account_make,
    user_make,
    vendor_connection_make,
    webmarketer_connection_make,
)
from tracking.models import AuditEntry, VendorConnection

pytestmark = pytest.mark.django_db

ADVANCED = {
    "timeout_seconds": "5",
    "batch_size": "50",
    "retry_base_seconds": "10",
    "retry_max_seconds": "600",
    "give_up_after_seconds": "86400",
}


@pytest.fixture
def marketing(client):
    user = user_make("Marketing")
    client.force_login(user)
    return user


def acquia_form(**overrides) -> dict:
    return {
        "kind": "acquia",
        "name": "acquia-eu",
        "enabled": "on",
        "base_url": "",
        "auth_url": "",
        "setting_tenant_id": "999",
        "setting_region": "eu-aws",
        "setting_environment": "prod",
        "secret_username": "webtag_user",
        "secret_password": "PiTa7732!9",
        **ADVANCED,
        **overrides,
    }


# -- permissions -------------------------------------------------------------------------------------------
def test_anonymous_users_are_sent_to_the_login_page(client):
    response = client.get("/connections/")
    assert response.status_code == 302 and response.url.startswith("/login/")


def test_sales_users_cannot_open_the_connection_pages(client):
    connection = vendor_connection_make("tracify")
    client.force_login(user_make("Sales"))
    for path in ("/connections/", "/connections/new/", f"/connections/{connection.pk}/"):
        assert client.get(path).status_code == 403


def test_auditors_read_connections_but_change_and_test_nothing(client):
    connection = vendor_connection_make("tracify")
    client.force_login(user_make("Auditor"))

    assert client.get("/connections/").status_code == 200
    html = client.get(f"/connections/{connection.pk}/").content.decode()
    assert "Save connection" not in html and "Test connection" not in html and "disabled" in html
    assert client.get("/connections/new/").status_code == 403
    assert client.post(f"/connections/{connection.pk}/", {"name": "x"}).status_code == 403
    assert client.post(f"/connections/{connection.pk}/test").status_code == 403
    assert not AuditEntry.objects.exists()


# -- list ----------------------------------------------------------------------------------------------------
def test_the_list_shows_kind_state_circuit_and_the_names_of_the_secrets_only(client, marketing):
    vendor_connection_make("tracify", enabled=False)
    algonomy = vendor_connection_make("algonomy", circuit_failures=12)
    VendorConnection.objects.filter(pk=algonomy.pk).update(circuit_open_until=timezone.now() + timedelta(seconds=30))
    vendor_connection_make("tracardi")

    html = client.get("/connections/").content.decode()

    assert "Algonomy rCDP" in html and "Tracify" in html and "Tracardi webhooks" in html
    assert "open until" in html and "12 transient failures in a row" in html
    assert "client_id, client_secret" in html and "api_key" in html
    assert "algonomy-client-secret" not in html and "tracify-api-key-123" not in html
    assert "disabled" in html and "closed" in html


# -- a form per kind -----------------------------------------------------------------------------------------
def test_the_new_form_has_only_the_chosen_vendors_settings_and_secrets(client, marketing):
    response = client.get("/connections/new/", {"kind": "acquia"}, headers={"HX-Request": "true"})

    html = response.content.decode()
    assert b"<html" not in response.content  # the form alone, swapped in by HTMX
    for name in ("setting_tenant_id", "setting_region", "setting_environment", "secret_username", "secret_password"):
        assert f'name="{name}"' in html
    assert "setting_project_id" not in html and "secret_client_secret" not in html
    assert "cs-api6.eu / api6.eu" in html  # the subdomain table as help

    webmarketer = client.get("/connections/new/", {"kind": "webmarketer"}).content.decode()
    assert 'name="secret_service_account"' in webmarketer and "<textarea" in webmarketer
    assert 'value="https://api.webmarketer.io/api/v1/"' in webmarketer

    tracardi = client.get("/connections/new/", {"kind": "tracardi"}).content.decode()
    assert 'name="setting_source_id"' in tracardi and "secret_" not in tracardi and 'name="auth_url"' not in tracardi


def test_marketing_creates_an_acquia_connection_whose_urls_come_from_the_region(client, marketing):
    response = client.post("/connections/new/", acquia_form())

    connection = VendorConnection.objects.get()
    assert response.status_code == 302 and response.url == f"/connections/{connection.pk}/"
    assert (connection.base_url, connection.auth_url) == (
        "https://api6.eu.agilone.com/",
        "https://auth.eu.agilone.com/token",
    )
    assert connection.settings == {"tenant_id": "999", "region": "eu-aws", "environment": "prod"}
    assert connection.secrets == {"username": "webtag_user", "password": "PiTa7732!9"}
    entry = AuditEntry.objects.get(action="connection.create")
    assert entry.user == marketing and entry.details == {"kind": "acquia", "secret_keys": ["password", "username"]}
    # Shown back without the URLs the region gives, and without any secret.
    html = client.get(f"/connections/{connection.pk}/").content.decode()
    assert 'value="https://api6.eu.agilone.com/"' not in html and 'value="eu-aws" selected' in html
    assert "PiTa7732" not in html and "webtag_user" not in html


def test_acquia_needs_a_region_or_both_urls(client, marketing):
    response = client.post("/connections/new/", acquia_form(setting_region=""))

    assert "Choose the region and environment" in response.content.decode()
    assert not VendorConnection.objects.exists()
    explicit = acquia_form(
        setting_region="", base_url="http://127.0.0.1:9/acquia/", auth_url="http://127.0.0.1:9/acquia/token"
    )
    assert client.post("/connections/new/", explicit).status_code == 302


def test_a_missing_secret_or_a_bad_setting_is_shown_and_nothing_is_saved(client, marketing):
    response = client.post("/connections/new/", acquia_form(secret_password=""))
    html = response.content.decode()
    assert "Required: this connection has no value for it yet." in html
    assert "type them again" in html  # the username typed is not sent back
    assert "webtag_user" not in html

    tracardi = {
        "kind": "tracardi",
        "name": "tr",
        "base_url": "http://tracardi.example:8686/",
        "setting_source_id": "@internal",
        **ADVANCED,
    }
    response = client.post("/connections/new/", tracardi)
    assert "source ids starting with @ are internal" in response.content.decode()
    assert not VendorConnection.objects.exists()


def test_a_service_account_that_is_not_json_is_refused(client, marketing):
    form = {
        "kind": "webmarketer",
        "name": "wm",
        "base_url": "https://api.webmarketer.io/api/v1/",
        "auth_url": "https://oauth.webmarketer.io/oidc/token",
        "setting_project_id": "my-project",
        "secret_service_account": "{not json",
        **ADVANCED,
    }
    assert "Not valid JSON" in client.post("/connections/new/", form).content.decode()

    form["secret_service_account"] = json.dumps(service_account_make())
    assert client.post("/connections/new/", form).status_code == 302
    assert VendorConnection.objects.get().secrets["service_account"]["clientId"] == "client-1"


def test_a_service_account_typed_into_a_refused_form_is_not_echoed_back(client, marketing):
    vendor_connection_make("tracify", name="wm")
    account = service_account_make()
    form = {
        "kind": "webmarketer",
        "name": "wm",
        "base_url": "https://api.webmarketer.io/api/v1/",
        "auth_url": "https://oauth.webmarketer.io/oidc/token",
        "setting_project_id": "my-project",
        "secret_service_account": json.dumps(account),
        **ADVANCED,
    }

    html = client.post("/connections/new/", form).content.decode()

    assert "already exists" in html
    assert "PRIVATE KEY" not in html and account["clientId"] not in html


def test_a_taken_name_is_refused(client, marketing):
    vendor_connection_make("tracify", name="acquia-eu")

    response = client.post("/connections/new/", acquia_form())

    assert "already exists" in response.content.decode() and VendorConnection.objects.count() == 1


def test_editing_keeps_blank_secrets_and_unknown_settings_and_audits_key_names(client, marketing):
    connection = vendor_connection_make("algonomy")
    VendorConnection.objects.filter(pk=connection.pk).update(settings={**connection.settings, "extra": "kept"})
    form = {
        "name": "algonomy",
        "enabled": "on",
        "base_url": "https://sandbox.algonomy.com/",
        "auth_url": "https://rcdp-us.algonomy.com",
        "setting_tenant_hash": "ABC123",
        "setting_src_id": "MobileApp",
        "setting_src_type": "Website",
        "secret_client_id": "",
        "secret_client_secret": "a-new-secret",
        **ADVANCED,
    }

    page = client.get(f"/connections/{connection.pk}/").content.decode()
    assert "algonomy-client-secret" not in page and "hub-client" not in page
    assert page.count('<span class="badge ok">set</span>') == 2
    response = client.post(f"/connections/{connection.pk}/", form)

    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.secrets == {"client_id": "hub-client", "client_secret": "a-new-secret"}
    assert connection.settings["src_id"] == "MobileApp" and connection.settings["extra"] == "kept"
    entry = AuditEntry.objects.get(action="connection.update")
    assert entry.details == {"fields": ["settings", "timeout_seconds"], "secret_keys": ["client_secret"]}
    assert "a-new-secret" not in json.dumps(entry.details)


# -- test connection -----------------------------------------------------------------------------------------
def test_testing_a_connection_runs_the_sandboxes_auth_flow_and_says_so(client, marketing, sandbox, sandbox_url):
    connection = sandbox_vendor_connection_make(sandbox_url, "algonomy")
    before = sandbox.get("/__sandbox__/algonomy/events").json()["token_requests"]

    response = client.post(f"/connections/{connection.pk}/test", headers={"HX-Request": "true"})
    again = client.post(f"/connections/{connection.pk}/test", headers={"HX-Request": "true"})

    assert "Authenticated with Algonomy rCDP: an access token was issued." in response.content.decode()
    assert again.status_code == 200
    # Each test really signs in (no cached token).
    assert sandbox.get("/__sandbox__/algonomy/events").json()["token_requests"] == before + 2
    assert AuditEntry.objects.filter(action="connection.test", details={"ok": True}).count() == 2


def test_a_failed_sign_in_is_reported_without_the_secret(client, marketing, sandbox_url):
    connection = sandbox_vendor_connection_make(sandbox_url, "acquia")
    connection.secrets = {**connection.secrets, "password": "wrong-password"}
    connection.save()

    html = client.post(f"/connections/{connection.pk}/test", headers={"HX-Request": "true"}).content.decode()

    assert "Authentication failed: token endpoint answered HTTP 401" in html and "invalid credentials" in html
    assert "wrong-password" not in html


def test_a_vendor_without_sign_in_says_there_is_nothing_to_try(client, marketing):
    connection = vendor_connection_make("tracardi")

    response = client.post(f"/connections/{connection.pk}/test")  # without HTMX: a message on the page

    assert response.status_code == 302
    page = client.get(response.url).content.decode()
    assert "Tracardi webhooks has no sign-in step to try" in page


def test_a_misconfigured_connection_is_reported_before_any_call(client, marketing):
    connection = webmarketer_connection_make()
    connection.settings = {"project_id": "Bad Project"}
    connection.save()

    html = client.post(f"/connections/{connection.pk}/test", headers={"HX-Request": "true"}).content.decode()

    assert "Configuration problem: Webmarketer: project_id must be" in html


# -- secrets follow the host; egress -------------------------------------------------------------------------
def algonomy_edit_form(**overrides) -> dict:
    return {
        "name": "algonomy",
        "enabled": "on",
        "base_url": "https://sandbox.algonomy.com/",
        "auth_url": "https://rcdp-us.algonomy.com",
        "setting_tenant_hash": "ABC123",
        "setting_src_id": "WBSTR",
        "setting_src_type": "Website",
        "secret_client_id": "",
        "secret_client_secret": "",
        **ADVANCED,
        **overrides,
    }


@pytest.mark.parametrize(
    "moved",
    [
        {"auth_url": "https://collector.attacker.example"},
        {"auth_url": "http://rcdp-us.algonomy.com"},  # another scheme
        {"base_url": "https://sandbox.algonomy.com:8443/"},  # another port
    ],
)
def test_moving_a_connection_to_another_host_needs_its_secrets_again(client, marketing, moved):
    connection = vendor_connection_make("algonomy")

    response = client.post(f"/connections/{connection.pk}/", algonomy_edit_form(**moved))

    html = response.content.decode()
    assert response.status_code == 200 and html.count("enter this secret again") == 2
    connection.refresh_from_db()
    assert connection.auth_url == "https://rcdp-us.algonomy.com" and connection.base_url.endswith(".com/")


def test_a_moved_connection_saves_with_its_secrets_typed_again(client, marketing):
    connection = vendor_connection_make("algonomy")
    form = algonomy_edit_form(
        auth_url="https://rcdp-eu.algonomy.com", secret_client_id="hub-client", secret_client_secret="s-2"
    )

    response = client.post(f"/connections/{connection.pk}/", form)

    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.auth_url == "https://rcdp-eu.algonomy.com" and connection.secrets["client_secret"] == "s-2"


def test_another_path_on_the_same_host_keeps_blank_secrets(client, marketing):
    connection = vendor_connection_make("algonomy")

    response = client.post(
        f"/connections/{connection.pk}/", algonomy_edit_form(base_url="https://sandbox.algonomy.com/v2/")
    )

    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.secrets == {"client_id": "hub-client", "client_secret": "algonomy-client-secret"}


def test_a_webmarketer_service_account_is_not_sent_to_a_new_token_endpoint(client, marketing, settings):
    connection = webmarketer_connection_make()
    form = {
        "name": "wm",
        "enabled": "on",
        "base_url": connection.base_url,
        "auth_url": "https://token.attacker.example/oidc/token",
        "setting_project_id": "my-project",
        "secret_service_account": "",
        **ADVANCED,
    }

    response = client.post(f"/connections/{connection.pk}/", form)

    assert response.status_code == 200 and "enter this secret again" in response.content.decode()
    assert VendorConnection.objects.get().auth_url == "https://oauth.webmarketer.io/oidc/token"


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://127.0.0.1:6379/", "127.0.0.1 is a loopback address"),
        ("http://localhost/", "localhost resolves to 127.0.0.1, which is a loopback address"),
        ("http://10.0.0.5/", "10.0.0.5 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://[::1]:8080/", "::1 is a loopback address"),
        ("ftp://ftp.example.com/", "Only http and https URLs are allowed, not ftp://."),
    ],
)
def test_a_connection_to_an_internal_address_is_refused_and_names_the_setting(client, marketing, settings, url, said):
    settings.HUB_EGRESS_ALLOW = []

    response = client.post("/connections/new/", {"kind": "tracardi", "name": "t", "base_url": url,
                                                 "setting_source_id": "src", "enabled": "on", **ADVANCED})  # fmt: skip

    html = response.content.decode()
    assert response.status_code == 200 and said in html
    assert "HUB_EGRESS_ALLOW" in html or url.startswith("ftp:")
    assert not VendorConnection.objects.exists()


def test_an_allowed_internal_host_is_one_setting_away(client, marketing, settings, egress_resolver, monkeypatch):
    from tracking.vendors import egress

    monkeypatch.setattr(egress, "resolve", lambda host, port: ["10.20.0.7"])
    settings.HUB_EGRESS_ALLOW = ["tracardi.internal:8686"]
    form = {"kind": "tracardi", "name": "t", "setting_source_id": "src", "enabled": "on", **ADVANCED}

    refused = client.post("/connections/new/", {**form, "base_url": "http://tracardi.internal:9000/"})
    saved = client.post("/connections/new/", {**form, "base_url": "http://tracardi.internal:8686/"})

    assert "10.20.0.7, which is a private address" in refused.content.decode()
    assert saved.status_code == 302 and VendorConnection.objects.get().base_url == "http://tracardi.internal:8686/"


def test_test_connection_refuses_an_internal_address_saved_before_without_calling_it(client, marketing, settings):
    settings.HUB_EGRESS_ALLOW = []
    connection = vendor_connection_make("algonomy", auth_url="http://127.0.0.1:6379")

    html = client.post(f"/connections/{connection.pk}/test", headers={"HX-Request": "true"}).content.decode()

    assert "Not tried: 127.0.0.1 is a loopback address" in html and "HUB_EGRESS_ALLOW" in html


def test_a_secret_echoed_where_the_answer_is_cut_never_shows_in_part(client, marketing):
    connection = vendor_connection_make("algonomy")
    secret = connection.secrets["client_secret"]
    # The token endpoint echoes the secret so that the 200-character cut falls in its middle.
    echo = "x" * (200 - len(secret) // 2) + secret

    with respx.mock(assert_all_called=True) as mock:
        mock.post(url__startswith=connection.auth_url).mock(return_value=httpx.Response(401, text=echo))
        html = client.post(f"/connections/{connection.pk}/test", headers={"HX-Request": "true"}).content.decode()

    assert "Authentication failed" in html
    assert secret[: len(secret) // 2] not in html
