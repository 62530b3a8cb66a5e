"""`hub export` / `hub apply`: the plan, idempotent applies, refusals with the file's lines, secrets by name only."""

from __future__ import annotations

import io
import json

import pytest
import yaml
from django.core.management import CommandError, call_command

from tests.config.conftest import SECRETS, stored_secrets
from tests.factories import user_make
from tracking.config.hubfile import HubFileRefused, hub_apply, hub_export, hub_file_read, plan_render
from tracking.models import AuditEntry, EventType, Route, SegmentSettings, Source, VendorConnection

pytestmark = pytest.mark.django_db


def apply(text: str, environ: dict | None = None, **options):
    return hub_apply(hub_file_read(text, environ=environ or {}), **options)


def edited(text: str, edit) -> str:
    document = yaml.safe_load(text)
    edit(document)
    return yaml.safe_dump(document, sort_keys=False)


def item(document: dict, section: str, **keys) -> dict:
    return next(i for i in document[section] if all(i[k] == v for k, v in keys.items()))


def refusal(text: str, environ: dict | None = None) -> list[tuple[int, str, str]]:
    with pytest.raises(HubFileRefused) as caught:
        apply(text, environ)
    return [(p.line, p.where, p.message) for p in caught.value.problems]


# -- export -------------------------------------------------------------------------------------------------
def test_the_export_names_each_secret_and_where_to_read_it_never_its_value(staging):
    text = hub_export()

    for secrets in SECRETS.values():
        for value in secrets.values():
            for line in (value if isinstance(value, str) else json.dumps(value)).splitlines():
                assert line.strip() not in text
            if isinstance(value, dict):
                assert value["privateKey"].splitlines()[1] not in text
    document = yaml.safe_load(text)
    assert item(document, "connections", name="acquia-eu")["secrets"] == {
        "password": {"secret_from": "env:ACQUIA_EU_PASSWORD"},
        "username": {"secret_from": "env:ACQUIA_EU_USERNAME"},
    }
    assert item(document, "connections", name="tracardi-self")["secrets"] == {}
    # Sources by name, never a token (nor its hash or prefix).
    assert document["sources"] == [
        {"name": "crm", "enabled": True, "default_consent": [], "segment": {}},
        {"name": "website", "enabled": True, "default_consent": [], "segment": {}},
    ]
    for source in Source.objects.all():
        assert source.token_hash not in text and source.token_prefix not in text


def test_the_export_is_in_a_stable_order_that_a_diff_reads_well(staging):
    first = hub_export()
    # The same records saved again in another order of keys: the same text.
    route = Route.objects.get(connection__name="algonomy-us")
    route.mapping = dict(reversed(list(route.mapping.items())))
    route.save()

    assert hub_export() == first
    document = yaml.safe_load(first)
    assert list(document) == ["version", "roles", "event_types", "connections", "sources", "routes"]
    assert [c["name"] for c in document["connections"]] == sorted(c["name"] for c in document["connections"])
    assert [(r["event_type"], r["connection"]) for r in document["routes"]] == sorted(
        (r["event_type"], r["connection"]) for r in document["routes"]
    )
    # Acquia's URLs come from region and environment: written empty, as the console's form shows them.
    acquia = item(document, "connections", name="acquia-eu")
    assert (acquia["base_url"], acquia["auth_url"]) == ("", "")


def test_the_export_command_writes_the_file(staging, tmp_path):
    out = io.StringIO()
    call_command("hub", "export", stdout=out)
    call_command("hub", "export", "--output", str(tmp_path / "hub.yaml"), stderr=io.StringIO())

    assert out.getvalue() == (tmp_path / "hub.yaml").read_text() == hub_export()


