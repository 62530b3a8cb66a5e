from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tracking.models import Source
from tracking.services.sources import source_add, source_rotate, source_update


class Command(BaseCommand):
    help = (
        "Ingest sources: list, create NAME (prints its token once; only a hash is kept), rotate NAME (a new token, "
        "the old one stops at once), disable NAME / enable NAME. Audited."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="List sources (names, state, the first characters of their tokens)")
        for action, help_text in (
            ("create", "Create a source and print its token (shown once)"),
            ("rotate", "Give a source a new token (shown once); the old one stops working at once"),
            ("disable", "Disable a source: its token is refused from now on"),
            ("enable", "Enable a source again"),
        ):
            sub.add_parser(action, help=help_text).add_argument("name")

    def handle(self, *args, action: str, **options):
        getattr(self, f"do_{action}")(**options)

    def source(self, name: str) -> Source:
        source = Source.objects.filter(name=name).first()
        if source is None:
            raise CommandError(f"no source named {name!r}")
        return source

    def do_list(self, **options):
        for source in Source.objects.order_by("name"):
            state = "enabled" if source.enabled else "disabled"
            used = source.last_used_at.isoformat() if source.last_used_at else "never"
            self.stdout.write(f"{source.name}\t{state}\ttoken {source.token_prefix}…\tlast used {used}")

    def do_create(self, *, name, **options):
        if Source.objects.filter(name=name).exists():
            raise CommandError(f"a source named {name!r} exists already (`source rotate {name}` gives it a new token)")
        try:
            source, token = source_add(name=name)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"Source {source.name} created. Its token (shown once, keep it safe):\n{token}")

    def do_rotate(self, *, name, **options):
        source = self.source(name)
        token = source_rotate(source=source)
        self.stdout.write(f"Source {source.name}: new token (shown once; the old one no longer works):\n{token}")

    def enabled_set(self, name: str, enabled: bool) -> None:
        source = self.source(name)
        word = "enabled" if enabled else "disabled"
        if source.enabled == enabled:
            self.stdout.write(f"Source {source.name} is already {word}.")
            return
        source_update(source=source, enabled=enabled)
        self.stdout.write(f"Source {source.name} {word}.")

    def do_disable(self, *, name, **options):
        self.enabled_set(name, False)

    def do_enable(self, *, name, **options):
        self.enabled_set(name, True)
