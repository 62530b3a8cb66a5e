"""Saving one connection, route, event type, source or role group from plain values, through the very forms and
services the console uses: the command line and `hub apply` refuse exactly what the console refuses.

Every function raises `Refused` with the problems keyed by where they are (a tuple path such as
("settings", "project_id"), ("mapping", "Email") or () for the whole item), so a caller can point at its own
input: a command-line option, or a line of a YAML file."""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import QueryDict

from ..connection_forms import SPECS as CONNECTION_SPECS
from ..connection_forms import ConnectionForm
from ..consent import default_route_purposes
from ..models import EventType, Route, SegmentSettings, Source, VendorConnection
from ..route_forms import RouteForm, mapping_rows, route_spec
from ..services.audit import audit_record
from ..services.connections import connection_create, connection_update
from ..services.event_types import EventTypeInvalid, event_type_archive_set, event_type_save
from ..services.routes import route_create, route_update
from ..services.segment import SETTINGS_FIELDS as SEGMENT_SETTINGS_FIELDS
from ..services.segment import segment_settings_get, segment_settings_update
from ..services.sources import source_add, source_update
from ..vendors import acquia, tracardi

Path = tuple[str, ...]


class Refused(Exception):
    """The values break a rule; `problems` maps a path (() for the item as a whole) to its messages."""

    def __init__(self, problems: dict[Path, list[str]]) -> None:
        super().__init__("; ".join(f"{'.'.join(p) or 'item'}: {' '.join(m)}" for p, m in problems.items()))
        self.problems = problems

    @classmethod
    def one(cls, message: str, path: Path = ()) -> Refused:
        return cls({path: [message]})


def _validation_problems(exc: ValidationError, names: dict[str, Path] | None = None) -> dict[Path, list[str]]:
    names = names or {}
    if not hasattr(exc, "error_dict"):
        return {(): list(exc.messages)}
    out: dict[Path, list[str]] = {}
    for name, messages in exc.message_dict.items():
        path = names.get(name, () if name in ("__all__", "secrets") else (name,))
        out.setdefault(path, []).extend(messages)
    return out


# -- connections ------------------------------------------------------------------------------------------
CONNECTION_VALUES = ("name", "enabled", "base_url", "auth_url", "settings", *ConnectionForm.ADVANCED)


def connection_values(connection: VendorConnection) -> dict[str, Any]:
    """A connection's values as the form shows them (an Acquia URL the region table gives is shown empty)."""
    form = ConnectionForm(kind=connection.kind, connection=connection)
    values = {name: form.initial.get(name, getattr(connection, name)) for name in CONNECTION_VALUES}
    values["auth_url"] = values["auth_url"] or ""
    values["settings"] = dict(connection.settings)
    return values


