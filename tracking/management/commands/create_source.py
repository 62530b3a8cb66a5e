from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from tracking.consent import ConsentError
from tracking.models import Source
from tracking.services.sources import source_add, source_rotate


class Command(BaseCommand):
    help = (
        "Create an ingest source and print its token (shown once; only a hash is kept). With --rotate, give an "
        "existing source a new token: the old one stops working at once. (`source create|rotate` does the same.)"
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--rotate", action="store_true", help="Replace the token of an existing source.")
        parser.add_argument(
            "--consent",
            default="",
            help=(
                "Purposes its events grant when they carry no consent of their own, comma-separated (analytics, "
                "advertising, personalisation); none given: deny-all (their deliveries needing a purpose are "
                "suppressed)."
            ),
        )

    def handle(self, *args, name: str, rotate: bool, consent: str = "", **options):
        source = Source.objects.filter(name=name).first()
        if rotate:
            if source is None:
                raise CommandError(f"no source named {name!r}")
            token = source_rotate(source=source)
            self.stdout.write(f"Source {source.name}: new token (shown once; the old one no longer works):\n{token}")
            return
        if source is not None:
            raise CommandError(f"a source named {name!r} exists already (--rotate gives it a new token)")
        try:
            source, token = source_add(name=name, default_consent=[p for p in consent.split(",") if p.strip()])
        except ConsentError as exc:
            raise CommandError(str(exc)) from None
        applies = ", ".join(source.default_consent) or "none (deny-all)"
        self.stdout.write(f"Source {source.name} created; events without consent grant: {applies}.")
        self.stdout.write(f"Its token (shown once, keep it safe):\n{token}")
