from __future__ import annotations

from django.core.management.base import BaseCommand

from tracking.services.rollups import rollups_rebuild


class Command(BaseCommand):
    help = (
        "Recompute the dashboard's rollups (hourly counts, latency histogram) from the event log, its deliveries "
        "and the trash. For existing data or after a manual edit; run it while no events are coming in."
    )

    def handle(self, *args, **options):
        result = rollups_rebuild()
        self.stdout.write(f"Rollups rebuilt: {result['counts']} hourly counts, {result['latencies']} latency buckets.")