# -- plan ---------------------------------------------------------------------------------------------------
def staging_changed(text: str) -> str:
    def edit(document):
        item(document, "connections", name="tracify-shop")["settings"]["customer_site_id"] = "csid-2"
        item(document, "connections", name="algonomy-us")["timeout_seconds"] = 7.5
        contact = item(document, "event_types", reference="contact-form")
        next(f for f in contact["fields"] if f["storageKey"] == "phone")["optional"] = False
        document["sources"] = [s for s in document["sources"] if s["name"] != "crm"]
        document["sources"].append({"name": "pos", "enabled": True})
        document["routes"].append({"event_type": "contact-form", "connection": "tracardi-self", "options": {}})

    return edited(text, edit)


def test_the_plan_says_what_it_creates_changes_and_archives_field_by_field(staging):
    audit_before = AuditEntry.objects.count()

    outcome = apply(staging_changed(hub_export()), dry_run=True)
    plan = plan_render(outcome)

    assert '~ change connection tracify-shop\n    settings.customer_site_id: "csid-1" → "csid-2"\n' in plan
    assert "~ change connection algonomy-us\n    timeout_seconds: 5.0 → 7.5\n" in plan
    assert "~ change event type contact-form\n    fields.phone.optional: true → false\n" in plan
    assert '+ create source pos\n    name: "pos"\n    enabled: true\n' in plan
    assert "- archive source crm\n    enabled: true → false\n" in plan
    assert "+ create route contact-form → tracardi-self\n" in plan
    assert '    options.method: "POST"\n' in plan  # the form's default, as the console would save it
    assert plan.endswith("Plan: 2 to create, 3 to change, 1 to archive.")
    # A dry run applies nothing and records nothing.
    assert not outcome.applied and outcome.tokens == {}
    assert not Source.objects.filter(name="pos").exists() and Source.objects.get(name="crm").enabled
    assert VendorConnection.objects.get(name="tracify-shop").settings["customer_site_id"] == "csid-1"
    assert AuditEntry.objects.count() == audit_before


def test_the_plan_names_secrets_and_where_they_came_from_never_their_values(staging):
    environ = {"TRACIFY_SHOP_API_KEY": "a-new-tracify-key-987654"}

    plan = plan_render(apply(hub_export(), environ, dry_run=True))

    assert "~ change connection tracify-shop\n    secrets.api_key: changed (from env:TRACIFY_SHOP_API_KEY)" in plan
    # Variables not set keep the stored secrets, and the plan says so.
    assert "secrets.password: kept as stored (env:ACQUIA_EU_PASSWORD is not available)" not in plan
    assert "a-new-tracify-key-987654" not in plan
    assert "Plan: 0 to create, 1 to change, 0 to archive." in plan


# -- apply --------------------------------------------------------------------------------------------------
def test_applying_the_same_file_twice_changes_nothing(staging):
    text = staging_changed(hub_export())
    first = apply(text)
    assert first.applied and first.counts() == {"create": 2, "change": 3, "archive": 1}
    assert set(first.tokens) == {"pos"} and Source.objects.get(name="pos").token_prefix == first.tokens["pos"][:10]
    exported = hub_export()
    audit = AuditEntry.objects.count()
    stamps = {c.name: c.updated_at for c in VendorConnection.objects.all()}

    again = apply(text)

    assert again.changes == [] and plan_render(again) == "No changes: the hub already matches the file."
    assert hub_export() == exported
    assert AuditEntry.objects.count() == audit
    assert {c.name: c.updated_at for c in VendorConnection.objects.all()} == stamps
    # The export of the hub now applies as no change either.
    assert apply(exported).changes == []


def test_apply_goes_through_the_services_and_is_audited(staging):
    ops = user_make("Marketing", username="ops")
    audit_start = AuditEntry.objects.order_by("id").last().id
    apply(staging_changed(hub_export()), user=ops, name="hub.yaml")

    actions = list(AuditEntry.objects.order_by("id").values_list("action", "target"))
    assert ("connection.update", "tracify-shop (Tracify)") in actions
    assert ("event_type.update", "contact-form") in actions
    assert ("source.create", "pos") in actions
    assert ("source.update", "crm") in actions
    assert ("route.create", "contact-form → tracardi-self") in actions
    assert actions[-1] == ("hub.apply", "hub.yaml")
    assert set(AuditEntry.objects.values_list("user__username", flat=True).filter(id__gt=audit_start)) == {"ops"}
    assert AuditEntry.objects.get(action="hub.apply").details == {"create": 2, "change": 3, "archive": 1}
    # Through the connection service: the secrets are never in an audit entry.
    details = json.dumps(list(AuditEntry.objects.values_list("details", flat=True)))
    assert SECRETS["tracify-shop"]["api_key"] not in details


