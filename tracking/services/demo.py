"""The demo's first-run story (`make run`): traffic delivered to the sandbox, and what staff find afterwards.

Webmarketer's contact-form is changed by hand in its console (phone becomes required) while the hub still
sends forms without a phone: those land in Webmarketer's trash, pulled into the inbox with a fixable error, and
the next event-type pull brings the change here, so both sides are in sync again. One purchase fails at
Tracardi with a readable reason. Two leads move on: one qualified, one converted with its turnover."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from ..demo import PEOPLE, purchase_data
from ..models import Delivery, Event, Source, VendorConnection
from .delivery import connection_dispatch
from .ingest import events_ingest
from .leads import lead_change_record, lead_changes_dispatch
from .webmarketer import event_types_pull, trash_pull

# Contact forms posted without a phone once Webmarketer requires one: the trash's demo items.
TRASHED = 3
# Runs of dispatch per connection at most (each claims a batch): the demo's traffic fits in a few.
MAX_RUNS = 50
FAILING_VENDOR = "tracardi"
# The demo's purchase without advertising consent: its page shows the suppressed deliveries and why.
NO_ADS_NONCE = "demo-no-advertising"
NO_ADS_CONSENT = ["analytics", "personalisation"]
FAILURE = "source 'shop' is disabled in Tracardi: enable it or route purchase elsewhere"


class DemoError(Exception):
    pass


@dataclass
class DemoSummary:
    events: int
    trashed: int
    failed: int
    leads: int


def _deliver(connections: list[VendorConnection]) -> None:
    """Send what is due now, in this process (the worker is not started yet when the demo is seeded)."""
    for connection in connections:
        for _ in range(MAX_RUNS):
            if not connection_dispatch(connection_id=connection.pk):
                break


def _sandbox(client: httpx.Client, method: str, path: str, body: dict) -> None:
    try:
        client.request(method, path, json=body).raise_for_status()
    except httpx.HTTPError as exc:
        raise DemoError(f"the vendor sandbox refused {method} {path}: {exc}") from None


def _contact_forms(rng: random.Random, count: int) -> list[dict]:
    items = []
    for i in range(count):
        first, last = PEOPLE[i % len(PEOPLE)]
        data = {
            "email": f"{first}.{last}@example.com".lower(),
            "first_name": first,
            "last_name": last,
            "message": rng.choice(["Please call me about the offer.", "Do you ship to Belgium?", "Quote, please."]),
        }
        if i >= TRASHED:  # the first few come from an old form without a phone field
            data["phone"] = f"06 12 34 5{i % 10} {10 + i}"
        items.append({"eventType": "contact-form", "data": data, "trackerId": f"trk-{i:03d}"})
    return items


def demo_story(
    *, source: Source, connection: VendorConnection, sandbox_url: str, count: int, out: Callable[[str], None]
) -> DemoSummary:
    """Post the demo's traffic, deliver it, and leave the trash, a failure and leads to look at."""
    rng = random.Random(7)
    project = connection.settings.get("project_id", "")
    others = list(VendorConnection.objects.filter(enabled=True).exclude(pk=connection.pk).order_by("name"))
    with httpx.Client(base_url=sandbox_url, timeout=10) as sandbox:
        # In Webmarketer's console, someone makes the contact form's phone required...
        _sandbox(
            sandbox,
            "PATCH",
            f"/__sandbox__/webmarketer/projects/{project}/event-types/contact-form",
            {"fieldChanges": {"phone": {"optional": False}}},
        )
        # ...while the website keeps posting forms, a few of them without a phone.
        forms = max(TRASHED + 2, count - count // 3)
        items = _contact_forms(rng, forms)
        for n in range(max(1, count // 3)):
            first, last = PEOPLE[(n + 2) % len(PEOPLE)]
            quantities = (rng.randint(0, 2), rng.randint(0, 1), rng.randint(1, 3))
            items.append({"eventType": "purchase", "data": purchase_data(first, last, n, quantities)})
        items.append(
            {"eventType": "call-me-back", "data": {"phone": "+32 470 12 34 56", "first_name": "Sun"}, "trackerId": "t"}
        )
        # A shopper who refused advertising cookies: Webmarketer and Tracify (attribution) are suppressed, never sent.
        no_ads = purchase_data("Sun", "Kwon", 50, (1, 0, 0))
        items.append({"eventType": "purchase", "data": no_ads, "nonce": NO_ADS_NONCE, "consent": NO_ADS_CONSENT})
        # And one the hub keeps as invalid itself (never sent): the event log shows why.
        items.append({"eventType": "contact-form", "data": {"email": "not-an-email", "message": "hi"}})
        results = events_ingest(source=source, items=items)
        _deliver([connection, *others])

        # A late order while Tracardi refuses everything from this source: failed at once (a 400 is permanent).
        failing = [c for c in others if c.kind == FAILING_VENDOR]
        _sandbox(
            sandbox,
            "PATCH",
            "/__sandbox__/faults",
            {"fail_status": 400, "fail_message": FAILURE, "vendors": [FAILING_VENDOR]},
        )
        try:
            late = purchase_data("Hugo", "Reyes", 99, (1, 1, 1))
            events_ingest(source=source, items=[{"eventType": "purchase", "data": late, "nonce": "demo-late-order"}])
            _deliver(failing)
        finally:
            _sandbox(sandbox, "PATCH", "/__sandbox__/faults", {"fail_status": None, "vendors": []})
        _deliver([connection, *[c for c in others if c not in failing]])

    # The trash holds the phone-less forms; the pull brings Webmarketer's change here: in sync again.
    pulled = trash_pull(connection=connection)
    event_types_pull(connection=connection)

    # Sales moved two leads on: one qualified, one converted with its turnover.
    leads = [
        r.event for r in results if r.accepted and r.event.event_type_ref == "contact-form" and "phone" in r.event.data
    ][:2]
    for event in leads:
        lead_change_record(event=event, kind="state", storage_key="qualified", value=1)
    if len(leads) == 2:
        lead_change_record(event=leads[1], kind="state", storage_key="converted", value=1)
        lead_change_record(event=leads[1], kind="statistic", storage_key="turnover", value="1200.00")
    for _ in range(MAX_RUNS):
        if not lead_changes_dispatch(connection_id=connection.pk):
            break

    failed = Delivery.objects.filter(status=Delivery.Status.FAILED, event__source=source).count()
    suppressed = Delivery.objects.filter(status=Delivery.Status.SUPPRESSED, event__source=source).count()
    summary = DemoSummary(
        events=Event.objects.filter(source=source).count(), trashed=pulled.stored, failed=failed, leads=len(leads)
    )
    out(
        f"Demo traffic: {summary.events} events posted and sent to the sandbox; {summary.trashed} in the trash inbox "
        f"(Webmarketer now requires a phone on contact-form: fix and replay), {summary.failed} failed delivery "
        f"({FAILING_VENDOR}), {summary.leads} leads moved on (qualified; converted with turnover), {suppressed} "
        f"deliveries suppressed (a purchase without advertising consent: nonce {NO_ADS_NONCE})."
    )
    return summary
