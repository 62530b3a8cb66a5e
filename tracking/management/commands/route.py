from __future__ import annotations

import argparse

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tracking.config.cli import pairs, refusal_text
from tracking.config.saves import Refused, route_save
from tracking.connection_forms import SPECS as CONNECTION_SPECS
from tracking.models import Event, EventType, Route, VendorConnection
from tracking.route_forms import PATH_HELP, mapping_rows, route_spec
from tracking.services.routes import route_delete, route_preview

TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def route_reference() -> str:
    """Every vendor kind's event names, route options and mapping rules, from the console's route editor."""
    lines = [f"--map ATTRIBUTE=SOURCE: SOURCE is {PATH_HELP}.", "", "Per connection kind:"]
    for kind in CONNECTION_SPECS:
        spec = route_spec(kind)
        lines.append(f"\n{kind}:")
        if spec.event_name_help:
            lines.append(f"  --event-name: {spec.event_name_help}")
        if spec.event_names:
            lines.append(f"    one of: {', '.join(spec.event_names)}")
        if spec.mapping_help:
            lines.append(f"  mapping: {spec.mapping_help}")
        for option in spec.options:
            values = "|".join(c for c, _ in option.choices) if option.choices else "true|false"
            lines.append(f"  --option {option.name}={values} (default {option.default}): {option.help}")
        if spec.session:
            lines.append("  --session-path PATH: the event path holding the Tracardi session id (e.g. data.session).")
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Routes (event type → connection): list, add, update, delete, preview EVENT_ID (the console's checks)."

    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("epilog", route_reference())
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        fmt = {"formatter_class": argparse.RawDescriptionHelpFormatter, "epilog": route_reference()}
        listing = sub.add_parser("list", help="List routes")
        listing.add_argument("--event-type", help="Only this event type's routes.")
        listing.add_argument("--connection", help="Only this connection's routes.")
        add = sub.add_parser("add", help="Route an event type to a connection", **fmt)
        update = sub.add_parser("update", help="Change a route: only what is given changes", **fmt)
        for parser_ in (add, update):
            parser_.add_argument("event_type", help="The event type's reference.")
            parser_.add_argument("connection", help="The connection's name.")
            parser_.add_argument("--event-name", help="The vendor's event name (empty: the event type reference).")
            parser_.add_argument(
                "--map", action="append", default=[], metavar="ATTRIBUTE=SOURCE", help="A mapping row."
            )
            parser_.add_argument("--option", action="append", default=[], metavar="NAME=VALUE", help="A route option.")
            parser_.add_argument("--session-path", help="Tracardi: where the event holds the session id.")
            parser_.add_argument(
                "--keep-undeclared-sources",
                action="store_true",
                help="Keep data.… sources the event type does not declare and no logged event carries yet.",
            )
        add.add_argument("--disabled", action="store_true", help="Create it disabled (it queues no delivery).")
        update.add_argument("--unmap", action="append", default=[], metavar="ATTRIBUTE", help="Remove a mapping row.")
        state = update.add_mutually_exclusive_group()
        state.add_argument("--enable", action="store_true", help="Enable the route.")
        state.add_argument("--disable", action="store_true", help="Disable it (its due deliveries are cancelled).")
        delete = sub.add_parser("delete", help="Delete a route (its due deliveries are cancelled)")
        delete.add_argument("event_type")
        delete.add_argument("connection")
        preview = sub.add_parser("preview", help="Show what each routed vendor would receive for a logged event")
        preview.add_argument("event_id", help="The event's id or uuid.")
        preview.add_argument("--connection", help="Only the route to this connection.")

    def handle(self, *args, action: str, **options):
        getattr(self, f"do_{action}")(**options)

    # -- lookups -----------------------------------------------------------------------------------------------
    def pair(self, event_type: str, connection: str) -> tuple[EventType, VendorConnection]:
        found_type = EventType.objects.filter(reference=event_type).first()
        if found_type is None:
            raise CommandError(f"no event type {event_type!r}")
        found_connection = VendorConnection.objects.filter(name=connection).first()
        if found_connection is None:
            raise CommandError(f"no connection named {connection!r}")
        return found_type, found_connection

    def route(self, event_type: str, connection: str) -> Route:
        route = Route.objects.filter(event_type__reference=event_type, connection__name=connection).first()
        if route is None:
            raise CommandError(f"no route {event_type} → {connection}")
        return route

    def options_parse(self, kind: str, given: list[str]) -> dict:
        """--option NAME=VALUE as the route's options: yes/no options as true or false."""
        options = {}
        specs = {o.name: o for o in route_spec(kind).options}
        for name, value in pairs(given, "--option").items():
            spec = specs.get(name)
            if spec is not None and not spec.choices:
                if value.lower() not in TRUE + FALSE:
                    raise CommandError(f"--option {name}: give true or false, got {value!r}")
                options[name] = value.lower() in TRUE
            else:
                options[name] = value  # the form refuses what it does not know
        return options

    def save(self, **kwargs) -> Route:
        try:
            return route_save(**kwargs)
        except Refused as exc:
            flags = {"vendor_event_name": "--event-name", "event_type": "event type", "connection": "connection"}
            raise CommandError(f"refused, nothing saved:\n{refusal_text(exc, flags)}") from None

    def rows(self, given: list[str]) -> list[tuple[str, str]]:
        return list(pairs(given, "--map").items())

    # -- actions -------------------------------------------------------------------------------------------------
    def do_list(self, *, event_type, connection, **options):
        routes = Route.objects.select_related("event_type", "connection").order_by(
            "event_type__reference", "connection__name"
        )
        if event_type:
            routes = routes.filter(event_type__reference=event_type)
        if connection:
            routes = routes.filter(connection__name=connection)
        for r in routes:
            state = "enabled" if r.enabled else "disabled"
            name = r.vendor_event_name or "(the reference)"
            self.stdout.write(f"{r.event_type.reference}\t{r.connection.name}\t{name}\t{state}\t{len(r.mapping)} rows")

    def do_add(self, *, event_type, connection, event_name, map, option, session_path, **options):
        found_type, found_connection = self.pair(event_type, connection)
        values = {"enabled": not options["disabled"], "options": self.options_parse(found_connection.kind, option)}
        if event_name is not None:
            values["vendor_event_name"] = event_name
        route = self.save(
            event_type=found_type,
            connection=found_connection,
            values=values,
            rows=self.rows(map),
            session_path=session_path,
            keep_undeclared_sources=options["keep_undeclared_sources"],
        )
        self.stdout.write(f"Route {route.event_type.reference} → {route.connection.name} added.")

    def do_update(self, *, event_type, connection, event_name, map, option, session_path, unmap, **options):
        route = self.route(event_type, connection)
        kind = route.connection.kind
        values: dict = {}
        if event_name is not None:
            values["vendor_event_name"] = event_name
        if options["enable"] or options["disable"]:
            values["enabled"] = bool(options["enable"])
        if option:
            values["options"] = {**route.options, **self.options_parse(kind, option)}
        rows = None
        if map or unmap:
            current = [(r.attribute, r.source) for r in mapping_rows(kind, route.mapping)]
            missing = [a for a in unmap if a not in dict(current)]
            if missing:
                raise CommandError(f"--unmap: the route has no row {', '.join(missing)}")
            given = dict(self.rows(map))
            rows = [(a, given.pop(a, s)) for a, s in current if a not in unmap] + list(given.items())
        route = self.save(
            event_type=route.event_type,
            connection=route.connection,
            values=values,
            rows=rows,
            route=route,
            session_path=session_path,
            keep_undeclared_sources=options["keep_undeclared_sources"],
        )
        self.stdout.write(f"Route {route.event_type.reference} → {route.connection.name} updated.")

    def do_delete(self, *, event_type, connection, **options):
        route = self.route(event_type, connection)
        try:
            route_delete(route=route)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"Route {event_type} → {connection} deleted.")

    def do_preview(self, *, event_id, connection, **options):
        event = None
        if event_id.isdigit():
            event = Event.objects.filter(pk=int(event_id)).first()
        else:
            try:
                event = Event.objects.filter(uuid=event_id).first()
            except ValidationError:
                event = None
        if event is None:
            raise CommandError(f"no event {event_id!r} (give its id or uuid)")
        routes = Route.objects.filter(event_type__reference=event.event_type_ref).select_related("connection")
        if connection:
            routes = routes.filter(connection__name=connection)
        routes = list(routes.order_by("connection__name"))
        if not routes:
            raise CommandError(f"{event.event_type_ref} has no route{f' to {connection}' if connection else ''}")
        for route in routes:
            state = "" if route.enabled else " (route disabled)"
            self.stdout.write(f"== {route.connection.name} ({route.connection.kind}){state}")
            preview = route_preview(
                connection=route.connection,
                event=event,
                vendor_event_name=route.vendor_event_name,
                mapping=route.mapping,
                options=route.options,
            )
            if preview.problem:
                self.stdout.write(f"Connection problem: {preview.problem}")
            if preview.refusal:
                self.stdout.write(f"Not sent: {preview.refusal}")
            for request in preview.requests:
                self.stdout.write(f"{request.method} {request.url}")
                for header in request.headers:
                    self.stdout.write(f"  {header}")
                if request.body:
                    self.stdout.write(request.body)
