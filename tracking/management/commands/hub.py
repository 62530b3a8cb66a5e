from __future__ import annotations

import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tracking.config.hubfile import HubFileRefused, hub_apply, hub_export, hub_file_read, plan_render
from tracking.config.schema import SECTIONS


class Command(BaseCommand):
    help = (
        "The hub's configuration as one YAML file. `hub export > hub.yaml` writes event types, connections (the "
        "names of their secrets, never values), sources (never tokens), routes and role groups in a stable order. "
        "`hub apply hub.yaml` shows the plan (create / change / archive, field by field), then applies it in one "
        "transaction through the console's checks, audited; `--dry-run` stops after the plan. Sections: "
        + "; ".join(f"{s.name}: {s.help}" for s in SECTIONS)
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        export = sub.add_parser("export", help="Write the configuration as YAML (stdout, or --output FILE).")
        export.add_argument("--output", "-o", help="Write to this file instead of stdout.")
        apply = sub.add_parser(
            "apply",
            help="Plan, then apply a configuration file (secrets from secret_from: env:NAME | file:PATH).",
            description=(
                "Shows the plan, then applies it in one transaction; any refusal (with the file's line) applies "
                "nothing. Items left out of a section are archived; sections left out are left alone. Applying the "
                "same file twice changes nothing. A secret whose variable or file is not available keeps the "
                "stored value (a new connection then lacks it, and is refused if the vendor requires it)."
            ),
        )
        apply.add_argument("file", help="The YAML file (- for stdin); file: secret paths are relative to it.")
        apply.add_argument("--dry-run", action="store_true", help="Show the plan and check everything; apply nothing.")
        apply.add_argument(
            "--create-only",
            action="store_true",
            help="Create what the hub lacks; leave existing records as they are and archive nothing.",
        )
        apply.add_argument("--user", help="Record the changes in the audit trail as this user.")

    def handle(self, *args, action: str, **options):
        getattr(self, f"do_{action}")(**options)

    def do_export(self, *, output, **options):
        text = hub_export()
        if output:
            Path(output).write_text(text)
            self.stderr.write(f"Configuration written to {output}.")
        else:
            self.stdout.write(text, ending="")

    def do_apply(self, *, file, dry_run, create_only, user, **options):
        if file == "-":
            text, base_dir, name = sys.stdin.read(), Path.cwd(), "<stdin>"
        else:
            path = Path(file)
            try:
                text = path.read_text()
            except OSError as exc:
                raise CommandError(f"cannot read {file}: {exc.strerror}") from None
            base_dir, name = path.resolve().parent, file
        actor = None
        if user:
            actor = get_user_model().objects.filter(username=user).first()
            if actor is None:
                raise CommandError(f"no user named {user!r}")
        try:
            outcome = hub_apply(
                hub_file_read(text, base_dir=base_dir), dry_run=dry_run, create_only=create_only, user=actor, name=name
            )
        except HubFileRefused as exc:
            raise CommandError(f"{name} refused, nothing was applied:\n{exc.render(name)}") from None
        self.stdout.write(plan_render(outcome))
        if dry_run:
            self.stdout.write("Dry run: nothing was applied.")
            return
        if outcome.changes:
            self.stdout.write(self.style.SUCCESS("Applied."))
        for source, token in sorted(outcome.tokens.items()):
            self.stdout.write(f"Source {source}: its token (shown once, keep it safe):\n  {token}")
