from __future__ import annotations

import random

import httpx
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from tracking.demo import EVENT_TYPES, PEOPLE
from tracking.models import EventType, Route, Source, VendorConnection
from tracking.roles import roles_sync
from tracking.services.connections import connection_test
from tracking.services.ingest import events_ingest, source_create, source_rotate_token

# Demo user per role (tracking/roles.py): Sales work in the console only, the others may open the admin too.
DEMO_USERS = {"Marketing": ("marketing", True), "Sales": ("sales", False), "Auditor": ("auditor", True)}
DEMO_SOURCE = "demo-website"
WEBMARKETER = "webmarketer-sandbox"


class Command(BaseCommand):
    help = "Seed the demo: users per role, event types, a Webmarketer connection to the sandbox, some traffic."

    def add_arguments(self, parser):
        parser.add_argument("--sandbox-url", default=settings.SANDBOX_URL)
        parser.add_argument("--events", type=int, default=12, help="Demo events to post on first seed.")

    def handle(self, *args, sandbox_url: str, events: int, **options):
        sandbox_url = sandbox_url.rstrip("/")
        logins = self.users()
        self.event_types()
        connection = self.webmarketer(sandbox_url)
        for event_type in EventType.objects.filter(reference__in=[e["reference"] for e in EVENT_TYPES]):
            Route.objects.get_or_create(event_type=event_type, connection=connection)
        source = Source.objects.filter(name=DEMO_SOURCE).first()
        if source is None:
            source, token = source_create(name=DEMO_SOURCE)
            self.traffic(source, events)
        else:
            token = source_rotate_token(source=source)
        self.stdout.write("Demo logins (user / password):")
        for username, password in logins:
            self.stdout.write(f"  {username} / {password}")
        self.stdout.write(f"Demo source token ({DEMO_SOURCE}):\n  {token}")
        self.stdout.write(f"TOKEN={token}")

    @transaction.atomic
    def users(self) -> list[tuple[str, str]]:
        logins = []
        admin, _ = User.objects.get_or_create(username="admin", defaults={"email": "admin@example.com"})
        admin.is_staff = admin.is_superuser = True
        admin.set_password("admin-demo")
        admin.save()
        logins.append(("admin", "admin-demo"))
        roles_sync()
        for group_name, (username, staff) in DEMO_USERS.items():
            group = Group.objects.get(name=group_name)
            user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
            user.is_staff = staff
            user.set_password(f"{username}-demo")
            user.save()
            user.groups.set([group])
            logins.append((username, f"{username}-demo"))
        return logins

    def event_types(self) -> None:
        for spec in EVENT_TYPES:
            EventType.objects.update_or_create(
                reference=spec["reference"], defaults={k: v for k, v in spec.items() if k != "reference"}
            )

    def webmarketer(self, sandbox_url: str) -> VendorConnection:
        connection, created = VendorConnection.objects.get_or_create(
            name=WEBMARKETER,
            defaults={
                "kind": "webmarketer",
                "base_url": f"{sandbox_url}/webmarketer/api/v1/",
                "auth_url": f"{sandbox_url}/webmarketer/oidc/token",
                "settings": {"project_id": "demo-project"},
            },
        )
        if created or not connection_test(connection=connection).ok:
            # Like downloading a service-account JSON from the vendor's console.
            try:
                response = httpx.post(f"{sandbox_url}/__sandbox__/webmarketer/service-accounts", timeout=10)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                raise CommandError(f"the vendor sandbox at {sandbox_url} is not answering: {exc}") from None
            connection.secrets = {"service_account": response.json()}
            connection.save()
        return connection

    def traffic(self, source: Source, count: int) -> None:
        rng = random.Random(7)
        items = []
        for i in range(count):
            first, last = rng.choice(PEOPLE)
            email = f"{first}.{last}@example.com".lower()
            if i % 3 == 0:
                items.append(
                    {
                        "eventType": "purchase",
                        "data": {
                            "email": email,
                            "first_name": first,
                            "last_name": last,
                            "amount": rng.randint(20, 400),
                            "currency": "EUR",
                        },
                    }
                )
            else:
                items.append(
                    {
                        "eventType": "contact-form",
                        "data": {
                            "email": email,
                            "first_name": first,
                            "last_name": last,
                            "message": "Please call me about the offer.",
                        },
                    }
                )
        items.append({"eventType": "contact-form", "data": {"email": "not-an-email", "message": "hi"}})
        events_ingest(source=source, items=items)
