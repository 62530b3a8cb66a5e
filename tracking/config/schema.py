"""What the configuration file holds: one table of attributes per kind of record.

Each `Attr` names a YAML key, the types it takes, its value when a file leaves it out, and how it is read from
the record (export, plan; by default the model field of the same name). Saving goes through
tracking/config/saves.py (the console's forms and services), which gets every attribute of an item by its key.

To export and apply a new field, add one `Attr` line to its table below:
- a Source field: `Attr("consent_default", TEXT, "")` in SOURCES; services.sources takes any editable model field
  and the model's own checks (choices, validators) refuse bad values;
- a Route field: `Attr("consent_purposes", LIST, [])` in ROUTES; route_save posts it to RouteForm under the same
  name (a list as repeated values), so the route editor's field of that name checks it and puts it in
  `form.values` for route_create / route_update."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Group

from ..models import EventType, Route, Source, VendorConnection
from .saves import (
    connection_values,
    event_type_values,
    permission_names,
    route_values,
    segment_values,
)

TEXT, BOOL, INT, NUMBER, LIST, MAP = (str,), (bool,), (int,), (int, float), (list,), (dict,)
NONE = (type(None),)


@dataclass(frozen=True)
class Attr:
    key: str
    types: tuple[type, ...]
    default: Any = None
    read: Callable[[Any], Any] | None = None  # from the record; None: the saves module's values by key
    help: str = ""
    # False: a directive for the checks (not a stored field): exported only when it is not its default, and
    # never a change on its own.
    stored: bool = True


@dataclass(frozen=True)
class Section:
    name: str  # the file's top-level key
    singular: str  # how the plan names one item
    keys: tuple[str, ...]  # what identifies an item (its attributes in the file, in this order)
    attrs: tuple[Attr, ...]
    records: Callable[[], Iterable[Any]]
    ident: Callable[[Any], tuple[str, ...]]
    values: Callable[[Any], dict[str, Any]]  # the record's values by attribute key
    archive: str = ""  # what archiving an item absent from the file does, in words ("" = never archived)
    help: str = ""

    def read(self, record: Any) -> dict[str, Any]:
        """The record as the file writes it: keys first, then each attribute (directives only when set)."""
        values = self.values(record)
        out: dict[str, Any] = dict(zip(self.keys, self.ident(record), strict=True))
        for attr in self.attrs:
            if attr.read:
                value = attr.read(record)
            else:
                # A field the saves module does not list (added to the model later) is read as it is stored.
                value = values[attr.key] if attr.key in values else getattr(record, attr.key, attr.default)
            if attr.stored or value != attr.default:
                out[attr.key] = value
        return out


def _secret_env_name(connection: VendorConnection, key: str) -> str:
    """The environment variable an export names for a secret: CONNECTION_KEY, in capitals and underscores."""
    return "".join(c if c.isalnum() else "_" for c in f"{connection.name}_{key}".upper())


def secret_names(connection: VendorConnection) -> dict[str, dict[str, str]]:
    """The names of the stored secrets, each with where `apply` reads it from; never a value."""
    return {key: {"secret_from": f"env:{_secret_env_name(connection, key)}"} for key in sorted(connection.secrets)}


def keep_undeclared_sources(route: Route) -> bool:
    """Whether the route reads data keys its event type does not declare (keys its events carry): a fresh hub has
    logged none of them yet, so the file says to keep them, as the editor's checkbox does."""
    from ..services.routes import event_type_data_paths

    declared, _seen = event_type_data_paths(route.event_type)
    return any(
        isinstance(path, str) and path.startswith("data.") and _undeclared(path, declared)
        for path in _sources(route.mapping)
    )


def _sources(mapping: dict[str, Any]) -> list[Any]:
    from ..vendors import acquia

    out: list[Any] = []
    for name, value in mapping.items():
        out += list(value.values()) if name in acquia.ENTITIES and isinstance(value, dict) else [value]
    return out


def _undeclared(path: str, declared: list[str]) -> bool:
    normal = ".".join("0" if part.isdigit() else part for part in path.split("."))
    return normal not in declared