def connection_defaults(kind: str) -> dict[str, Any]:
    """A new connection's values: the model's defaults and the vendor's default URLs, as the console's form."""
    spec = CONNECTION_SPECS[kind]
    defaults = {name: VendorConnection._meta.get_field(name).get_default() for name in ConnectionForm.ADVANCED}
    return {
        "name": "",
        "enabled": True,
        "base_url": spec.base_url_default,
        "auth_url": spec.auth_url_default,
        "settings": {},
        **defaults,
    }


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def connection_save(
    *,
    kind: str,
    values: dict[str, Any],
    secrets: dict[str, str] | None = None,
    connection: VendorConnection | None = None,
    user=None,
) -> VendorConnection:
    """Create (connection=None) or update a connection from values (CONNECTION_VALUES; missing ones keep the
    current or default value) and secrets as text (a JSON secret as its document), through ConnectionForm and
    the connection services. Blank or absent secrets keep the stored ones, as in the console."""
    if kind not in CONNECTION_SPECS:
        raise Refused.one(f"unknown kind {kind!r}: choose one of {', '.join(CONNECTION_SPECS)}", ("kind",))
    spec = CONNECTION_SPECS[kind]
    unknown = set(values) - set(CONNECTION_VALUES)
    if unknown:
        raise TypeError(f"connection_save() got unknown values: {', '.join(sorted(unknown))}")
    merged = {**(connection_values(connection) if connection else connection_defaults(kind)), **values}
    problems: dict[Path, list[str]] = {}
    setting_keys = {f.key for f in spec.settings}
    secret_keys = {f.key for f in spec.secrets}
    settings = merged["settings"] or {}
    for key in settings:
        if key in secret_keys:
            problems[("settings", key)] = [
                f"{key} is a secret of {kind}: give it as a secret (never in the plain settings, which are not "
                "encrypted)."
            ]
        elif key not in setting_keys and (connection is None or key not in connection.settings):
            known = ", ".join(sorted(setting_keys)) or "none"
            problems[("settings", key)] = [f"{kind} has no setting {key!r} (its settings: {known})."]
    for key in secrets or {}:
        if key not in secret_keys:
            known = ", ".join(sorted(secret_keys)) or "none"
            problems[("secrets", key)] = [f"{kind} has no secret {key!r} (its secrets: {known})."]
    # What is refused above is left out, so that the form still says everything else in one go.
    settings = {k: v for k, v in settings.items() if ("settings", k) not in problems}
    secrets = {k: v for k, v in (secrets or {}).items() if ("secrets", k) not in problems}
    data: dict[str, str] = {
        "name": _text(merged["name"]),
        "base_url": _text(merged["base_url"]),
        "auth_url": _text(merged["auth_url"]),
        **{name: _text(merged[name]) for name in ConnectionForm.ADVANCED},
    }
    if merged["enabled"]:
        data["enabled"] = "on"
    for key, value in settings.items():
        data[f"setting_{key}"] = _text(value)
    for key, value in (secrets or {}).items():
        data[f"secret_{key}"] = _text(value)
    form = ConnectionForm(data, kind=kind, connection=connection)
    names = {f"setting_{k}": ("settings", k) for k in setting_keys} | {
        f"secret_{k}": ("secrets", k) for k in secret_keys
    }
    if not form.is_valid():
        for path, messages in _validation_problems(ValidationError(form.errors.as_data()), names).items():
            problems.setdefault(path, []).extend(messages)
    if problems:
        raise Refused(problems)
    try:
        if connection is None:
            return connection_create(kind=kind, secrets=form.secrets, user=user, **form.result)
        return connection_update(connection=connection, secrets=form.secrets, user=user, **form.result)
    except ValidationError as exc:
        raise Refused(_validation_problems(exc, names)) from None


# -- routes -----------------------------------------------------------------------------------------------
ROUTE_VALUES = ("vendor_event_name", "enabled", "mapping", "options")


def _form_value(data: QueryDict, name: str, value: Any) -> None:
    """A plain value as a browser would post it: a list as repeated values, true as "on", false and null left out."""
    if isinstance(value, list):
        data.setlist(name, [v if isinstance(v, str) else json.dumps(v) for v in value])
    elif value is True:
        data[name] = "on"
    elif value is not False and value is not None:
        data[name] = value if isinstance(value, str) else json.dumps(value)


def route_values(route: Route) -> dict[str, Any]:
    return {
        "vendor_event_name": route.vendor_event_name,
        "enabled": route.enabled,
        "mapping": dict(route.mapping),
        "options": dict(route.options),
    }


