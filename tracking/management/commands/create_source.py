from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from tracking.models import Source
from tracking.services.ingest import source_create


class Command(BaseCommand):
    help = "Create an ingest source and print its token (shown once; only a hash is kept)."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, name: str, **options):
        if Source.objects.filter(name=name).exists():
            raise CommandError(f"a source named {name!r} exists already")
        source, token = source_create(name=name)
        self.stdout.write(f"Source {source.name} created. Its token (shown once, keep it safe):\n{token}")
