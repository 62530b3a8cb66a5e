"""The route editor's form: the vendor's event names and route options, and the field mapping as rows
(vendor attribute → source path) turned into the mapping the vendor module reads."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django import forms

from .consent import PURPOSE_LABELS, PURPOSES, default_route_purposes
from .models import EventType, Route, VendorConnection
from .services.routes import (
    ENVELOPE_PATHS,
    event_type_data_paths,
    route_problems,
    route_source_problems,
    source_problem,
)
from .vendors import acquia, algonomy, tracardi, tracify, vendor_class
from .vendors.base import CONTEXT_HEADS, CONTEXT_PATHS

# Reference: tracking/vendors/base.py resolve_path (the grammar every vendor module reads).
ROOT_PATHS = ENVELOPE_PATHS + CONTEXT_PATHS
PATH_HELP = (
    "data.<field> (data.items.0.sku for a list element), eventDate, trackerId, nonce, eventType, "
    "item.<field> (inside a list of items), context.<field>, traits.<field>, userId, anonymousId (what a Segment "
    "call brings), =text for a constant text, or a number, true or false"
)
# What the editor suggests of a Segment call's context (any context.… or traits.… path is read).
CONTEXT_SUGGESTIONS = (
    "context.ip",
    "context.userAgent",
    "context.page.url",
    "context.page.referrer",
    "context.campaign.source",
    "context.locale",
    "traits.email",
    *CONTEXT_PATHS,
)


def path_parse(text: str) -> Any:
    """The mapping value of a source written in a row; ValueError says what is wrong."""
    text = text.strip()
    if not text:
        raise ValueError(f"give a source: {PATH_HELP}")
    if text.startswith("="):
        return text
    head, dot, rest = text.partition(".")
    if head in ("data", "item", *CONTEXT_HEADS):
        if dot and (not rest or "" in rest.split(".")):
            raise ValueError(f"{text!r} has an empty segment (write {head}.field.subfield)")
        return text
    if text in ROOT_PATHS:
        return text
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a source: use {PATH_HELP}") from None
    if isinstance(value, str):
        return "=" + value  # a quoted text is a constant text
    return value


def path_text(value: Any) -> str:
    """A mapping value as written in a row (the inverse of path_parse)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class Option:
    """One route option a vendor module reads from Route.options."""

    name: str
    label: str
    help: str
    choices: tuple[tuple[str, str], ...] = ()  # empty: a yes/no option
    default: Any = False


@dataclass(frozen=True)
class RouteSpec:
    """What the route editor offers for one vendor kind."""

    event_names: tuple[str, ...] = ()  # the vendor's fixed list; empty = free text
    event_name_help: str = ""
    uses_mapping: bool = True
    mapping_help: str = ""
    attributes: tuple[str, ...] = ()  # suggestions for the attribute column
    item_attributes: tuple[str, ...] = ()  # attributes (or "prefix.") whose source may be item.<field>
    options: tuple[Option, ...] = ()
    session: bool = False  # Tracardi: the session id path is a field of its own
    defaults: tuple[tuple[str, str], ...] = ()  # (entry, default path): a tuple, templates read dicts by key