EVENT_TYPES = Section(
    name="event_types",
    singular="event type",
    keys=("reference",),
    attrs=(
        Attr("name", TEXT, ""),
        Attr("fields", LIST, []),
        Attr("metadata", MAP, {}),
        Attr("phone_parsing_config", LIST, []),
        Attr("expiration_policy", MAP + NONE, None),
        Attr("archived", BOOL, False, help="Archived types refuse their events at ingest."),
    ),
    records=lambda: EventType.objects.order_by("reference"),
    ident=lambda et: (et.reference,),
    values=event_type_values,
    archive="archived",
    help="Event types (Webmarketer's shape: fields with states and statistics), by reference.",
)

CONNECTIONS = Section(
    name="connections",
    singular="connection",
    keys=("name",),
    attrs=(
        Attr("kind", TEXT, read=lambda c: c.kind),
        Attr("enabled", BOOL, True),
        Attr("base_url", TEXT, ""),
        Attr("auth_url", TEXT, ""),
        Attr("settings", MAP, {}),
        Attr("secrets", MAP, {}, read=secret_names),
        Attr("timeout_seconds", NUMBER, 10.0),
        Attr("max_rate", NUMBER + NONE, None),
        Attr("batch_size", INT, 50),
        Attr("retry_base_seconds", NUMBER, 10.0),
        Attr("retry_max_seconds", NUMBER, 600.0),
        Attr("give_up_after_seconds", INT, 24 * 3600),
    ),
    records=lambda: VendorConnection.objects.order_by("name"),
    ident=lambda c: (c.name,),
    values=connection_values,
    archive="disabled",
    help="Vendor connections by name: settings, and the names of their secrets (secret_from: env:NAME | file:PATH).",
)

SOURCES = Section(
    name="sources",
    singular="source",
    keys=("name",),
    attrs=(
        Attr("enabled", BOOL, True),
        Attr(
            "default_consent",
            LIST,
            [],
            help="Purposes its events grant when they carry no consent of their own ([]: deny-all).",
        ),
        Attr(
            "segment",
            MAP,
            {},
            read=segment_values,
            help="Segment settings, where not the defaults: calls, event_aliases, property_renames, page_view_type "
            "(an event type's reference), cors_origins.",
        ),
    ),
    records=lambda: Source.objects.order_by("name"),
    ident=lambda s: (s.name,),
    values=lambda s: {},
    archive="disabled",
    help="Ingest sources by name (never their tokens: a source created by apply prints its token once).",
)

ROUTES = Section(
    name="routes",
    singular="route",
    keys=("event_type", "connection"),
    attrs=(
        Attr("vendor_event_name", TEXT, ""),
        Attr("enabled", BOOL, True),
        Attr("mapping", MAP, {}),
        Attr("options", MAP, {}),
        Attr(
            "purposes",
            LIST + NONE,
            None,
            help="Consent purposes an event needs to go this way; left out: the vendor kind's usual ones.",
        ),
        Attr("keep_undeclared_sources", BOOL, False, read=keep_undeclared_sources, stored=False),
    ),
    records=lambda: Route.objects.select_related("event_type", "connection").order_by(
        "event_type__reference", "connection__name"
    ),
    ident=lambda r: (r.event_type.reference, r.connection.name),
    values=route_values,
    archive="disabled",
    help="Routes: event type → connection, with the vendor's event name, the field mapping and the route options.",
)

ROLES = Section(
    name="roles",
    singular="role",
    keys=("name",),
    attrs=(Attr("permissions", LIST, [], read=permission_names),),
    records=lambda: Group.objects.order_by("name"),
    ident=lambda g: (g.name,),
    values=lambda g: {},
    help="Role groups and their permissions (app_label.codename). Groups left out of a file are left alone.",
)

# In the order they are applied: what a route names exists before it.
SECTIONS: tuple[Section, ...] = (ROLES, EVENT_TYPES, CONNECTIONS, SOURCES, ROUTES)
VERSION = 1
