"""Ingest: validate events, keep every one of them, and queue their deliveries in the same transaction."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from ..consent import ConsentError, consent_parse, missing_purposes, suppressed_reason
from ..models import Delivery, Event, EventType, Route, Source
from ..schema import FieldError, parse_rfc3339, storable_copy, validate_data
from .audit import audit_record
from .rollups import deliveries_finished, events_counted
from .wake import connections_wake

ENVELOPE_KEYS = {"eventType", "data", "eventDate", "trackerId", "nonce", "consent"}
# eventType, trackerId and nonce: the length of their columns.
MAX_TEXT = 200


@dataclass
class IngestResult:
    event: Event
    duplicate: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.event.status == Event.Status.OK

    def as_dict(self) -> dict[str, Any]:
        # A nonce refused (too long, NUL, surrogate) was replaced by a generated one the caller never sent:
        # answer null rather than a nonce that would read as theirs; the errors name the nonce.
        refused = any(e.get("field") == "nonce" for e in self.event.errors or [])
        body: dict[str, Any] = {
            "id": str(self.event.uuid),
            "nonce": None if refused else self.event.nonce,
            "status": "duplicate" if self.duplicate else ("accepted" if self.accepted else "invalid"),
        }
        if self.event.status == Event.Status.INVALID:
            body["errors"] = self.event.errors
        return body


@dataclass
class IngestExtra:
    """What another surface (the Segment API) adds to one item: the context kept with the event (route mappings
    read it) and errors of its own that make the event invalid, named first."""

    context: dict[str, Any] = field(default_factory=dict)
    errors: list[FieldError] = field(default_factory=list)


def source_authenticate(token: str) -> Source | None:
    """The enabled source owning this token, or None."""
    if not token:
        return None
    source = Source.objects.filter(token_hash=Source.hash_token(token), enabled=True).first()
    if source and (source.last_used_at is None or (timezone.now() - source.last_used_at).total_seconds() > 60):
        Source.objects.filter(pk=source.pk).update(last_used_at=timezone.now())
    return source


@transaction.atomic
def source_create(*, name: str, default_consent: list[str] | None = None, user=None) -> tuple[Source, str]:
    """A new source and its token (shown once: only its hash is kept); audited. `default_consent`: the purposes its
    events grant when they carry no consent of their own; none given: deny-all ([])."""
    token = "hub_" + secrets.token_urlsafe(32)
    source = Source.objects.create(
        name=name,
        token_hash=Source.hash_token(token),
        token_prefix=token[:10],
        default_consent=consent_parse(list(default_consent or [])),
    )
    audit_record(user=user, action="source.create", target=source, details={"default_consent": source.default_consent})
    return source, token


@transaction.atomic
def source_consent_update(*, source: Source, default_consent: list[str], user=None) -> Source:
    """Change what the source's events grant when they carry no consent (events stored before keep theirs)."""
    before = list(source.default_consent or [])
    source.default_consent = consent_parse(list(default_consent))
    source.save(update_fields=["default_consent"])
    audit_record(
        user=user,
        action="source.consent",
        target=source,
        details={"default_consent": source.default_consent, "before": before},
    )
    return source


def source_rotate_token(*, source: Source) -> str:
    token = "hub_" + secrets.token_urlsafe(32)
    source.token_hash, source.token_prefix = Source.hash_token(token), token[:10]
    source.save(update_fields=["token_hash", "token_prefix"])
    return token