def route_save(
    *,
    event_type: EventType,
    connection: VendorConnection,
    values: dict[str, Any],
    rows: list[tuple[str, str]] | None = None,
    route: Route | None = None,
    keep_undeclared_sources: bool = False,
    session_path: str | None = None,
    user=None,
) -> Route:
    """Create (route=None) or update a route through RouteForm and the route services.

    values: vendor_event_name, enabled, options and mapping (the stored shape; missing ones keep the route's).
    `rows` (attribute, source as typed in the editor), when given, replace the mapping; `session_path` (Tracardi's
    "Session id from"), when given, replaces the mapping's session path."""
    spec = route_spec(connection.kind)
    merged = {**(route_values(route) if route else {"vendor_event_name": "", "enabled": True}), **values}
    mapping = dict(merged.get("mapping") or {})
    options = dict(merged.get("options") or {})
    problems: dict[Path, list[str]] = {}
    known_options = {o.name: o for o in spec.options}
    for name in options:
        if name not in known_options:
            listed = ", ".join(known_options) or "none"
            problems[("options", name)] = [f"{connection.kind} routes have no option {name!r} (options: {listed})."]
    if not spec.uses_mapping and (mapping or rows):
        problems[("mapping",)] = [f"{spec.mapping_help} A {connection.kind} route takes no mapping."]
    if problems:
        raise Refused(problems)
    data = QueryDict(mutable=True)
    data["event_type"], data["connection"] = str(event_type.pk), str(connection.pk)
    data["vendor_event_name"] = _text(merged.get("vendor_event_name"))
    if merged.get("enabled", True):
        data["enabled"] = "on"
    if keep_undeclared_sources:
        data["undeclared_ok"] = "on"
    purposes = merged.pop("purposes", None)
    if purposes is None:
        purposes = route.purposes if route is not None else default_route_purposes(connection.kind)
    data.setlist("purposes", [_text(p) for p in purposes])
    data["purposes_shown"] = connection.kind  # the list stands as given (not the new route's ticked defaults)
    if spec.session and tracardi.SESSION_KEY in mapping:
        data["session_path"] = _text(mapping.pop(tracardi.SESSION_KEY))
    if session_path is not None:
        if not spec.session:
            raise Refused.one(f"{connection.kind} routes have no session path.", ("mapping", tracardi.SESSION_KEY))
        data["session_path"] = session_path
    for name, option in known_options.items():
        value = options.get(name, option.default)
        if option.choices:
            data[f"option_{name}"] = _text(value)
        elif value is True:
            data[f"option_{name}"] = "on"
        elif value is not False:
            problems[("options", name)] = [f"{name} is true or false (got {value!r})."]
    if problems:
        raise Refused(problems)
    for name, value in merged.items():
        # Any other value (a route field added to RouteForm later) goes to the form field of the same name.
        if name not in ROUTE_VALUES:
            _form_value(data, name, value)
    if rows is None:
        rows = [(row.attribute, row.source) for row in mapping_rows(connection.kind, mapping)]
    for attribute, source in rows:
        data.appendlist("map_attr", attribute)
        data.appendlist("map_path", source)
    form = RouteForm(data, route=route)
    valid = form.is_valid()
    for row in form.rows:
        if row.error:
            problems.setdefault(_row_path(connection.kind, row.attribute), []).append(row.error)
    rows_refused = bool(problems)
    if not valid:
        for name, errors in form.errors.as_data().items():
            path = {"session_path": ("mapping", tracardi.SESSION_KEY)}.get(name, () if name == "__all__" else (name,))
            if name.startswith("option_"):
                path = ("options", name.removeprefix("option_"))
            messages = [m for e in errors for m in e.messages]
            if rows_refused:  # the rows' own messages say it, each at its row
                messages = [m for m in messages if not m.startswith("Some mapping rows need fixing")]
            if messages:
                problems.setdefault(path, []).extend(messages)
    if problems:
        raise Refused(problems)
    try:
        if route is None:
            return route_create(user=user, **form.values)
        return route_update(route=route, user=user, **form.values)
    except ValidationError as exc:
        raise Refused(_validation_problems(exc, {"mapping": ("mapping",)})) from None


def _row_path(kind: str, attribute: str) -> Path:
    """Where a mapping row sits in the stored mapping (Acquia keeps one object per entity)."""
    if kind == "acquia":
        entity, dot, name = attribute.partition(".")
        return ("mapping", entity, name) if dot and entity in acquia.ENTITIES else ("mapping", "events", attribute)
    return ("mapping", attribute)


# -- event types ------------------------------------------------------------------------------------------
# YAML key → the Webmarketer-shaped key services.event_types reads.
EVENT_TYPE_KEYS = {
    "name": "name",
    "fields": "fields",
    "metadata": "metadata",
    "phone_parsing_config": "phoneParsingConfig",
    "expiration_policy": "expirationPolicy",
}


def event_type_values(event_type: EventType) -> dict[str, Any]:
    return {
        "name": event_type.name,
        "fields": event_type.fields,
        "metadata": event_type.metadata,
        "phone_parsing_config": event_type.phone_parsing_config,
        "expiration_policy": event_type.expiration_policy,
        "archived": event_type.archived_at is not None,
    }


