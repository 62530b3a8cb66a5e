"""Privacy: a person's consent updated (withdrawal stops what it no longer allows), retention (personal data
of old events redacted in batches), and erasure on request (everything about one person, one audit entry).

A person is named by an email address (found as a value anywhere in an event's data, any case) or a trackerId.
Redaction keeps the rows, their counts and statuses (the dashboard and the audit trail still add up) and drops
what could name the person: the event's data and tracker id, the values its validation errors quote, the
bodies, query strings and error texts of its attempts, and the vendors' error texts on its deliveries."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from ..consent import missing_purposes, purposes_sorted, suppressed_reason
from ..models import (
    Attempt,
    Delivery,
    Event,
    EventType,
    LeadAttempt,
    OfflineInteraction,
    TrashedEvent,
    VendorConnection,
)
from ..selectors import data_contains
from ..vendors import vendor_class
from ..vendors.base import REDACTED
from .audit import audit_record
from .rollups import deliveries_close

# Our own reasons on a delivery (no vendor text in them): kept when a delivery is redacted.
OWN_REASONS = ("suppressed:", "cancelled:", "superseded", "taken back", "worker stopped", "not sent:")
# Events redacted per statement; the retention task's time box per run.
BATCH = 500
RETENTION_RUN_SECONDS = 60.0


class PersonError(ValueError):
    """The request does not name one person (an email or a trackerId)."""


@dataclass(frozen=True)
class Person:
    """Who a consent update or an erasure is about: an email address or a trackerId, never both."""

    email: str = ""
    tracker_id: str = ""

    @classmethod
    def of(cls, *, email: Any = None, tracker_id: Any = None) -> Person:
        email = email.strip() if isinstance(email, str) else email
        tracker_id = tracker_id.strip() if isinstance(tracker_id, str) else tracker_id
        if bool(email) == bool(tracker_id):
            raise PersonError("name the person by exactly one of an email or a trackerId")
        if email and (not isinstance(email, str) or "@" not in email or len(email) > 254):
            raise PersonError("email must be an email address")
        if tracker_id and (not isinstance(tracker_id, str) or len(tracker_id) > 200):
            raise PersonError("trackerId must be a string of at most 200 characters")
        return cls(email=email or "", tracker_id=tracker_id or "")

    @property
    def kind(self) -> str:
        """How the person was named, for audit entries (which never hold the identifier itself)."""
        return "email" if self.email else "trackerId"


def _holds(value: Any, needle: str) -> bool:
    """Whether `needle` (lowercase) is a value anywhere in `value`, any case (not a substring of another one)."""
    if isinstance(value, str):
        return value.strip().lower() == needle
    if isinstance(value, dict):
        return any(_holds(v, needle) for v in value.values())
    if isinstance(value, list):
        return any(_holds(v, needle) for v in value)
    return False


def person_event_ids(person: Person) -> list[int]:
    """Ids of the events about the person: its trackerId, or its email as a value of the data (the text index
    finds the candidates, each is checked so that ann@x.io never matches joann@x.io)."""
    if person.tracker_id:
        return list(Event.objects.filter(tracker_id=person.tracker_id).order_by().values_list("pk", flat=True))
    needle = person.email.lower()
    candidates = (
        Event.objects.filter(data_contains(person.email))
        .order_by()
        .annotate(text=Cast("data", TextField()))
        .values_list("pk", "text")
    )
    ids = []
    for pk, text in candidates.iterator(chunk_size=1000):
        try:
            if _holds(json.loads(text), needle):
                ids.append(pk)
        except (ValueError, RecursionError):
            if needle in text.lower():  # unreadable back: the text says enough
                ids.append(pk)
    return ids


def _text_holds(queryset: QuerySet, columns: Iterable[str], needle: str) -> list[int]:
    """Ids of rows whose JSON columns hold `needle` as a value (text lookup first, then checked)."""
    columns = list(columns)
    match = Q()
    for column in columns:
        match |= Q(**{f"{column}__icontains": needle})
    ids = []
    for row in queryset.filter(match).order_by().values("pk", *columns):
        if any(_holds(row[c], needle.lower()) for c in columns):
            ids.append(row["pk"])
    return ids


# -- consent updates (withdrawal) -------------------------------------------------------------------------------
@dataclass
class ConsentUpdate:
    purposes: list[str]
    events: int = 0
    suppressed: int = 0


@transaction.atomic
def consent_update(*, person: Person, purposes: Iterable[str], user=None, via: str = "console") -> ConsentUpdate:
    """Record the person's consent as it stands now on every event about them, and suppress each pending or
    retrying delivery it no longer allows (never sent; the reason names the purpose). One audit entry, without
    the identifier. Events still to come carry their own consent (or their source's default)."""
    purposes = purposes_sorted(purposes)
    ids = person_event_ids(person)
    result = ConsentUpdate(purposes=purposes, events=len(ids))
    for start in range(0, len(ids), BATCH):
        Event.objects.filter(pk__in=ids[start : start + BATCH]).update(consent=purposes, consent_origin="update")
    due = Delivery.objects.filter(event_id__in=ids, status__in=Delivery.DUE_STATUSES).select_related("route")
    by_reason: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for delivery in due.only("pk", "route__purposes"):
        if missing := missing_purposes(delivery.route.purposes if delivery.route else (), purposes):
            by_reason[tuple(missing)].append(delivery.pk)
    for missing, pks in by_reason.items():
        # Conditional on still being due: a run that claimed one meanwhile checks consent again before sending.
        result.suppressed += deliveries_close(
            Delivery.objects.filter(pk__in=pks, status__in=Delivery.DUE_STATUSES),
            Delivery.Status.SUPPRESSED,
            last_error=suppressed_reason(missing),
        )
    audit_record(
        user=user,
        action="consent.update",
        target=f"a person by {person.kind}",
        details={"via": via, "purposes": purposes, "events": result.events, "suppressed": result.suppressed},
    )
    return result


# -- redaction ----------------------------------------------------------------------------------------------------
def _errors_redacted(errors: Any) -> Any:
    """Validation errors without the values they quote (field and message stay: they say what was wrong)."""
    if not isinstance(errors, list):
        return []
    return [{k: v for k, v in e.items() if k in ("field", "message", "type")} for e in errors if isinstance(e, dict)]


def _url_redacted(url: str) -> str:
    """A URL without its query string (Tracardi GET sends properties there)."""
    base, question, _ = url.partition("?")
    return f"{base}?{REDACTED}" if question else url


def events_redact(event_ids: list[int], *, now: datetime | None = None) -> dict[str, int]:
    """Redact these events and what was sent of them: data, tracker id, quoted values, attempt bodies, query
    strings and vendor error texts. Rows, counts and statuses stay. Returns what was touched, by kind."""
    now = now or timezone.now()
    counts = {"events": 0, "attempts": 0, "lead_attempts": 0, "trashed": 0}
    for start in range(0, len(event_ids), BATCH):
        ids = event_ids[start : start + BATCH]
        with transaction.atomic():
            for pk, errors in Event.objects.filter(pk__in=ids).exclude(errors=[]).values_list("pk", "errors"):
                Event.objects.filter(pk=pk).update(errors=_errors_redacted(errors))
            counts["events"] += Event.objects.filter(pk__in=ids).update(data={}, tracker_id="", redacted_at=now)
            attempts = Attempt.objects.filter(delivery__event_id__in=ids)
            for pk, url in attempts.filter(url__contains="?").values_list("pk", "url"):
                Attempt.objects.filter(pk=pk).update(url=_url_redacted(url))
            counts["attempts"] += attempts.update(request_body=REDACTED, response_body=REDACTED)
            attempts.exclude(error="").update(error=REDACTED)
            own = Q()
            for prefix in OWN_REASONS:
                own |= Q(last_error__startswith=prefix)
            Delivery.objects.filter(event_id__in=ids).exclude(own).exclude(last_error="").update(last_error=REDACTED)
            lead_attempts = LeadAttempt.objects.filter(delivery__event_id__in=ids)
            counts["lead_attempts"] += lead_attempts.update(request_body=REDACTED, response_body=REDACTED)
            lead_attempts.exclude(error="").update(error=REDACTED)
            for trashed in TrashedEvent.objects.filter(event_id__in=ids).only("pk", "errors"):
                TrashedEvent.objects.filter(pk=trashed.pk).update(raw={}, errors=_errors_redacted(trashed.errors))
                counts["trashed"] += 1
    return counts


# -- retention ----------------------------------------------------------------------------------------------------
def retention_days(policy: Any) -> int | None:
    """Days an event type's personal data is kept: Webmarketer's expirationPolicy when it is the event type's
    own ({"from": "event-type", "retentionDurationInDays": 365}), else the hub-wide HUB_RETENTION_DAYS (0 or
    unset: kept until erased on request). Returns None when nothing expires."""
    if isinstance(policy, dict) and policy.get("from") != "project":
        days = policy.get("retentionDurationInDays")
        if isinstance(days, int) and not isinstance(days, bool) and days > 0:
            return days
    default = int(getattr(settings, "HUB_RETENTION_DAYS", 0) or 0)
    return default if default > 0 else None


def retention_redact(*, now: datetime | None = None, batch: int = BATCH, budget: float | None = None) -> dict[str, int]:
    """Redact, in batches, the events past their type's retention (see retention_days): the beat task. Time-boxed;
    the next run goes on where this one stopped (redacted events are skipped)."""
    now = now or timezone.now()
    budget = RETENTION_RUN_SECONDS if budget is None else budget
    started = time.monotonic()
    totals = {"events": 0, "attempts": 0, "lead_attempts": 0, "trashed": 0}
    policies = {
        ref: retention_days(policy) for ref, policy in EventType.objects.values_list("reference", "expiration_policy")
    }
    default = retention_days(None)
    known = list(policies)
    scopes: list[tuple[Q, int]] = [(Q(event_type_ref=ref), days) for ref, days in policies.items() if days]
    if default:
        scopes.append((~Q(event_type_ref__in=known), default))  # events of no (or an unknown) type
    for scope, days in scopes:
        cutoff = now - timedelta(days=days)
        while time.monotonic() - started < budget:
            ids = list(
                Event.objects.filter(scope, received_at__lt=cutoff, redacted_at__isnull=True)
                .order_by()
                .values_list("pk", flat=True)[:batch]
            )
            if not ids:
                break
            for key, n in events_redact(ids, now=now).items():
                totals[key] += n
    return totals


# -- erasure on request -------------------------------------------------------------------------------------------
@dataclass
class VendorNote:
    name: str
    kind: str
    deletion_api: str  # "" when its document has none: staff ask the vendor


@dataclass
class ErasurePlan:
    """What an erasure would touch (counts only: the page and the command show no personal data)."""

    person: Person
    event_ids: list[int] = field(default_factory=list)
    attempts: int = 0
    leads: int = 0
    lead_changes: int = 0
    offline_ids: list[int] = field(default_factory=list)
    trashed_ids: list[int] = field(default_factory=list)
    vendors: list[VendorNote] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.event_ids or self.offline_ids or self.trashed_ids)

    def as_dict(self) -> dict[str, Any]:
        """The counts, for the audit entry and the command's output (no identifier)."""
        return {
            "by": self.person.kind,
            "events": len(self.event_ids),
            "attempts": self.attempts,
            "leads": self.leads,
            "lead_changes": self.lead_changes,
            "offline_interactions": len(self.offline_ids),
            "trashed_events": len(self.trashed_ids),
            "vendors_received": [v.name for v in self.vendors],
        }

    def vendor_lines(self) -> list[str]:
        """What to tell the vendors that received the person's data, in words."""
        lines = []
        for vendor in self.vendors:
            if vendor.deletion_api:
                lines.append(
                    f"{vendor.name} ({vendor.kind}): has a deletion API in its document: {vendor.deletion_api}"
                )
            else:
                lines.append(f"{vendor.name} ({vendor.kind}): no deletion API in its document: ask them to erase it")
        return lines