SPECS: dict[str, RouteSpec] = {
    "webmarketer": RouteSpec(
        event_name_help="The Webmarketer event-type reference; empty = this event type's reference.",
        uses_mapping=False,
        mapping_help="Webmarketer receives the event's data as it is: its event type's fields define it.",
    ),
    # Reference: acquia-cdp-webtag-tracker-api.txt "Entities & data model" and VENDORS.md.
    "acquia": RouteSpec(
        event_name_help=(
            "The event's Type in Acquia CDP (case-sensitive camelCase, e.g. productBrowsed); "
            "empty = the event type reference."
        ),
        mapping_help=(
            "Attribute names are case-sensitive (SourceCustomerNumber, not sourcecustomernumber). Plain names go "
            "to events; prefix customers., transactions. or transactionitems. for those entities. "
            "transactionitems.@items names the list of items (e.g. data.items); the other transactionitems "
            "attributes read item.<field>. The hub sets Type and EventTimeStamp, and leaves out empty values."
        ),
        attributes=(
            "Email",
            "SourceCustomerNumber",
            "Cookie",
            "UserClient",
            "DeviceType",
            "customers.SourceCustomerNumber",
            "customers.EmailAddress1",
            "customers.FirstName",
            "customers.LastName",
            "transactions.SourceTransactionNumber",
            "transactionitems.@items",
            "transactionitems.SourceTransactionItemNumber",
        ),
        item_attributes=("transactionitems.",),
        options=(
            Option(
                "send_customers",
                "Send customers",
                "Add the customers entity (the customers.* rows) to each call.",
            ),
            Option(
                "send_transactions",
                "Send transactions and their items",
                "Only if SourceTransactionNumber and SourceTransactionItemNumber match what the standard "
                "Transaction and Transaction Item feeds send: otherwise CDP creates duplicate transactions and "
                "doubles revenue.",
            ),
        ),
    ),
    # Reference: algonomy-rcdp-direct-api.txt "Common Fields" and "Complete API Event Reference".
    "algonomy": RouteSpec(
        event_names=tuple(algonomy.REQUIRED_EVENT_DATA),
        event_name_help="One of Algonomy's 15 events: its required eventData fields are checked before each send.",
        mapping_help=(
            "Body path → source, e.g. customer.email ← data.email, eventData.orderId ← data.order_id; "
            "eventData ← data.checkout takes a whole object (eventData ← data: all of the event's data). Without "
            "any eventData row the eventData is {} (only what is mapped is sent). The customer is required. "
            "The hub sets srcId, srcType, requestTime, eventDateTime and clientCorrelatorId (the event's nonce)."
        ),
        attributes=(
            "customer.email",
            "customer.customerCode",
            "customer.mobile",
            "customer.uuid",
            "session.sessionId",
            "session.sessionKey",
            "session.customerIPAddress",
            "session.cookieId",
            "session.referrerSourceURL",
            "page.url",
            "page.pageUrl",
            "page.pageName",
            "utm.source",
            "utm.medium",
            "utm.campaign",
            "userAgent.browserType",
            "storeId",
            "eventData",
        ),
    ),
    # Reference: tracardi-webhooks.txt "Webhook URL" and "Webhook URL with Session".
    "tracardi": RouteSpec(
        event_name_help=(
            "The event type in the collector URL (/collect/<event type>/<source id>); empty = the event type reference."
        ),
        mapping_help=(
            "Property → source; only the mapped properties are sent. A * row spreads an object: * ← data sends all "
            "of the event's data as properties."
        ),
        options=(
            Option(
                "method",
                "Method",
                "POST sends the properties as a JSON body, GET as URL parameters.",
                choices=(("POST", "POST (JSON body)"), ("GET", "GET (URL parameters)")),
                default="POST",
            ),
        ),
        session=True,
    ),
    # Reference: tracify-server-side-events-api.txt "Event Properties" and "data".
    "tracify": RouteSpec(
        event_names=tracify.TYPES,
        event_name_help=(
            "Tracify's event type: purchase needs order_id, currency and amount; conversion needs conversion_id, "
            "currency and amount."
        ),
        mapping_help=(
            "Every entry has a default (below): add a row only where your data differs. email, ip and "
            "user_agent are hashed with calcGroup before they leave the hub; ip and user_agent are required. "
            "items is a list: item_name, item_amount and item_quantity read inside one item (item.<field>) and "
            "become ITEM1, AMT1, QTY1…"
        ),
        attributes=tuple(tracify.DEFAULT_MAPPING),
        item_attributes=("item_name", "item_amount", "item_quantity"),
        defaults=tuple(tracify.DEFAULT_MAPPING.items()),
    ),
}