def test_items_left_out_are_archived_and_sections_left_out_are_left_alone(staging):
    text = edited(hub_export(), lambda d: (d.pop("connections"), d.pop("sources"), d.update(routes=[])))

    outcome = apply(text)

    assert {c.what for c in outcome.changes if c.action == "archive"} == {
        "route contact-form → wm-staging",
        "route purchase → acquia-eu",
        "route purchase → algonomy-us",
        "route purchase → tracardi-self",
        "route purchase → tracify-shop",
    }  # purchase → wm-staging was disabled already: nothing to archive
    assert not Route.objects.filter(enabled=True).exists()
    assert VendorConnection.objects.filter(enabled=True).count() == 4
    assert Source.objects.filter(enabled=True).count() == 2


def test_an_event_type_left_out_is_archived_and_comes_back_when_the_file_names_it(staging):
    full = hub_export()
    without = edited(
        full, lambda d: d.update(event_types=[t for t in d["event_types"] if t["reference"] == "contact-form"])
    )

    plan = plan_render(apply(without))
    assert "- archive event type purchase\n    archived: false → true" in plan
    assert EventType.objects.get(reference="purchase").archived_at is not None

    assert "archived: true → false" in plan_render(apply(full))
    assert EventType.objects.get(reference="purchase").archived_at is None


def test_create_only_creates_what_is_missing_and_leaves_the_rest_as_it_is(staging):
    text = staging_changed(hub_export())

    outcome = apply(text, create_only=True)

    assert {(c.action, c.what) for c in outcome.changes} == {
        ("create", "source pos"),
        ("create", "route contact-form → tracardi-self"),
    }
    assert Source.objects.get(name="crm").enabled
    assert VendorConnection.objects.get(name="tracify-shop").settings["customer_site_id"] == "csid-1"


def test_secrets_come_from_the_environment_or_from_files_next_to_the_file(staging, tmp_path):
    account = json.dumps({**SECRETS["wm-staging"]["service_account"], "privateKeyId": "kid-2"})
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "wm.json").write_text(account)

    def edit(document):
        wm = item(document, "connections", name="wm-staging")
        wm["secrets"]["service_account"] = {"secret_from": "file:secrets/wm.json"}

    text = edited(hub_export(), edit)
    (tmp_path / "hub.yaml").write_text(text)
    out = io.StringIO()
    call_command("hub", "apply", str(tmp_path / "hub.yaml"), "--dry-run", stdout=out)
    assert "secrets.service_account: changed (from file:secrets/wm.json)" in out.getvalue()
    assert "Dry run: nothing was applied." in out.getvalue()
    assert stored_secrets()["wm-staging"] == SECRETS["wm-staging"]

    call_command("hub", "apply", str(tmp_path / "hub.yaml"), stdout=io.StringIO())

    assert VendorConnection.objects.get(name="wm-staging").secrets["service_account"]["privateKeyId"] == "kid-2"
    assert stored_secrets()["acquia-eu"] == SECRETS["acquia-eu"]  # no variable set: kept as stored


# -- refusals -------------------------------------------------------------------------------------------------
SHAPE = """\
version: 1
connections:
- name: wm-prod
  kind: webmarketer
  enabeld: true
  settings:
    project_id: shop
  secrets:
    service_account: '{"privateKey": "..."}'
  batch_size: '50'
sources:
- name: website
  enabled: yes please
routes:
- event_type: purchase
colours: []
"""