def _deletion_api(kind: str) -> str:
    try:
        return vendor_class(kind).deletion_api
    except LookupError:
        return ""


def erasure_plan(*, person: Person) -> ErasurePlan:
    """Every event, attempt, lead, offline interaction and trashed event about the person, and the vendors that
    received their data (an attempt was made to them), with whether their document offers a deletion API."""
    from ..models import LeadChange
    from ..selectors import lead_event_types

    ids = person_event_ids(person)
    plan = ErasurePlan(person=person, event_ids=ids)
    plan.attempts = Attempt.objects.filter(delivery__event_id__in=ids).count()
    lead_types = [t.pk for t in lead_event_types()]
    plan.leads = Event.objects.filter(pk__in=ids, event_type_id__in=lead_types).count()
    plan.lead_changes = LeadChange.objects.filter(event_id__in=ids).count()
    offline = OfflineInteraction.objects.all()
    trashed = TrashedEvent.objects.exclude(event_id__in=ids)
    if person.email:
        plan.offline_ids = _text_holds(offline, ("user_data", "node_data"), person.email)
        plan.trashed_ids = _text_holds(trashed, ("raw",), person.email)
    else:
        plan.trashed_ids = _text_holds(trashed, ("raw",), person.tracker_id)
    plan.trashed_ids += list(TrashedEvent.objects.filter(event_id__in=ids).values_list("pk", flat=True))
    sent_to = set(Attempt.objects.filter(delivery__event_id__in=ids).values_list("delivery__connection_id", flat=True))
    sent_to |= set(OfflineInteraction.objects.filter(pk__in=plan.offline_ids).values_list("connection_id", flat=True))
    for connection in VendorConnection.objects.filter(pk__in=sent_to).order_by("name"):
        plan.vendors.append(VendorNote(connection.name, connection.get_kind_display(), _deletion_api(connection.kind)))
    return plan