def event_type_item_save(
    *, reference: str, values: dict[str, Any], event_type: EventType | None = None, user=None
) -> EventType:
    """Create or update an event type through services.event_types (every rule of the editor), then archive or
    bring it back as `archived` says."""
    merged = {**(event_type_values(event_type) if event_type else {}), **values}
    data = {"reference": reference, **{wm: merged.get(key) for key, wm in EVENT_TYPE_KEYS.items()}}
    back = {wm: key for key, wm in EVENT_TYPE_KEYS.items()}
    try:
        saved = event_type_save(event_type=event_type, data=data, user=user)
    except EventTypeInvalid as exc:
        problems: dict[Path, list[str]] = {}
        for path, messages in exc.errors.items():
            head, *rest = path.split(".")
            problems.setdefault((back.get(head, head), *rest), []).extend(messages)
        raise Refused(problems) from None
    if "archived" in merged:
        event_type_archive_set(event_type=saved, archived=bool(merged["archived"]), user=user)
    return saved


# -- sources ----------------------------------------------------------------------------------------------
def source_item_save(
    *, name: str, values: dict[str, Any], source: Source | None = None, user=None
) -> tuple[Source, str]:
    """Create (with its token, returned once) or update a source and its Segment settings; the model's and the
    Segment service's checks say what is wrong."""
    values = dict(values)
    segment = values.pop("segment", None)
    try:
        if source is None:
            source, token = source_add(name=name, user=user, **values)
        else:
            source, token = source_update(source=source, user=user, **values), ""
    except ValidationError as exc:
        raise Refused(_validation_problems(exc)) from None
    if segment is not None:
        segment_item_save(source=source, segment=segment, user=user)
    return source, token


def segment_values(source: Source) -> dict[str, Any]:
    """A source's Segment settings as the file writes them: only what differs from the defaults ({}: all default),
    the page-view type by its reference."""
    current, default = segment_settings_get(source=source), SegmentSettings()
    return {
        name: value.reference if isinstance(value, EventType) else value
        for name in SEGMENT_SETTINGS_FIELDS
        if (value := getattr(current, name)) != getattr(default, name)
    }


def segment_item_save(*, source: Source, segment: dict[str, Any], user=None) -> None:
    """Make the source's Segment settings what the file says (a key left out: its default), through the checked,
    audited service; nothing written when they already are."""
    unknown = sorted(set(segment) - set(SEGMENT_SETTINGS_FIELDS))
    if unknown:
        listed = ", ".join(SEGMENT_SETTINGS_FIELDS)
        raise Refused({("segment", key): [f"no Segment setting {key!r} (settings: {listed})"] for key in unknown})
    if segment_values(source) == segment:
        return
    default = SegmentSettings()
    changes = {name: segment.get(name, getattr(default, name)) for name in SEGMENT_SETTINGS_FIELDS}
    reference = changes["page_view_type"]
    if reference is not None:
        changes["page_view_type"] = EventType.objects.filter(reference=reference).first()
        if changes["page_view_type"] is None:
            raise Refused.one(f"no event type has the reference {reference!r}", ("segment", "page_view_type"))
    try:
        segment_settings_update(source=source, user=user, **changes)
    except ValidationError as exc:
        raise Refused({("segment", name): messages for name, messages in exc.message_dict.items()}) from None


# -- role groups ------------------------------------------------------------------------------------------
def permission_names(group: Group) -> list[str]:
    perms = group.permissions.select_related("content_type")
    return sorted(f"{p.content_type.app_label}.{p.codename}" for p in perms)


@transaction.atomic
def role_save(*, name: str, permissions: list[str], group: Group | None = None, user=None) -> Group:
    """Create or update a group with exactly these permissions ("app_label.codename"); audited."""
    wanted: list[Permission] = []
    unknown = []
    for index, text in enumerate(permissions):
        app_label, dot, codename = str(text).partition(".")
        found = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first() if dot else None
        if found is None:
            unknown.append((index, text))
        else:
            wanted.append(found)
    if unknown:
        raise Refused(
            {
                ("permissions", str(i)): [f"no permission {t!r} (write app_label.codename, e.g. tracking.view_event)"]
                for i, t in unknown
            }  # fmt: skip
        )
    created = group is None
    if group is None:
        group = Group.objects.create(name=name)
    before = set(permission_names(group))
    group.permissions.set(wanted)
    after = set(permission_names(group))
    if created or before != after:
        audit_record(
            user=user,
            action="role.create" if created else "role.update",
            target=group.name,
            details={"added": sorted(after - before), "removed": sorted(before - after)},
        )
    return group