def test_unknown_keys_wrong_types_and_inline_secrets_are_refused_with_their_lines(staging):
    problems = refusal(SHAPE)

    assert problems == [
        (5, "connections[0].enabeld", problems[0][2]),
        (9, "connections[0].secrets.service_account", problems[1][2]),
        (10, "connections[0].batch_size", "give a whole number (got text)."),
        (13, "sources[0].enabled", "give true or false (got text)."),
        (15, "routes[0]", "a route needs its connection (text)."),
        (16, "colours", problems[5][2]),
    ]
    assert "unknown key 'enabeld' for a connection (keys: name, kind, enabled," in problems[0][2]
    assert "a secret is never written in the file" in problems[1][2]
    assert "unknown section" in problems[5][2]
    assert not VendorConnection.objects.filter(name="wm-prod").exists()


def test_a_file_that_is_not_yaml_is_refused_with_its_line():
    assert refusal("version: 1\nsources:\n- name: a\n  enabled: [true\n") == [
        (5, "", "not valid YAML: expected ',' or ']', but got '<stream end>'")
    ]


def test_the_vendor_checks_refuse_with_the_line_and_nothing_is_applied(staging):
    text = """\
connections:
- name: wm-prod
  kind: webmarketer
  settings:
    project_id: BAD_ID
  secrets:
    service_account: {secret_from: env:WM_PROD_SERVICE_ACCOUNT}
- name: algonomy-prod
  kind: algonomy
  base_url: https://api.algonomy.com/
  auth_url: https://rcdp-eu.algonomy.com
  settings:
    tenant_hash: ABC
    src_type: Website
    api_key: leaked
- name: acquia-prod
  kind: acquia
  settings: {tenant_id: '999', region: eu-aws, environment: prod}
  secrets:
    username: {secret_from: env:ACQUIA_PROD_USERNAME}
    password: {secret_from: env:ACQUIA_PROD_PASSWORD}
sources:
- name: pos
"""
    environ = {
        "WM_PROD_SERVICE_ACCOUNT": json.dumps(SECRETS["wm-staging"]["service_account"]),
        "ACQUIA_PROD_USERNAME": "webtag",
    }
    audit = AuditEntry.objects.count()

    problems = refusal(text, environ)

    assert problems == [
        (2, "connections[wm-prod]", "Webmarketer: project_id must be 3–64 lowercase letters, digits and single dashes"),
        # Algonomy without src_id nor credentials: the item's line where the file has no line for them.
        (8, "connections[algonomy-prod].secrets.client_id", "Required: this connection has no value for it yet."),
        (8, "connections[algonomy-prod].secrets.client_secret", "Required: this connection has no value for it yet."),
        (12, "connections[algonomy-prod].settings.src_id", "This field is required."),
        (15, "connections[algonomy-prod].settings.api_key", problems[4][2]),
        (21, "connections[acquia-prod].secrets.password", problems[5][2]),
    ]
    assert problems[4][2].startswith("algonomy has no setting 'api_key'")
    assert problems[5][2] == (
        "Required: this connection has no value for it yet. (env:ACQUIA_PROD_PASSWORD is not available: set the "
        "variable.)"
    )
    # Nothing applied: not even the valid source, nor an audit entry.
    assert not Source.objects.filter(name="pos").exists()
    assert AuditEntry.objects.count() == audit


def test_a_connection_needs_a_kind_the_hub_knows(staging):
    text = "connections:\n- name: x\n  settings: {}\n- name: y\n  kind: segment\n"

    kinds = "give the connection's kind, one of webmarketer, acquia, algonomy, tracardi, tracify"
    assert refusal(text) == [
        (2, "connections[x].kind", f"{kinds}."),
        (5, "connections[y].kind", f"{kinds} (not 'segment')."),
    ]