@transaction.atomic
def person_erase(*, person: Person, user=None, via: str = "console") -> ErasurePlan:
    """Erase everything the hub holds about the person (ErasurePlan), keeping rows, counts and statuses; one
    audit entry with the counts and the vendors to ask, never the identifier."""
    plan = erasure_plan(person=person)
    events_redact(plan.event_ids)
    # Pending or retrying deliveries would send data that is gone: suppressed, nothing left to send.
    deliveries_close(
        Delivery.objects.filter(event_id__in=plan.event_ids, status__in=Delivery.DUE_STATUSES),
        Delivery.Status.SUPPRESSED,
        last_error="suppressed: the person's data was erased",
    )
    Event.objects.filter(pk__in=plan.event_ids).update(consent=[], consent_origin="update")
    OfflineInteraction.objects.filter(pk__in=plan.offline_ids).update(user_data={}, node_data={}, answer=REDACTED)
    for trashed in TrashedEvent.objects.filter(pk__in=plan.trashed_ids).only("pk", "errors"):
        TrashedEvent.objects.filter(pk=trashed.pk).update(raw={}, errors=_errors_redacted(trashed.errors))
    audit_record(
        user=user, action="person.erase", target=f"a person by {person.kind}", details={"via": via, **plan.as_dict()}
    )
    return plan
