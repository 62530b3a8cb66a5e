"""The configuration commands refuse what the console's forms refuse: connection, route, event_type, source."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from tests.factories import (
    CONTACT_FORM,
    PURCHASE,
    event_type_make,
    service_account_make,
    source_make,
    webmarketer_connection_make,
)
from tracking.connection_forms import SPECS
from tracking.demo import PURCHASE_ROUTES, purchase_data
from tracking.models import AuditEntry, Delivery, EventType, Route, Source, VendorConnection
from tracking.services.ingest import events_ingest

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def refused(*args) -> str:
    with pytest.raises(CommandError) as caught:
        run(*args)
    return str(caught.value)


def help_text(*args) -> str:
    from django.core.management import load_command_class

    command = load_command_class("tracking", args[0])
    parser = command.create_parser("manage.py", args[0])
    if len(args) > 1:
        sub = next(a for a in parser._actions if a.dest == "action")
        return sub.choices[args[1]].format_help()
    return parser.format_help()


# -- connection ---------------------------------------------------------------------------------------------
def test_connection_add_refuses_what_the_console_form_refuses():
    acquia = refused(
        "connection", "add", "acquia", "acq", "--setting", "tenant_id=999", "--setting", "region=eu-aws",
        "--setting", "environment=prod", "--secret", "username=webtag",
    )  # fmt: skip
    algonomy = refused(
        "connection", "add", "algonomy", "alg", "--base-url", "https://api.algonomy.com/",
        "--auth-url", "https://rcdp-us.algonomy.com", "--setting", "tenant_hash=ABC",
    )  # fmt: skip
    account = json.dumps(service_account_make())
    webmarketer = refused(
        "connection",
        "add",
        "webmarketer",
        "wm",
        "--setting",
        "project_id=BAD_ID",
        "--secret",
        f"service_account={account}",
    )

    assert acquia == "refused, nothing saved:\n--secret password: Required: this connection has no value for it yet."
    assert "--setting src_id: This field is required." in algonomy
    assert "--setting src_type: This field is required." in algonomy
    assert "--secret client_id: Required" in algonomy and "--secret client_secret: Required" in algonomy
    assert webmarketer.endswith("Webmarketer: project_id must be 3–64 lowercase letters, digits and single dashes")
    assert not VendorConnection.objects.exists() and not AuditEntry.objects.exists()


def test_a_secret_given_as_a_setting_is_refused_and_never_stored():
    message = refused(
        "connection", "add", "tracify", "tfy", "--setting", "customer_site_id=c1", "--setting", "api_key=sk-live-123"
    )

    assert message.startswith("refused, nothing saved:\n--setting api_key: api_key is a secret of tracify")
    assert "sk-live-123" not in message
    assert not VendorConnection.objects.exists()


def test_connection_add_takes_secrets_from_files_and_settings_as_written(tmp_path):
    account = service_account_make()
    (tmp_path / "sa.json").write_text(json.dumps(account))

    output = run(
        "connection", "add", "webmarketer", "wm", "--setting", "project_id=shop-prod",
        "--setting", "trash_path=@not-a-file", "--secret", f"service_account=@{tmp_path / 'sa.json'}",
    )  # fmt: skip

    connection = VendorConnection.objects.get(name="wm")
    assert "service_account (stored encrypted)" in output
    # The vendor's default URLs, as the console's form offers them.
    assert (connection.base_url, connection.auth_url) == (SPECS["webmarketer"].base_url_default,
                                                          SPECS["webmarketer"].auth_url_default)  # fmt: skip
    assert connection.secrets == {"service_account": account}
    assert connection.settings == {"project_id": "shop-prod", "trash_path": "@not-a-file"}
    assert AuditEntry.objects.get(action="connection.create").details["secret_keys"] == ["service_account"]


def test_acquia_needs_no_base_url_it_comes_from_region_and_environment():
    run(
        "connection", "add", "acquia", "acq", "--setting", "tenant_id=999", "--setting", "region=eu-aws",
        "--setting", "environment=prod", "--secret", "username=webtag", "--secret", "password=pw-123456",
    )  # fmt: skip

    connection = VendorConnection.objects.get(name="acq")
    assert (connection.base_url, connection.auth_url) == (
        "https://api6.eu.agilone.com/",
        "https://auth.eu.agilone.com/token",
    )


def test_the_connection_help_lists_every_kinds_settings_and_secrets():
    for text in (help_text("connection"), help_text("connection", "add"), help_text("connection", "update")):
        for kind, spec in SPECS.items():
            assert f"\n{kind}:\n" in text
            for field in spec.settings:
                assert f"setting {field.key}" in text and field.help[:40] in " ".join(text.split())
            for field in spec.secrets:
                assert f"secret {field.key}" in text


def test_connection_update_changes_what_is_given_and_keeps_the_secrets():
    connection = webmarketer_connection_make()
    secrets = connection.secrets

    run("connection", "update", "wm", "--setting", "project_id=shop-two", "--timeout-seconds", "4")

    connection.refresh_from_db()
    assert (connection.settings["project_id"], connection.timeout_seconds) == ("shop-two", 4.0)
    assert connection.secrets == secrets
    assert AuditEntry.objects.get(action="connection.update").details == {
        "fields": ["settings", "timeout_seconds"],
        "secret_keys": [],
    }
    assert "project_id must be" in refused("connection", "update", "wm", "--setting", "project_id=X")
    assert "--secret api_key: webmarketer has no secret 'api_key'" in refused(
        "connection", "update", "wm", "--secret", "api_key=x"
    )


def test_connection_disable_enable_and_delete():
    connection = webmarketer_connection_make()

    assert run("connection", "disable", "wm") == "Connection wm disabled.\n"
    assert not VendorConnection.objects.get(pk=connection.pk).enabled
    assert run("connection", "enable", "wm") == "Connection wm enabled.\n"
    assert run("connection", "delete", "wm") == "Connection wm deleted.\n"

    assert not VendorConnection.objects.exists()
    assert [a for a in AuditEntry.objects.order_by("id").values_list("action", flat=True)] == [
        "connection.update",
        "connection.update",
        "connection.delete",
    ]


def test_connection_delete_is_refused_while_deliveries_reference_it():
    connection = webmarketer_connection_make()
    event_type = event_type_make()
    Route.objects.create(event_type=event_type, connection=connection)
    events_ingest(
        source=source_make()[0],
        items=[{"eventType": "contact-form", "data": {"email": "a@example.com", "message": "hi"}}],
    )
    assert Delivery.objects.count() == 1

    message = refused("connection", "delete", "wm")

    assert message == "wm is referenced by 1 deliveries: deleting it would erase that history. Disable it instead."
    assert VendorConnection.objects.filter(pk=connection.pk).exists()


# -- route --------------------------------------------------------------------------------------------------
@pytest.fixture
def algonomy():
    event_type_make(PURCHASE)
    run(
        "connection", "add", "algonomy", "alg", "--base-url", "https://api.algonomy.com/", "--auth-url",
        "https://rcdp-us.algonomy.com", "--setting", "tenant_hash=ABC", "--setting", "src_id=WBSTR",
        "--setting", "src_type=Website", "--secret", "client_id=c1", "--secret", "client_secret=s1",
    )  # fmt: skip
    return VendorConnection.objects.get(name="alg")


def test_route_add_update_list_and_delete(algonomy):
    run(
        "route", "add", "purchase", "alg", "--event-name", "eventCategory", "--map", "customer.email=data.email",
        "--map", "eventData.categoryId=data.order_id", "--map", "page.url=data.url", "--keep-undeclared-sources",
    )  # fmt: skip
    route = Route.objects.get()
    assert route.mapping == {
        "customer.email": "data.email",
        "eventData.categoryId": "data.order_id",
        "page.url": "data.url",
    }

    run(
        "route", "update", "purchase", "alg", "--map", "eventData.categoryId=data.currency", "--unmap", "page.url",
    )  # fmt: skip
    route.refresh_from_db()
    assert route.mapping == {"customer.email": "data.email", "eventData.categoryId": "data.currency"}
    assert run("route", "list") == "purchase\talg\teventCategory\tenabled\t2 rows\n"
    run("route", "update", "purchase", "alg", "--disable")
    assert not Route.objects.get().enabled
    assert "--unmap: the route has no row page.url" in refused(
        "route", "update", "purchase", "alg", "--unmap", "page.url"
    )

    run("route", "delete", "purchase", "alg")
    assert not Route.objects.exists()
    assert list(AuditEntry.objects.filter(action__startswith="route.").values_list("action", flat=True)) == [
        "route.delete",
        "route.update",
        "route.update",
        "route.create",
    ]


def test_route_add_refuses_what_the_route_editor_refuses(algonomy):
    unknown = refused(
        "route", "add", "purchase", "alg", "--event-name", "eventNope", "--map", "customer.email=data.email"
    )
    bad_source = refused(
        "route", "add", "purchase", "alg", "--event-name", "eventTransactionComplete", "--map", "customer.email=email"
    )
    undeclared = refused(
        "route",
        "add",
        "purchase",
        "alg",
        "--event-name",
        "eventTransactionComplete",
        "--map",
        "customer.email=data.mail",
    )
    option = refused("route", "add", "purchase", "alg", "--event-name", "eventTransactionComplete", "--option", "x=1")

    assert "'eventNope' is not an Algonomy event name" in unknown
    assert "--map customer.email: 'email' is not a source" in bad_source
    assert "--map customer.email: Data.mail: purchase has no such field" in undeclared
    assert "--option x: algonomy routes have no option 'x'" in option
    assert not Route.objects.exists()


def test_route_preview_shows_what_each_vendor_would_receive(algonomy):
    name, mapping, options = PURCHASE_ROUTES["algonomy"]
    Route.objects.create(
        event_type=EventType.objects.get(),
        connection=algonomy,
        vendor_event_name=name,
        mapping=mapping,
        options=options,
    )
    (result,) = events_ingest(
        source=source_make()[0], items=[{"eventType": "purchase", "data": purchase_data("Kate", "Austen", 1)}]
    )

    output = run("route", "preview", str(result.event.pk))

    assert output.startswith(
        "== alg (algonomy)\nPOST https://api.algonomy.com/callback/rest/events/ABC/eventTransactionComplete\n"
    )
    assert '"orderId": "ORD-1001"' in output and "s1" not in output.split("\n", 2)[1]
    assert "Authorization: [redacted]" in output
    assert refused("route", "preview", "999999") == "no event '999999' (give its id or uuid)"


def test_the_route_help_lists_every_kinds_event_names_and_options():
    text = help_text("route", "add")

    assert "eventTransactionComplete" in text and "--option send_customers=true|false" in text
    assert "--option method=POST|GET" in text and "--session-path" in text


# -- event_type and source ------------------------------------------------------------------------------------
def test_event_type_list_and_show():
    event_type_make()

    assert run("event_type", "list") == "contact-form\tGeneric Contact form\t8 fields\tactive\tlocal\n"
    shown = run("event_type", "show", "contact-form")
    assert shown.startswith("- reference: contact-form\n  name: Generic Contact form\n  fields:\n  - type: email\n")
    assert refused("event_type", "show", "nope") == "no event type 'nope'"


@pytest.mark.integration
def test_event_type_push_and_pull_with_webmarketer(sandbox, sandbox_url):
    from tests.factories import sandbox_connection_make

    sandbox_connection_make(sandbox_url, name="wm-sandbox")
    event_type_make({**CONTACT_FORM, "reference": "cli-push-type"})

    pushed = run("event_type", "push", "cli-push-type")
    pulled = run("event_type", "pull", "--connection", "wm-sandbox")
    again = refused("event_type", "push", "cli-push-type")

    assert pushed.startswith("cli-push-type pushed to wm-sandbox: Webmarketer _id ")
    assert "unchanged: " in pulled
    assert again.startswith("Webmarketer refused cli-push-type: ")
    assert run("event_type", "list").endswith("\tactive\tsynced\n")


def test_source_list_create_rotate_and_disable():
    created = run("source", "create", "pos")
    token = created.splitlines()[-1]
    source = Source.objects.get(name="pos")
    assert source.token_hash == Source.hash_token(token)

    rotated = run("source", "rotate", "pos").splitlines()[-1]
    source.refresh_from_db()
    assert rotated != token and source.token_hash == Source.hash_token(rotated)
    assert run("source", "disable", "pos") == "Source pos disabled.\n"
    assert run("source", "list").startswith(f"pos\tdisabled\ttoken {source.token_prefix}…\tlast used never")
    assert refused("source", "create", "pos").startswith("a source named 'pos' exists already")
    assert token not in json.dumps(list(AuditEntry.objects.values_list("details", flat=True)))
    assert list(AuditEntry.objects.order_by("id").values_list("action", flat=True)) == [
        "source.create",
        "source.rotate",
        "source.update",
    ]


def test_create_source_still_works():
    output = run("create_source", "website")

    assert Source.objects.get(name="website").token_hash == Source.hash_token(output.splitlines()[-1])
