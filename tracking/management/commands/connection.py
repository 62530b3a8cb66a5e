from __future__ import annotations

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tracking.models import VendorConnection, VendorKind
from tracking.services.connections import connection_create, connection_test


def _pairs(values: list[str], what: str) -> dict:
    """k=v pairs; a value may be @file (read from it) and is parsed as JSON when it is JSON."""
    result = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--{what} takes key=value, got {item!r}")
        if value.startswith("@"):
            try:
                value = Path(value[1:]).read_text()
            except OSError as exc:
                raise CommandError(f"--{what} {key}: cannot read {value[1:]}: {exc.strerror}") from None
        try:
            parsed = json.loads(value)
            value = parsed if isinstance(parsed, dict | list) else value
        except ValueError:
            pass
        result[key] = value
    return result


class Command(BaseCommand):
    help = "Manage vendor connections: add, list, test."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="Add a connection")
        add.add_argument("kind", choices=VendorKind.values)
        add.add_argument("name")
        add.add_argument("--base-url", required=True)
        add.add_argument("--auth-url", default="")
        add.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE")
        add.add_argument("--secret", action="append", default=[], metavar="KEY=VALUE|@FILE")
        sub.add_parser("list", help="List connections")
        test = sub.add_parser("test", help="Check settings and run the auth flow")
        test.add_argument("name")

    def handle(self, *args, action: str, **options):
        getattr(self, f"do_{action}")(**options)

    def do_add(self, *, kind, name, base_url, auth_url, setting, secret, **options):
        try:
            connection = connection_create(
                kind=kind,
                name=name,
                base_url=base_url,
                auth_url=auth_url,
                settings=_pairs(setting, "setting"),
                secrets=_pairs(secret, "secret"),
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        self.stdout.write(
            f"Connection {connection.name} ({connection.kind}) added; secrets: "
            f"{', '.join(sorted(connection.secrets)) or 'none'} (stored encrypted)."
        )

    def do_list(self, **options):
        for c in VendorConnection.objects.all():
            state = "enabled" if c.enabled else "disabled"
            self.stdout.write(
                f"{c.name}\t{c.kind}\t{state}\t{c.base_url}\tsecrets: {', '.join(sorted(c.secrets)) or '-'}"
            )

    def do_test(self, *, name, **options):
        connection = VendorConnection.objects.filter(name=name).first()
        if connection is None:
            raise CommandError(f"no connection named {name!r}")
        report = connection_test(connection=connection)
        if not report.ok:
            raise CommandError(report.message)
        self.stdout.write(report.message)
