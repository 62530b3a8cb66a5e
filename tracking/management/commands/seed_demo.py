from __future__ import annotations

import httpx
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from tracking.consent import PURPOSES, default_route_purposes
from tracking.demo import EVENT_TYPES, PURCHASE_ROUTES, sandbox_egress_allow
from tracking.models import EventType, Route, Source, VendorConnection
from tracking.roles import roles_sync
from tracking.sandbox.accounts import sandbox_connection_values
from tracking.services.connections import connection_create, connection_test, connection_update
from tracking.services.demo import DemoError, demo_story
from tracking.services.ingest import source_create
from tracking.services.routes import route_create
from tracking.services.webmarketer import event_type_push, event_types_pull
from tracking.vendors import egress
from tracking.vendors.webmarketer import AnswerError

# Demo user per role (tracking/roles.py): Sales work in the console only, the others may open the admin too.
DEMO_USERS = {"Marketing": ("marketing", True), "Sales": ("sales", False), "Auditor": ("auditor", True)}
DEMO_SOURCE = "demo-website"
WEBMARKETER = "webmarketer-sandbox"
# The event type the demo routes to every vendor: one posted purchase, five deliveries.
ROUTED_TO_ALL = "purchase"


class Command(BaseCommand):
    help = (
        "Seed the demo: users per role, event types pushed to the sandbox's Webmarketer and in sync, a connection "
        "to each of the five vendors in the sandbox, purchase routed to all five, and on the first run some "
        "delivered traffic: a few events in the trash waiting for a fix, a failed delivery, leads qualified and "
        "converted. Running it again changes nothing (the source token printed first stays valid)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--sandbox-url", default=settings.SANDBOX_URL)
        parser.add_argument("--events", type=int, default=12, help="Demo events to post on first seed.")

    def handle(self, *args, sandbox_url: str, events: int, **options):
        sandbox_url = sandbox_url.rstrip("/")
        if refusal := egress.url_refusal(f"{sandbox_url}/"):
            allow = ",".join(sandbox_egress_allow(sandbox_url, settings.HUB_EGRESS_ALLOW))
            raise CommandError(
                f"the hub may not send to the sandbox: {refusal}\nRun the demo with `make run`, or set "
                f"HUB_EGRESS_ALLOW={allow} for this command, the web server and the Celery worker."
            )
        logins = self.users()
        self.event_types()
        connection = self.webmarketer(sandbox_url)
        self.event_types_sync(connection)
        for event_type in EventType.objects.filter(reference__in=[e["reference"] for e in EVENT_TYPES]):
            Route.objects.get_or_create(
                event_type=event_type,
                connection=connection,
                defaults={"purposes": default_route_purposes(connection.kind)},
            )
        purchase = EventType.objects.get(reference=ROUTED_TO_ALL)
        for kind, (vendor_event_name, mapping, route_options) in PURCHASE_ROUTES.items():
            other = self.sandbox_connection(sandbox_url, kind)
            # Only when absent: staff may have edited the demo's routes since.
            if not Route.objects.filter(event_type=purchase, connection=other).exists():
                route_create(
                    event_type=purchase,
                    connection=other,
                    vendor_event_name=vendor_event_name,
                    mapping=mapping,
                    options=route_options,
                )
        source = Source.objects.filter(name=DEMO_SOURCE).first()
        token = None
        if source is None:
            # The demo website's events without consent keep the behaviour of sources made before consent existed.
            source, token = source_create(name=DEMO_SOURCE, default_consent=list(PURPOSES))
            try:
                if events:  # --events 0: connections, types and routes only (the integration tests' setup)
                    demo_story(
                        source=source,
                        connection=connection,
                        sandbox_url=sandbox_url,
                        count=events,
                        out=self.stdout.write,
                    )
            except DemoError as exc:
                raise CommandError(str(exc)) from None
        routed = Route.objects.filter(event_type=purchase, enabled=True).values_list("connection__name", flat=True)
        self.stdout.write(f"{ROUTED_TO_ALL} is routed to: {', '.join(sorted(routed))}")
        self.stdout.write("Demo logins (user / password):")
        for username, password in logins:
            self.stdout.write(f"  {username} / {password}")
        if token:
            self.stdout.write(f"Demo source token ({DEMO_SOURCE}), shown this once:\n  {token}")
            self.stdout.write(f"TOKEN={token}")
        else:
            # Never rotated here: the token printed on the first run may be in use by a script.
            self.stdout.write(
                f"Demo source {DEMO_SOURCE}: its token starts with {source.token_prefix}… (printed on the first "
                f"run). For a new one: python manage.py create_source --rotate {DEMO_SOURCE}"
            )

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
        # Only when absent: staff may have edited them in the console since.
        for spec in EVENT_TYPES:
            EventType.objects.get_or_create(
                reference=spec["reference"], defaults={k: v for k, v in spec.items() if k != "reference"}
            )

    def event_types_sync(self, connection: VendorConnection) -> None:
        """The demo's types in the sandbox's Webmarketer and in sync: pushed where Webmarketer lacks them (a
        fresh sandbox), then pulled, which adopts the ones both sides hold alike and overwrites nothing."""
        for event_type in EventType.objects.filter(reference__in=[e["reference"] for e in EVENT_TYPES]):
            try:
                event_type_push(event_type=event_type, connection=connection)
            except AnswerError as exc:
                if exc.status != 409:  # 409: Webmarketer has it already; the pull below tells how it compares
                    raise CommandError(f"could not push {event_type.reference} to the sandbox: {exc}") from None
        event_types_pull(connection=connection)

    def webmarketer(self, sandbox_url: str) -> VendorConnection:
        urls = {"base_url": f"{sandbox_url}/webmarketer/api/v1/", "auth_url": f"{sandbox_url}/webmarketer/oidc/token"}
        connection, created = VendorConnection.objects.get_or_create(
            name=WEBMARKETER,
            defaults={"kind": "webmarketer", **urls, "settings": {"project_id": "demo-project"}},
        )
        if moved := {k: v for k, v in urls.items() if getattr(connection, k) != v}:
            # The sandbox runs on another port than when the demo was first seeded: a connection that moves
            # takes its secrets anew (a stored one never follows a URL to another address).
            account = self.service_account(sandbox_url)
            connection = connection_update(connection=connection, secrets={"service_account": account}, **moved)
        elif created or not connection_test(connection=connection).ok:
            connection.secrets = {"service_account": self.service_account(sandbox_url)}
            connection.save()
        return connection

    def service_account(self, sandbox_url: str) -> dict:
        """Like downloading a service-account JSON from the vendor's console."""
        try:
            response = httpx.post(f"{sandbox_url}/__sandbox__/webmarketer/service-accounts", timeout=10)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise CommandError(f"the vendor sandbox at {sandbox_url} is not answering: {exc}") from None
        return response.json()

    def sandbox_connection(self, sandbox_url: str, kind: str) -> VendorConnection:
        """The demo's connection of `kind` to the sandbox, with credentials the sandbox issued (kept as they
        are on later runs: registered again, so a sandbox that lost its state still knows them)."""
        name = f"{kind}-sandbox"
        connection = VendorConnection.objects.filter(name=name).first()
        current = {"settings": connection.settings, "secrets": connection.secrets} if connection else {}
        try:
            values = sandbox_connection_values(sandbox_url, kind, **current)
        except httpx.HTTPError as exc:
            raise CommandError(f"the vendor sandbox at {sandbox_url} is not answering: {exc}") from None
        if connection is None:
            return connection_create(kind=kind, name=name, **values)
        changes = {k: v for k, v in values.items() if k != "secrets" and getattr(connection, k) != v}
        if changes or values["secrets"] != connection.secrets:
            # The sandbox moved (another port) or gave other credentials.
            connection_update(connection=connection, secrets=values["secrets"], **changes)
        return connection
