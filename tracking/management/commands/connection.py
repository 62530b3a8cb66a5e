from __future__ import annotations

import argparse

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tracking.config.cli import pairs, refusal_text, secret_pairs
from tracking.config.saves import Refused, connection_save
from tracking.connection_forms import SPECS, ConnectionForm
from tracking.models import VendorConnection
from tracking.services.connections import connection_delete, connection_test, connection_update


def vendor_reference() -> str:
    """Every vendor kind's URLs, settings and secrets with their help, from the console's connection form."""
    lines = ["Settings (--setting KEY=VALUE) and secrets (--secret KEY=VALUE or KEY=@FILE) per kind:"]
    for kind, spec in SPECS.items():
        lines.append(f"\n{kind}:")
        base = "optional" if not spec.base_url_required else "required"
        default = f", default {spec.base_url_default}" if spec.base_url_default else ""
        lines.append(f"  --base-url ({base}{default}): {spec.base_url_label}. {spec.base_url_help}")
        if spec.auth_url_label:
            auth = "required" if spec.auth_url_required else "optional"
            default = f", default {spec.auth_url_default}" if spec.auth_url_default else ""
            lines.append(f"  --auth-url ({auth}{default}): {spec.auth_url_label}. {spec.auth_url_help}")
        for field in spec.settings:
            extra = " (required)" if field.required else ""
            choices = f" One of: {', '.join(c for c, _ in field.choices)}." if field.choices else ""
            lines.append(f"  setting {field.key}{extra}: {field.help}{choices}")
        for field in spec.secrets:
            extra = " (required)" if field.required else ""
            shape = " A JSON document: give it as @FILE." if field.json else ""
            lines.append(f"  secret {field.key}{extra}: {field.help}{shape}")
    lines.append(
        "\nA secret goes only through --secret (stored encrypted); a secret's name given to --setting is refused. "
        "Only --secret reads @FILE (the file's text); a --setting value is taken as written."
    )
    return "\n".join(lines)


OPTIONS = {  # option → (value name, type)
    "timeout_seconds": ("--timeout-seconds", float),
    "max_rate": ("--max-rate", float),
    "batch_size": ("--batch-size", int),
    "retry_base_seconds": ("--retry-base-seconds", float),
    "retry_max_seconds": ("--retry-max-seconds", float),
    "give_up_after_seconds": ("--give-up-after-seconds", int),
}