def _fit(text: str) -> str:
    """Text cut to the columns' 200 characters (the full value stays in the error that names it)."""
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _prepare(item: Any, problems: list[FieldError], event_types: dict[str, EventType], now) -> Event:
    """An unsaved Event for one posted item, valid or not, with its errors.

    `item` is already the storable copy and `problems` what storable_copy changed to make it (NUL, lone
    surrogates, numbers past a double, nesting past MAX_DEPTH). Such an item is kept as invalid rather than
    refused: the caller gets an id and the reason in the per-item answer, staff see everything else the event
    held (the offending strings as their visible escapes), nothing of it is ever sent, and the rest of the
    batch is stored as usual. Refusing it outright would lose the event and give staff nothing to look at."""
    errors: list[FieldError] = list(problems)
    named = {e.field for e in problems}
    if not isinstance(item, dict):
        return Event(
            nonce=str(uuid.uuid4()),
            event_type_ref="",
            data={"_raw": item},
            event_date=now,
            received_at=now,
            status=Event.Status.INVALID,
            errors=[FieldError("event", "must be a JSON object").as_dict()] + [e.as_dict() for e in errors],
        )
    ref = item.get("eventType")
    event_type = None
    if not isinstance(ref, str) or not ref:
        errors.append(FieldError("eventType", "is required (an event type reference)", ref))
        ref = "" if ref is None else str(ref)
    elif len(ref) > MAX_TEXT:
        errors.append(FieldError("eventType", f"is longer than {MAX_TEXT} characters", ref))
    elif "eventType" not in named:
        event_type = event_types.get(ref)
        if event_type is None:
            errors.append(FieldError("eventType", f"unknown event type {ref!r}", ref))
        elif event_type.archived_at:
            errors.append(FieldError("eventType", f"event type {ref!r} is archived", ref))

    event_date = now
    if item.get("eventDate") is not None and "eventDate" not in named:
        try:
            event_date = parse_rfc3339(item["eventDate"])
        except ValueError as exc:
            errors.append(FieldError("eventDate", str(exc), item["eventDate"]))

    tracker_id = item.get("trackerId") or ""
    if not isinstance(tracker_id, str):
        errors.append(FieldError("trackerId", "must be a string", tracker_id))
        tracker_id = str(tracker_id)
    elif len(tracker_id) > MAX_TEXT and "trackerId" not in named:
        errors.append(FieldError("trackerId", f"is longer than {MAX_TEXT} characters", tracker_id))

    nonce = item.get("nonce")
    if nonce is None or nonce == "" or "nonce" in named:
        # A nonce that held NUL or a surrogate is replaced: its escaped copy could equal another event's nonce.
        nonce = str(uuid.uuid4())
    elif isinstance(nonce, str | int) and not isinstance(nonce, bool) and len(str(nonce)) <= MAX_TEXT:
        nonce = str(nonce)
    elif isinstance(nonce, str | int) and not isinstance(nonce, bool):
        errors.append(FieldError("nonce", f"is longer than {MAX_TEXT} characters ({len(str(nonce))})", nonce))
        nonce = str(uuid.uuid4())
    else:
        errors.append(FieldError("nonce", f"must be a string of at most {MAX_TEXT} characters", nonce))
        nonce = str(uuid.uuid4())

    data = item.get("data")
    if event_type is not None:
        errors += validate_data(event_type.fields, data, event_type.phone_parsing_config)
    elif not isinstance(data, dict):
        errors.append(FieldError("data", "must be a JSON object", data))
    unknown = sorted(set(item) - ENVELOPE_KEYS)
    if unknown:
        errors.append(FieldError("event", f"unknown keys: {', '.join(unknown)}"))
    consent, origin = None, None
    if "consent" in item:
        try:
            consent, origin = consent_parse(item["consent"]), "event"
        except ConsentError as exc:
            errors.append(FieldError("consent", str(exc), item["consent"]))

    return Event(
        nonce=nonce,
        event_type=event_type,
        event_type_ref=_fit(ref),
        data=data if isinstance(data, dict) else {"_raw": data},
        event_date=event_date,
        tracker_id=_fit(tracker_id),
        received_at=now,
        status=Event.Status.INVALID if errors else Event.Status.OK,
        errors=[e.as_dict() for e in errors],
        consent=consent,
        consent_origin=origin,
    )


