from __future__ import annotations

import yaml
from django.core.management.base import BaseCommand, CommandError

from tracking.config.hubfile import stable
from tracking.config.schema import EVENT_TYPES
from tracking.models import EventType, VendorConnection, VendorKind
from tracking.services.event_types import event_type_sync_state
from tracking.services.webmarketer import event_type_push, event_types_pull
from tracking.vendors.http import TokenError
from tracking.vendors.webmarketer import AnswerError


class Command(BaseCommand):
    help = (
        "Event types: list, show REFERENCE (as `hub export` writes it), push REFERENCE to Webmarketer, pull "
        "Webmarketer's types. Create and change them with `hub apply` or in the console's editor."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="List event types with their Webmarketer sync state")
        show = sub.add_parser("show", help="One event type as YAML (the configuration file's shape)")
        show.add_argument("reference")
        push = sub.add_parser("push", help="Create the event type in Webmarketer (its API never updates one)")
        push.add_argument("reference")
        push.add_argument("--connection", help="The Webmarketer connection (needed when there are several).")
        pull = sub.add_parser("pull", help="Mirror Webmarketer's event types here (overwrites nothing changed here)")
        pull.add_argument("--connection", help="The Webmarketer connection (needed when there are several).")

    def handle(self, *args, action: str, **options):
        getattr(self, f"do_{action}")(**options)

    def event_type(self, reference: str) -> EventType:
        found = EventType.objects.filter(reference=reference).first()
        if found is None:
            raise CommandError(f"no event type {reference!r}")
        return found

    def webmarketer(self, name: str | None) -> VendorConnection:
        connections = VendorConnection.objects.filter(kind=VendorKind.WEBMARKETER)
        if name:
            found = connections.filter(name=name).first()
            if found is None:
                raise CommandError(f"no Webmarketer connection named {name!r}")
            return found
        found = list(connections[:2])
        if len(found) != 1:
            names = ", ".join(connections.values_list("name", flat=True)) or "none"
            raise CommandError(f"name the Webmarketer connection with --connection (connections: {names})")
        return found[0]

    def do_list(self, **options):
        for event_type in EventType.objects.order_by("reference"):
            archived = "archived" if event_type.archived_at else "active"
            sync = event_type_sync_state(event_type)
            self.stdout.write(
                f"{event_type.reference}\t{event_type.name}\t{len(event_type.fields)} fields\t{archived}\t{sync}"
            )

    def do_show(self, *, reference, **options):
        item = {k: stable(v) for k, v in EVENT_TYPES.read(self.event_type(reference)).items()}
        self.stdout.write(yaml.safe_dump([item], sort_keys=False, allow_unicode=True, width=110), ending="")

    def do_push(self, *, reference, connection, **options):
        event_type, target = self.event_type(reference), self.webmarketer(connection)
        try:
            event_type_push(event_type=event_type, connection=target)
        except (AnswerError, TokenError, ValueError) as exc:
            raise CommandError(f"Webmarketer refused {reference}: {exc}") from None
        self.stdout.write(f"{reference} pushed to {target.name}: Webmarketer _id {event_type.wm_id}.")

    def do_pull(self, *, connection, **options):
        target = self.webmarketer(connection)
        try:
            summary = event_types_pull(connection=target)
        except (AnswerError, TokenError, ValueError) as exc:
            raise CommandError(f"could not pull from {target.name}: {exc}") from None
        for name, value in summary.as_dict().items():
            shown = ", ".join(value) if isinstance(value, list) else str(value)
            self.stdout.write(f"{name}: {shown or '-'}")