class Command(BaseCommand):
    help = "Vendor connections: add, update, disable, enable, delete, list, test (the console's checks)."

    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        kwargs.setdefault("epilog", vendor_reference())
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        fmt = {"formatter_class": argparse.RawDescriptionHelpFormatter, "epilog": vendor_reference()}
        add = sub.add_parser("add", help="Add a connection (checked as the console's form checks it)", **fmt)
        add.add_argument("kind", choices=list(SPECS))
        add.add_argument("name")
        self.value_arguments(add)
        add.add_argument("--disabled", action="store_true", help="Create it disabled (it receives nothing).")
        update = sub.add_parser(
            "update", help="Change a connection: only what is given changes; secrets not given are kept", **fmt
        )
        update.add_argument("name")
        update.add_argument("--name", dest="new_name", help="Rename it.")
        self.value_arguments(update)
        update.add_argument("--unset-setting", action="append", default=[], metavar="KEY", help="Remove a setting.")
        for action, help_text in (
            ("disable", "Disable a connection: new events are not routed to it"),
            ("enable", "Enable a connection again"),
            ("delete", "Delete a connection nothing was sent to (refused while deliveries reference it)"),
            ("test", "Check settings and run the auth flow"),
        ):
            sub.add_parser(action, help=help_text).add_argument("name")
        sub.add_parser("list", help="List connections")

    def value_arguments(self, parser) -> None:
        parser.add_argument("--base-url", help="API base (see below; Acquia derives it from region and environment).")
        parser.add_argument("--auth-url", help="Token endpoint, for the vendors that have one.")
        parser.add_argument("--setting", action="append", default=[], metavar="KEY=VALUE", help="A vendor setting.")
        parser.add_argument(
            "--secret", action="append", default=[], metavar="KEY=VALUE|KEY=@FILE", help="A secret (stored encrypted)."
        )
        for name, (flag, kind) in OPTIONS.items():
            field = ConnectionForm.base_fields[name]  # the console form's label and help
            label = str(field.label or name.replace("_", " ").capitalize())
            parser.add_argument(flag, dest=name, type=kind, help=f"{label}. {field.help_text}".strip())

    def handle(self, *args, action: str, **options):
        getattr(self, f"do_{action}")(**options)

    def connection(self, name: str) -> VendorConnection:
        connection = VendorConnection.objects.filter(name=name).first()
        if connection is None:
            raise CommandError(f"no connection named {name!r}")
        return connection

    def values(self, options: dict) -> dict:
        values = {n: options[n] for n in OPTIONS if options.get(n) is not None}
        for name in ("base_url", "auth_url"):
            if options.get(name) is not None:
                values[name] = options[name]
        return values

    def save(self, **kwargs) -> VendorConnection:
        flags = {"name": "name", **{n: flag for n, (flag, _) in OPTIONS.items()}}
        flags |= {"base_url": "--base-url", "auth_url": "--auth-url", "kind": "kind"}
        try:
            return connection_save(**kwargs)
        except Refused as exc:
            raise CommandError(f"refused, nothing saved:\n{refusal_text(exc, flags)}") from None

    def do_add(self, *, kind, name, setting, secret, disabled, **options):
        values = {
            "name": name,
            "enabled": not disabled,
            "settings": pairs(setting, "--setting"),
            **self.values(options),
        }
        connection = self.save(kind=kind, values=values, secrets=secret_pairs(secret))
        self.stdout.write(
            f"Connection {connection.name} ({connection.kind}) added; secrets: "
            f"{', '.join(sorted(connection.secrets)) or 'none'} (stored encrypted)."
        )

    def do_update(self, *, name, new_name, setting, unset_setting, secret, **options):
        connection = self.connection(name)
        values = self.values(options)
        if new_name:
            values["name"] = new_name
        given = pairs(setting, "--setting")
        if given or unset_setting:
            missing = [k for k in unset_setting if k not in connection.settings]
            if missing:
                raise CommandError(f"--unset-setting: {connection.name} has no setting {', '.join(missing)}")
            settings = {k: v for k, v in connection.settings.items() if k not in unset_setting}
            values["settings"] = {**settings, **given}
        saved = self.save(kind=connection.kind, values=values, secrets=secret_pairs(secret), connection=connection)
        self.stdout.write(
            f"Connection {saved.name} updated; secrets set: {', '.join(sorted(saved.secrets)) or 'none'}."
        )

    def enabled_set(self, name: str, enabled: bool) -> None:
        connection = self.connection(name)
        if connection.enabled == enabled:
            self.stdout.write(f"Connection {connection.name} is already {'enabled' if enabled else 'disabled'}.")
            return
        connection_update(connection=connection, enabled=enabled)
        self.stdout.write(f"Connection {connection.name} {'enabled' if enabled else 'disabled'}.")

    def do_disable(self, *, name, **options):
        self.enabled_set(name, False)

    def do_enable(self, *, name, **options):
        self.enabled_set(name, True)

    def do_delete(self, *, name, **options):
        connection = self.connection(name)
        try:
            connection_delete(connection=connection)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"Connection {name} deleted.")

    def do_list(self, **options):
        for c in VendorConnection.objects.all():
            state = "enabled" if c.enabled else "disabled"
            self.stdout.write(
                f"{c.name}\t{c.kind}\t{state}\t{c.base_url}\tsecrets: {', '.join(sorted(c.secrets)) or '-'}"
            )

    def do_test(self, *, name, **options):
        report = connection_test(connection=self.connection(name))
        if not report.ok:
            raise CommandError(report.message)
        self.stdout.write(report.message)