def events_ingest(
    *, source: Source | None, items: list[Any], extras: list[IngestExtra] | None = None
) -> list[IngestResult]:
    """Store every item as an Event (invalid ones with their errors) and queue the valid ones' deliveries.

    Idempotent on (source, nonce): an item whose nonce its source already used returns the stored event.
    Whatever an item holds, it is stored (as a storable copy when it must be) or the whole call changes nothing.
    `extras`, one per item when given, add a context and errors (IngestExtra)."""
    copies = [storable_copy(item) for item in items]
    if extras is not None:
        copies = [_with_extra(copy, extra) for copy, extra in zip(copies, extras, strict=True)]
    try:
        return _ingest(source, copies)
    except IntegrityError:
        # A concurrent request stored one of these (source, nonce) pairs between our lookup and our insert:
        # once more, and the lookup now finds it.
        return _ingest(source, copies)


def _with_extra(copy: tuple[Any, list[FieldError]], extra: IngestExtra) -> tuple[Any, list[FieldError], IngestExtra]:
    """The storable copy with its extra, whose context is made storable the same way (its problems named)."""
    (context, problems) = storable_copy({"context": extra.context})
    # An error's value quotes what was sent (NUL, a lone surrogate): stored as its storable copy too.
    errors = [replace(e, value=storable_copy(e.value)[0]) for e in extra.errors]
    return copy[0], copy[1], IngestExtra(context=context["context"], errors=errors + problems)


def _known(source: Source | None, nonces: list[str]) -> dict[str, Event]:
    """The events this source already stored under these nonces."""
    return {e.nonce: e for e in Event.objects.filter(source=source, nonce__in=nonces)}


@transaction.atomic
def _ingest(source: Source | None, copies: list[tuple]) -> list[IngestResult]:
    now = timezone.now()
    refs = {
        item["eventType"]
        for item, *_ in copies
        if isinstance(item, dict) and isinstance(item.get("eventType"), str) and len(item["eventType"]) <= MAX_TEXT
    }
    event_types = {et.reference: et for et in EventType.objects.filter(reference__in=refs)}
    prepared = [_prepare(item, problems, event_types, now) for item, problems, *_ in copies]
    for event, (_, _, *extra) in zip(prepared, copies, strict=True):
        if extra:
            event.context = extra[0].context
            if extra[0].errors:
                event.errors = [e.as_dict() for e in extra[0].errors] + event.errors
                event.status = Event.Status.INVALID
    for event in prepared:
        event.source = source
        event.vendor_nonce = Event.vendor_nonce_for(source.pk if source else None, event.nonce)
        if event.consent_origin is None and source is not None:
            # No consent of its own: the source's default, copied (a later change of the default is no consent).
            event.consent, event.consent_origin = list(source.default_consent or []), "source"

    # Idempotency is per source: another source's event with the same nonce is another event.
    existing = _known(source, [e.nonce for e in prepared])
    results: list[IngestResult] = []
    new: dict[str, Event] = {}
    for event in prepared:
        known = existing.get(event.nonce) or new.get(event.nonce)
        if known is not None:
            results.append(IngestResult(known, duplicate=True))
        else:
            new[event.nonce] = event
            results.append(IngestResult(event))
    created = Event.objects.bulk_create(list(new.values()))
    _deliveries_create(e for e in created if e.status == Event.Status.OK)
    # -- rollups (dashboard): last in the transaction, so the rollup row's lock is held the shortest time.
    events_counted(created)
    return results


