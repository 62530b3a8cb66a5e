"""manage.py erase --email … | --tracker-id …: erase what the hub holds about one person."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from tracking.services.privacy import ErasurePlan, Person, PersonError, erasure_plan, person_erase


class Command(BaseCommand):
    help = (
        "Erase one person's data: the data of every event about them (by email, found anywhere in the data, or by "
        "trackerId), the bodies of what was sent of them, their leads' data, offline interactions and trashed "
        "events naming them. Rows, counts and statuses stay; one audit entry records the counts, never the "
        "identifier. Lists the vendors that received the data (none of their documents has a deletion API: ask them)."
    )

    def add_arguments(self, parser):
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--email", help="The person's email address (any case).")
        who.add_argument("--tracker-id", dest="tracker_id", help="The person's trackerId.")
        parser.add_argument("--dry-run", action="store_true", help="Show what would be erased; change nothing.")

    def handle(self, *args, email: str | None, tracker_id: str | None, dry_run: bool, **options):
        try:
            person = Person.of(email=email, tracker_id=tracker_id)
        except PersonError as exc:
            raise CommandError(str(exc)) from None
        plan = erasure_plan(person=person)
        self._show(plan, "would be erased" if dry_run else "to erase")
        if plan.empty:
            self.stdout.write("Nothing about this person is stored: nothing erased.")
            return
        if dry_run:
            return
        person_erase(person=person, via="manage.py erase")
        self.stdout.write(self.style.SUCCESS("Erased. The audit trail records the counts (not the identifier)."))

    def _show(self, plan: ErasurePlan, what: str) -> None:
        counts = plan.as_dict()
        self.stdout.write(
            f"By {counts['by']}, {what}: {counts['events']} events ({counts['leads']} leads, {counts['lead_changes']} "
            f"lead changes kept without personal data), {counts['attempts']} attempt bodies, "
            f"{counts['offline_interactions']} offline interactions, {counts['trashed_events']} trashed events."
        )
        if plan.vendors:
            self.stdout.write("Vendors that received this person's data:")
            for line in plan.vendor_lines():
                self.stdout.write(f"  - {line}")
        else:
            self.stdout.write("No vendor received this person's data.")