def test_a_secret_given_as_a_setting_is_refused(staging):
    text = edited(
        hub_export(),
        lambda d: item(d, "connections", name="tracify-shop")["settings"].update(api_key="tracify-in-plain-text"),
    )

    ((line, where, message),) = refusal(text)

    assert where == "connections[tracify-shop].settings.api_key"
    assert text.splitlines()[line - 1].strip() == "api_key: tracify-in-plain-text"
    assert message.startswith("api_key is a secret of tracify: give it as a secret")


def test_a_route_is_refused_as_the_route_editor_refuses_it(staging):
    def edit(document):
        algonomy = item(document, "routes", connection="algonomy-us")
        algonomy["mapping"] = {"customer.email": "data.email", "eventData.orderId": "order_id"}
        algonomy["vendor_event_name"] = "eventNoSuchThing"
        document["routes"].append({"event_type": "purchase", "connection": "nowhere"})

    text = edited(hub_export(), edit)

    problems = refusal(text)

    lines = text.splitlines()
    assert [(where, lines[line - 1].strip()) for line, where, _ in problems] == [
        ("routes[purchase → algonomy-us]", "- event_type: purchase"),
        ("routes[purchase → algonomy-us].mapping.eventData.orderId", "eventData.orderId: order_id"),
        ("routes[purchase → nowhere].connection", "connection: nowhere"),
    ]
    assert "'eventNoSuchThing' is not an Algonomy event name" in problems[0][2]
    assert problems[1][2].startswith("'order_id' is not a source")
    assert problems[2][2] == "no connection 'nowhere' in this file or this hub."


def test_the_apply_command_shows_the_refusals_with_the_file_name_and_line(staging, tmp_path):
    (tmp_path / "hub.yaml").write_text(SHAPE)

    with pytest.raises(CommandError) as caught:
        call_command("hub", "apply", str(tmp_path / "hub.yaml"))

    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'hub.yaml'} refused, nothing was applied:\n")
    assert f"{tmp_path / 'hub.yaml'}:10: connections[0].batch_size: give a whole number (got text)." in message


# -- sources' consent default and Segment settings ------------------------------------------------------------
def test_a_sources_consent_default_and_segment_settings_apply_export_and_reapply_as_no_change(staging):
    def segment(document):
        website = item(document, "sources", name="website")
        website["default_consent"] = ["analytics"]
        website["segment"] = {
            "calls": ["track", "identify"],
            "event_aliases": {"Order Completed": "purchase"},
            "page_view_type": "contact-form",
            "cors_origins": ["https://shop.example"],
        }

    text = edited(hub_export(), segment)

    outcome = apply(text)

    website = Source.objects.get(name="website")
    assert website.default_consent == ["analytics"]
    assert (website.segment.calls, website.segment.page_view_type.reference) == (["track", "identify"], "contact-form")
    assert AuditEntry.objects.filter(action="segment_settings.update", target__contains="website").count() == 1
    assert any("segment" in str(change) for change in outcome.changes)
    exported = item(yaml.safe_load(hub_export()), "sources", name="website")
    assert exported["segment"] == {
        "calls": ["track", "identify"],
        "event_aliases": {"Order Completed": "purchase"},
        "page_view_type": "contact-form",
        "cors_origins": ["https://shop.example"],
    }
    assert apply(hub_export()).changes == [] and apply(text).changes == []


def test_segment_settings_the_service_refuses_are_refused_with_their_line(staging):
    def segment(document):
        item(document, "sources", name="crm")["segment"] = {"event_aliases": {"Signed Up": "signup"}, "colour": 1}

    problems = refusal(edited(hub_export(), segment))

    assert [where for _, where, _ in problems] == ["sources[crm].segment.colour"]
    problems = refusal(edited(hub_export(), lambda d: item(d, "sources", name="crm").update(
        segment={"event_aliases": {"Signed Up": "signup"}})))  # fmt: skip
    assert len(problems) == 1 and "signup" in problems[0][2] and problems[0][1] == "sources[crm].segment.event_aliases"
    assert not SegmentSettings.objects.exists()  # nothing applied