def _deliveries_create(events: Iterable[Event]) -> None:
    """One pending delivery per enabled route of each event's type: the outbox rows. A route needing a purpose
    the event's consent does not grant gets a `suppressed` delivery instead (never sent, never retried), counted
    at once in the dashboard's rollups."""
    events = list(events)
    if not events:
        return
    routes: dict[int, list[Route]] = {}
    for route in Route.objects.filter(
        event_type__in={e.event_type_id for e in events}, enabled=True, connection__enabled=True
    ).only("pk", "event_type_id", "connection_id", "purposes"):
        routes.setdefault(route.event_type_id, []).append(route)
    if not routes:
        return
    # Events every route of theirs may receive (the usual case): their outbox rows made by the database in one
    # statement. An event some route's purposes exclude: its rows one by one, the excluded ones suppressed.
    allowed, checked = [], []
    for e in events:
        event_routes = routes.get(e.event_type_id, [])
        if any(missing_purposes(r.purposes, e.consent) for r in event_routes):
            checked.append(e)
        elif event_routes:
            allowed.append(e)
    woken = {r.connection_id for e in allowed for r in routes[e.event_type_id]}
    if allowed:
        _outbox_insert([e.pk for e in allowed], [r.pk for rs in routes.values() for r in rs])
    deliveries = []
    for e in checked:
        for r in routes[e.event_type_id]:
            missing = missing_purposes(r.purposes, e.consent)
            deliveries.append(
                Delivery(
                    event=e,
                    connection_id=r.connection_id,
                    route=r,
                    nonce=e.vendor_nonce,
                    created_at=e.received_at,
                    next_attempt_at=e.received_at,
                    status=Delivery.Status.SUPPRESSED if missing else Delivery.Status.PENDING,
                    last_error=suppressed_reason(missing) if missing else "",
                )
            )
    Delivery.objects.bulk_create(deliveries)
    suppressed = [d for d in deliveries if d.status == Delivery.Status.SUPPRESSED]
    if suppressed:
        deliveries_finished([(d, d.status) for d in suppressed], at=timezone.now())
    connections_wake(woken | {d.connection_id for d in deliveries if d.status == Delivery.Status.PENDING})


# Columns of the outbox row the database takes from the event (e) and its route (r); every other column gets its
# model default. Built by the database in one INSERT … SELECT, where model instances (a value prepared per column
# and row in Python) took two thirds of a batch's ingest.
_FROM_EVENT_AND_ROUTE = {
    "event": "e.id",
    "connection": "r.connection_id",
    "route": "r.id",
    "nonce": "e.vendor_nonce",
    "created_at": "e.received_at",
    "next_attempt_at": "e.received_at",
}
_OUTBOX_CHUNK = 500


def _outbox_insert(event_ids: list[int], route_ids: list[int]) -> None:
    """A pending delivery for each (event, enabled route of its type), in event then route order."""
    qn = connection.ops.quote_name
    template = Delivery()
    columns, values, params = [], [], []
    for f in Delivery._meta.concrete_fields:
        if f.primary_key:
            continue
        if f.name in _FROM_EVENT_AND_ROUTE:
            columns.append(qn(f.column))
            values.append(_FROM_EVENT_AND_ROUTE[f.name])
            continue
        value = f.pre_save(template, add=True)  # the default, or now for auto_now
        if hasattr(value, "resolve_expression"):  # a database default: the database fills it
            continue
        columns.append(qn(f.column))
        values.append("%s")
        params.append(f.get_db_prep_save(value, connection))
    type_column = qn(Event._meta.get_field("event_type").column)
    route_type_column = qn(Route._meta.get_field("event_type").column)
    with connection.cursor() as cursor:
        for start in range(0, len(event_ids), _OUTBOX_CHUNK):
            chunk = event_ids[start : start + _OUTBOX_CHUNK]
            # Names from the models, values all parameters.
            cursor.execute(
                f"INSERT INTO {qn(Delivery._meta.db_table)} ({', '.join(columns)}) SELECT {', '.join(values)} "  # noqa: S608
                f"FROM {qn(Event._meta.db_table)} e JOIN {qn(Route._meta.db_table)} r "
                f"ON r.{route_type_column} = e.{type_column} "
                f"WHERE e.id IN ({', '.join(['%s'] * len(chunk))}) AND r.id IN ({', '.join(['%s'] * len(route_ids))}) "
                "ORDER BY e.id, r.id",
                [*params, *chunk, *route_ids],
            )