def route_spec(kind: str) -> RouteSpec:
    return SPECS.get(kind, RouteSpec())


@dataclass
class Row:
    """One mapping row as typed, with what is wrong with it."""

    attribute: str = ""
    source: str = ""
    error: str = ""


def mapping_rows(kind: str, mapping: dict[str, Any]) -> list[Row]:
    """A stored mapping as rows (Acquia's entity objects flattened to entity.attribute)."""
    rows: list[Row] = []
    if kind == "acquia":
        for entity, attributes in acquia.entity_mappings(mapping).items():
            prefix = "" if entity == "events" else entity + "."
            rows += [Row(prefix + name, path_text(path)) for name, path in attributes.items()]
        return rows
    for name, path in mapping.items():
        if kind == "tracardi" and name == tracardi.SESSION_KEY:
            continue
        rows.append(Row(name, path_text(path)))
    return rows


def rows_mapping(kind: str, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Parsed rows as the mapping the vendor module reads."""
    if kind != "acquia":
        return dict(pairs)
    out: dict[str, dict[str, Any]] = {}
    for attribute, value in pairs:
        entity, dot, name = attribute.partition(".")
        if dot and entity in acquia.ENTITIES:
            out.setdefault(entity, {})[name] = value
        else:
            out.setdefault("events", {})[attribute] = value
    return out


class RouteForm(forms.Form):
    """Create or edit a route; the rows come as repeated map_attr / map_path fields."""

    event_type = forms.ModelChoiceField(EventType.objects.all(), empty_label="— choose an event type —")
    connection = forms.ModelChoiceField(VendorConnection.objects.all(), empty_label="— choose a connection —")
    vendor_event_name = forms.CharField(required=False, max_length=100, label="Vendor event name")
    enabled = forms.BooleanField(required=False, initial=True, help_text="Disabled routes queue no delivery.")
    undeclared_ok = forms.BooleanField(
        required=False,
        label="Keep sources the event type does not declare",
        help_text=(
            "A data.… source must be a field of the event type or a key its logged events carry. Tick this to keep "
            "one its events will carry (ingest keeps extra keys) before any has been logged."
        ),
    )
    purposes = forms.MultipleChoiceField(
        choices=[(p, PURPOSE_LABELS[p]) for p in PURPOSES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Consent needed",
        help_text=(
            "An event goes this way only if its person consented to every purpose ticked; otherwise its delivery is "
            "recorded as suppressed (never sent). None ticked: no consent needed."
        ),
    )
    session_path = forms.CharField(
        required=False,
        label="Session id from",
        help_text=(
            "A path of the event holding the Tracardi session id (e.g. data.session): the event is then collected "
            "on that session and the profile recreated. Empty: profile-less events."
        ),
    )

    def __init__(self, data=None, *, route: Route | None = None, preset: dict[str, Any] | None = None) -> None:
        self.route = route
        initial: dict[str, Any] = dict(preset or {})
        if route is not None:
            initial = {
                "event_type": route.event_type_id,
                "connection": route.connection_id,
                "vendor_event_name": route.vendor_event_name,
                "enabled": route.enabled,
                "session_path": path_text(route.mapping.get(tracardi.SESSION_KEY, ""))
                if route.connection.kind == "tracardi"
                else "",
            }
            initial["purposes"] = list(route.purposes or [])
            initial.update({f"option_{k}": v for k, v in route.options.items()})
            # A route saved with sources its type does not declare stays editable as it was saved.
            initial["undeclared_ok"] = bool(route_source_problems(event_type=route.event_type, mapping=route.mapping))
        super().__init__(data, initial=initial)
        connection = self.selected_connection()
        self.kind = connection.kind if connection else ""
        if route is None and "purposes" not in (preset or {}):
            # A new route: the vendor kind's usual purposes, ticked (issue 15), changed as staff see fit. Until the
            # page has shown the boxes for this vendor kind (purposes_shown), its defaults stand for the typed value.
            self.initial["purposes"] = default_route_purposes(self.kind)
            if data is not None and data.get("purposes_shown") != self.kind:  # shown for another vendor, or not yet
                self.data = data.copy()
                self.data.setlist("purposes", default_route_purposes(self.kind))
        self.spec = route_spec(self.kind)
        for option in self.spec.options:
            name = f"option_{option.name}"
            if option.choices:
                self.fields[name] = forms.ChoiceField(
                    choices=option.choices, required=False, label=option.label, help_text=option.help
                )
                self.initial.setdefault(name, option.default)
            else:
                self.fields[name] = forms.BooleanField(required=False, label=option.label, help_text=option.help)
        name_field = self.fields["vendor_event_name"]
        name_field.help_text = self.spec.event_name_help
        if self.spec.event_names:
            current = str(self["vendor_event_name"].value() or "")
            choices = [("", "— choose —"), *((n, n) for n in self.spec.event_names)]
            if current and current not in self.spec.event_names:
                choices.append((current, f"{current} (not a known name)"))
            name_field.widget = forms.Select(choices=choices)
        else:
            event_type = self.selected_event_type()
            name_field.widget.attrs["placeholder"] = event_type.reference if event_type else "the event type reference"
        if data is not None:
            self.rows = [Row(a, s) for a, s in zip(data.getlist("map_attr"), data.getlist("map_path"), strict=False)]
        elif route is not None:
            self.rows = mapping_rows(route.connection.kind, route.mapping)
        else:
            self.rows = []
        self.values: dict[str, Any] = {}
        self.read_only = False
        self._data_paths: tuple[list[str], set[str]] | None = None

    def _lookup(self, name: str, model):
        value = self[name].value()
        if isinstance(value, model):
            return value
        try:
            return model.objects.filter(pk=int(value)).first() if value not in (None, "") else None
        except (TypeError, ValueError):
            return None

    def selected_connection(self) -> VendorConnection | None:
        """The connection chosen (typed, else the route's), even before the form is validated."""
        return self._lookup("connection", VendorConnection)

    def selected_event_type(self) -> EventType | None:
        return self._lookup("event_type", EventType)

    def make_read_only(self) -> None:
        """For users who may look but not change: every field shown disabled."""
        self.read_only = True
        for form_field in self.fields.values():
            form_field.disabled = True

    # -- turning the typed values into a route ------------------------------------------------------------
    def parsed_rows(self) -> list[tuple[str, Any]]:
        """The rows that parse, as (attribute, value); each other row gets its error. Blank rows are dropped."""
        self.rows = [r for r in self.rows if r.attribute.strip() or r.source.strip()]
        pairs: list[tuple[str, Any]] = []
        seen: set[str] = set()
        for row in self.rows:
            row.attribute, row.source, row.error = row.attribute.strip(), row.source.strip(), ""
            if not row.attribute:
                row.error = "Name the vendor attribute this source fills."
                continue
            if row.attribute in seen:
                row.error = f"{row.attribute} is mapped twice: keep one row."
                continue
            if self.spec.session and row.attribute == tracardi.SESSION_KEY:
                row.error = "Set the session with the “Session id from” field."
                continue
            try:
                value = path_parse(row.source)
            except ValueError as exc:
                row.error = str(exc)[:1].upper() + str(exc)[1:] + "."
                continue
            if problem := self._source_problem(value):
                row.error = problem[:1].upper() + problem[1:] + "."
                continue
            if isinstance(value, str) and (value == "item" or value.startswith("item.")) and not self._item_ok(row):
                inside = ", ".join(a.rstrip(".") + ("…" if a.endswith(".") else "") for a in self.spec.item_attributes)
                row.error = (
                    f"item.… sources only work inside a list of items ({inside})."
                    if inside
                    else "item.… sources only work inside a list of items, which this vendor does not map."
                )
                continue
            seen.add(row.attribute)
            pairs.append((row.attribute, value))
        return pairs

    def data_paths(self) -> tuple[list[str], set[str]]:
        """(declared, seen) data paths of the chosen event type (services.routes.event_type_data_paths), read once."""
        if self._data_paths is None:
            event_type = self.selected_event_type()
            self._data_paths = event_type_data_paths(event_type) if event_type else ([], set())
        return self._data_paths

    def _source_problem(self, value: Any) -> str:
        """Why a parsed source names nothing the chosen event type's events have ("" when fine, or acknowledged)."""
        event_type = self.selected_event_type()
        if event_type is None or self["undeclared_ok"].value():
            return ""
        declared, seen = self.data_paths()
        return source_problem(value, {*declared, *seen}, event_type)

    def _item_ok(self, row: Row) -> bool:
        return any(
            row.attribute.startswith(a) if a.endswith(".") else row.attribute == a for a in self.spec.item_attributes
        )

    def route_values(self) -> dict[str, Any]:
        """mapping and options as the vendor module reads them (rows that do not parse are left out)."""
        mapping = rows_mapping(self.kind, self.parsed_rows()) if self.spec.uses_mapping else {}
        session = str(self["session_path"].value() or "").strip()
        if self.spec.session and session:
            mapping[tracardi.SESSION_KEY] = session
        same_kind = self.route is not None and self.route.connection.kind == self.kind
        options = dict(self.route.options) if same_kind else {}
        for option in self.spec.options:
            value = self[f"option_{option.name}"].value()
            options[option.name] = (value or option.default) if option.choices else bool(value)
        name = str(self["vendor_event_name"].value() or "").strip()
        return {"vendor_event_name": name, "mapping": mapping, "options": options}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        connection, event_type = cleaned.get("connection"), cleaned.get("event_type")
        if connection is None or event_type is None:
            return cleaned
        values = self.route_values()
        if any(r.error for r in self.rows):
            self.add_error(None, "Some mapping rows need fixing (marked below); nothing was saved.")
        session = cleaned.get("session_path", "").strip()
        if self.spec.session and session:
            try:
                parsed = path_parse(session)
            except ValueError as exc:
                self.add_error("session_path", str(exc))
            else:
                if not isinstance(parsed, str) or parsed.startswith("="):
                    self.add_error("session_path", "Name a path of the event (e.g. data.session), not a constant.")
        for problem in route_problems(connection=connection, event_type=event_type, **values):
            self.add_error(None, problem)
        self.values = {
            **values,
            "event_type": event_type,
            "connection": connection,
            "enabled": cleaned["enabled"],
            "purposes": list(cleaned.get("purposes") or []),
        }
        return cleaned

    # -- what the templates show ----------------------------------------------------------------------------
    def required_event_data(self) -> tuple[str, ...]:
        """Algonomy: the required eventData fields of the chosen event name."""
        if self.kind != "algonomy":
            return ()
        return algonomy.REQUIRED_EVENT_DATA.get(str(self["vendor_event_name"].value() or ""), ())

    def received_fields(self) -> list[str]:
        """The event's fields the vendor receives under the route as typed (data minimisation), in words."""
        if not self.kind:
            return []
        try:
            sources = vendor_class(self.kind).received_sources(self.route_values()["mapping"])
        except LookupError:
            return []
        return ["all of the event's data" if s == "data" else s for s in sources]

    def option_fields(self) -> list[forms.BoundField]:
        return [self[f"option_{o.name}"] for o in self.spec.options]

    def source_suggestions(self) -> list[str]:
        """The sources the editor offers: the event type's fields, the keys its logged events carry, the envelope."""
        declared, seen = self.data_paths()
        return [*declared, *sorted(seen - set(declared)), *ENVELOPE_PATHS, *CONTEXT_SUGGESTIONS]
