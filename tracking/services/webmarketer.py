"""Webmarketer beyond events: mirror event types, pull / fix / replay trashed events, read raw events, send
offline interactions (one, or a CSV file of them).

Every call goes through the connection's pooled session (`session_for`); a 401 takes a fresh token once.

CSV header convention for offline interactions (first line; `,`, `;` or tab separated; UTF-8, BOM allowed):
- `date` (required): RFC3339, UTC when no offset (e.g. 2023-08-01T22:00:00Z or 2023-08-01 22:00:00);
- `wmktId` (required): the advertiser node's Webmarketer id; goes to nodeData;
- `email`, `phone`, and any `user.<key>` column: userData (at least one per row);
- `node.<key>` and every other column (e.g. `cid`): nodeData.
Empty cells are left out. Rows are numbered as in a spreadsheet: the header is row 1.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any

import httpx
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from ..models import (
    Delivery,
    Event,
    EventType,
    EventTypeConflict,
    OfflineInteraction,
    Route,
    TrashedEvent,
    VendorConnection,
    VendorKind,
    WebmarketerSync,
)
from ..schema import DATA_ENTITIES, FieldError, ingestion_key, parse_rfc3339, validate_data
from ..vendors.base import ConfigurationError, VendorRequest
from ..vendors.http import TokenError, VendorSession
from ..vendors.webmarketer import (
    AnswerError,
    Page,
    UnexpectedAnswer,
    Webmarketer,
    event_type_digest,
    parse_event_type,
    parse_event_types,
    parse_offline_interaction,
    parse_raw_event,
    parse_trashed,
    rfc3339,
    trash_error_explain,
)
from .audit import audit_record
from .delivery import session_for
from .rollups import trash_counted
from .wake import connections_wake

__all__ = [
    "AnswerError",
    "UnexpectedAnswer",
    "trash_error_explain",
    "event_types_pull",
    "event_type_push",
    "event_type_conflict_resolve",
    "trash_pull",
    "trash_fix_fields",
    "trash_error_keys",
    "trash_replay",
    "trash_dismiss",
    "raw_event_fetch",
    "offline_interaction_send",
    "offline_interactions_import_csv",
    "user_data_problems",
]

log = logging.getLogger(__name__)

PAGE_SIZE = 100
MAX_PAGES = 10_000
# Items can show up in the trash well after their processingDate: each pull re-reads this much before the
# last one's upper bound (stored ids are skipped, so nothing is kept twice). A connection's settings may set
# it with trash_overlap_minutes.
TRASH_OVERLAP = timedelta(hours=1)
# Ids per `IN (…)` when checking which pulled items are stored already (a first pull reads the whole trash;
# SQLite allows 32,766 parameters per statement, PostgreSQL 65,535 with server-side binding).
IN_CHUNK = 1000


# -- calling Webmarketer -----------------------------------------------------------------------------------
def _user(user: Any) -> Any:
    return user if getattr(user, "is_authenticated", False) else None


def _session(connection: VendorConnection) -> VendorSession:
    if connection.kind != VendorKind.WEBMARKETER:
        raise ConfigurationError(f"{connection.name} is not a Webmarketer connection")
    session = session_for(connection)
    session.vendor.check()
    return session


def _token(session: VendorSession, stale: str | None = None) -> str | None:
    try:
        return session.token(stale=stale)
    except TokenError as exc:
        raise AnswerError(f"Webmarketer authentication failed: {exc}") from None


def _call(session: VendorSession, build: Callable[[str | None], VendorRequest]) -> httpx.Response:
    """Send one request with a valid token; on a 401 take a fresh token and send once more."""
    token = _token(session)
    exchange = session.send(build(token))
    if exchange.response is not None and exchange.response.status_code == 401:
        exchange = session.send(build(_token(session, stale=token)))
    if exchange.response is None:
        raise AnswerError(f"Webmarketer could not be reached: {exchange.error}")
    return exchange.response


def _pages(
    session: VendorSession,
    build: Callable[[str | None, int, int], VendorRequest],
    parse: Callable[[httpx.Response], Page],
    limit: int,
) -> list[Any]:
    """Every item of an offset/limit listing, page after page, until `total` is reached."""
    items: list[Any] = []
    for _ in range(MAX_PAGES):
        offset = len(items)
        page = parse(_call(session, lambda token, offset=offset: build(token, offset, limit)))
        items += page.data
        if not page.data or len(items) >= page.total:
            return items
    raise UnexpectedAnswer(f"more than {MAX_PAGES} pages: the listing does not end")


def _page_size(connection: VendorConnection) -> int:
    try:
        return max(1, int(connection.settings.get("page_size") or PAGE_SIZE))
    except (TypeError, ValueError):
        return PAGE_SIZE


def _sync_state(connection: VendorConnection) -> WebmarketerSync:
    return WebmarketerSync.objects.get_or_create(connection=connection)[0]


# -- event types -------------------------------------------------------------------------------------------
@dataclass
class EventTypesPull:
    """What a pull did, by reference."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    # Changed here, unchanged in Webmarketer: left as they are, waiting for a push.
    local_ahead: list[str] = field(default_factory=list)
    unchanged: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def event_type_document(event_type: EventType) -> dict[str, Any]:
    """Our event type in Webmarketer's shape (what a push sends, what digests compare)."""
    return {
        "reference": event_type.reference,
        "name": event_type.name,
        "fields": event_type.fields,
        "metadata": event_type.metadata,
        "phoneParsingConfig": event_type.phone_parsing_config,
        "expirationPolicy": event_type.expiration_policy,
        "archivedAt": rfc3339(event_type.archived_at) if event_type.archived_at else None,
    }


def _remote_apply(event_type: EventType, doc: dict[str, Any], now: datetime) -> None:
    event_type.name = doc["name"]
    event_type.fields = doc["fields"]
    event_type.metadata = doc["metadata"]
    event_type.phone_parsing_config = doc["phoneParsingConfig"]
    event_type.archived_at = datetime.fromisoformat(doc["archivedAt"]) if doc["archivedAt"] else None
    if "expirationPolicy" in doc:  # answers rarely carry it: keep ours otherwise
        event_type.expiration_policy = doc["expirationPolicy"]
    event_type.wm_id = doc["_id"]
    event_type.synced_at = now
    event_type.synced_hash = event_type_digest(doc)


def _conflicts_close(event_type: EventType, resolution: str, user: Any = None) -> None:
    EventTypeConflict.objects.filter(event_type=event_type, resolved_at__isnull=True).update(
        resolution=resolution, resolved_at=timezone.now(), resolved_by=_user(user)
    )


def event_types_pull(*, connection: VendorConnection, user: Any = None) -> EventTypesPull:
    """Mirror Webmarketer's event types here: create new ones, update the ones only Webmarketer changed,
    record a conflict (and overwrite nothing) where both sides changed since the last sync."""
    session = _session(connection)
    vendor: Webmarketer = session.vendor  # type: ignore[assignment]
    limit = _page_size(connection)
    remote: dict[str, dict[str, Any]] = {}
    # Without `archived` the listing leaves archived types out: read both, the archived ones last.
    for archived in (None, True):
        docs = _pages(
            session,
            lambda token, offset, limit, a=archived: vendor.event_types_request(
                token, offset=offset, limit=limit, archived=a
            ),
            parse_event_types,
            limit,
        )
        remote.update((d["reference"], d) for d in docs)
    summary = _event_types_apply(connection, remote)
    if user is not None or summary.created or summary.updated or summary.archived or summary.conflicts:
        audit_record(user=user, action="event_types.pull", target=connection, details=summary.as_dict())
    return summary


@transaction.atomic
def _event_types_apply(connection: VendorConnection, remote: dict[str, dict[str, Any]]) -> EventTypesPull:
    now = timezone.now()
    summary = EventTypesPull()
    local = {et.reference: et for et in EventType.objects.select_for_update().filter(reference__in=list(remote))}
    for reference, doc in sorted(remote.items()):
        if len(reference) > EventType._meta.get_field("reference").max_length:
            log.warning("Webmarketer event type %r: reference too long to mirror, skipped", reference[:100])
            continue
        remote_hash = event_type_digest(doc)
        event_type = local.get(reference)
        if event_type is None:
            event_type = EventType(reference=reference)
            _remote_apply(event_type, doc, now)
            event_type.save()
            summary.created.append(reference)
            continue
        base = event_type.synced_hash
        local_hash = event_type_digest(event_type_document(event_type))
        if local_hash == remote_hash:
            # Equal on both sides (unchanged, or changed the same way): in sync.
            if base != remote_hash or event_type.wm_id != doc["_id"]:
                event_type.wm_id, event_type.synced_at, event_type.synced_hash = doc["_id"], now, remote_hash
                event_type.save(update_fields=["wm_id", "synced_at", "synced_hash"])
            _conflicts_close(event_type, EventTypeConflict.Resolution.CONVERGED)
            summary.unchanged += 1
        elif base and local_hash == base:
            # Only Webmarketer changed it: take its version.
            was_archived = event_type.archived_at is not None
            _remote_apply(event_type, doc, now)
            event_type.save()
            _conflicts_close(event_type, EventTypeConflict.Resolution.TOOK_REMOTE)
            archived_now = not was_archived and event_type.archived_at is not None
            (summary.archived if archived_now else summary.updated).append(reference)
        elif base and remote_hash == base:
            summary.local_ahead.append(reference)
        else:
            # Both changed since the last sync (or never synced and different): keep ours, show theirs.
            if not event_type.wm_id:
                EventType.objects.filter(pk=event_type.pk).update(wm_id=doc["_id"])
            EventTypeConflict.objects.update_or_create(
                event_type=event_type,
                resolved_at__isnull=True,
                defaults={
                    "connection": connection,
                    "remote": doc,
                    "local": event_type_document(event_type),
                    "remote_hash": remote_hash,
                    "seen_at": now,
                },
            )
            summary.conflicts.append(reference)
    state = _sync_state(connection)
    state.event_types_pulled_at, state.event_types_summary = now, summary.as_dict()
    state.save(update_fields=["event_types_pulled_at", "event_types_summary"])
    return summary


@transaction.atomic
def event_type_conflict_resolve(*, conflict: EventTypeConflict, keep: str, user: Any = None) -> EventType:
    """Settle a conflict: keep="remote" takes Webmarketer's version; keep="local" keeps ours (it then counts
    as changed here only, and later pulls leave it alone)."""
    if keep not in ("local", "remote"):
        raise ValueError('keep must be "local" or "remote"')
    # Read again under a lock: two people settling the same conflict at once must not both win.
    conflict = EventTypeConflict.objects.select_for_update().select_related("event_type").get(pk=conflict.pk)
    if conflict.resolved_at:
        raise ValueError("this conflict is already resolved")
    event_type = conflict.event_type
    now = timezone.now()
    if keep == "remote":
        _remote_apply(event_type, conflict.remote, now)
        event_type.save()
        resolution = EventTypeConflict.Resolution.TOOK_REMOTE
    else:
        event_type.wm_id, event_type.synced_at, event_type.synced_hash = (
            conflict.remote["_id"],
            now,
            conflict.remote_hash,
        )
        event_type.save(update_fields=["wm_id", "synced_at", "synced_hash"])
        resolution = EventTypeConflict.Resolution.KEPT_LOCAL
    _conflicts_close(event_type, resolution, user)
    audit_record(
        user=user,
        action="event_type.conflict_resolve",
        target=event_type,
        details={"kept": keep, "remote": conflict.remote, "local": conflict.local},
    )
    return event_type


def event_type_push(*, event_type: EventType, connection: VendorConnection, user: Any = None) -> EventType:
    """Create our event type in Webmarketer; keep the `_id` it gets. Webmarketer's refusal raises AnswerError."""
    session = _session(connection)
    vendor: Webmarketer = session.vendor  # type: ignore[assignment]
    document = event_type_document(event_type)
    created = parse_event_type(_call(session, lambda token: vendor.event_type_create_request(token, document)))
    with transaction.atomic():
        # What we sent is now what both sides have; Webmarketer's own normalisation comes with the next pull.
        event_type.wm_id, event_type.synced_at = created["_id"], timezone.now()
        event_type.synced_hash = event_type_digest(document)
        event_type.save(update_fields=["wm_id", "synced_at", "synced_hash"])
        audit_record(
            user=user,
            action="event_type.push",
            target=event_type,
            details={"connection": connection.name, "wm_id": created["_id"], "sent": document},
        )
    return event_type


# -- trash -------------------------------------------------------------------------------------------------
@dataclass
class TrashPull:
    fetched: int
    stored: int
    linked: int
    since: datetime | None
    until: datetime


def trash_pull(*, connection: VendorConnection) -> TrashPull:
    """Store the events Webmarketer trashed since the last pull (every page), once each, linked to ours."""
    session = _session(connection)
    vendor: Webmarketer = session.vendor  # type: ignore[assignment]
    state = _sync_state(connection)
    until = timezone.now()
    since = state.trash_until - _trash_overlap(connection) if state.trash_until else None
    their_clocks: list[datetime] = []

    def parse(response: httpx.Response):
        if date := _answer_date(response):
            their_clocks.append(date)
        return parse_trashed(response)

    items = _pages(
        session,
        lambda token, offset, limit: vendor.trashed_request(
            token, since=since, until=until, offset=offset, limit=limit
        ),
        parse,
        _page_size(connection),
    )
    # processingDate is Webmarketer's clock: when ours is ahead, the next window starts from theirs, or the
    # items it dates between its clock and ours would fall before the next `since`.
    watermark = min([until, *their_clocks[:1]])
    with transaction.atomic():
        unique = {item.id: item for item in items}
        ids = list(unique)
        known: set[str] = set()
        for start in range(0, len(ids), IN_CHUNK):
            chunk = ids[start : start + IN_CHUNK]
            known.update(TrashedEvent.objects.filter(wm_id__in=chunk).values_list("wm_id", flat=True))
        new = [
            TrashedEvent(
                wm_id=item.id,
                connection=connection,
                event_type_ref=item.event_type_ref,
                event_type_wm_id=item.event_type_id,
                errors=item.errors,
                processing_date=item.processing_date,
                raw_event_date=item.raw_event_date,
                raw=item.raw,
            )
            for item in unique.values()
            if item.id not in known
        ]
        # ignore_conflicts: a concurrent pull may have stored some of them meanwhile.
        TrashedEvent.objects.bulk_create(new, ignore_conflicts=True, batch_size=IN_CHUNK)
        trash_counted(new)  # rollups (dashboard)
        linked = _trash_link(connection)
        state.trash_until, state.trash_pulled_at = watermark, timezone.now()
        state.save(update_fields=["trash_until", "trash_pulled_at"])
    return TrashPull(fetched=len(items), stored=len(new), linked=linked, since=since, until=until)


def _trash_overlap(connection: VendorConnection) -> timedelta:
    try:
        minutes = float(connection.settings.get("trash_overlap_minutes") or 0)
    except (TypeError, ValueError):
        minutes = 0
    return timedelta(minutes=minutes) if minutes > 0 else TRASH_OVERLAP


def _answer_date(response: httpx.Response) -> datetime | None:
    """Webmarketer's clock when it answered (the HTTP Date header), if it says."""
    try:
        date = parsedate_to_datetime(response.headers.get("date", ""))
    except (TypeError, ValueError, IndexError):
        return None
    return date if date.tzinfo else None


def _trash_link(connection: VendorConnection) -> int:
    """Link open trash items to our events: Webmarketer's event id is the vendor_ref of our delivery."""
    unlinked = TrashedEvent.objects.filter(connection=connection, event__isnull=True, resolved=False)
    refs = dict(
        Delivery.objects.filter(connection=connection, vendor_ref__in=unlinked.values("wm_id")).values_list(
            "vendor_ref", "event_id"
        )
    )
    for wm_id, event_id in refs.items():
        TrashedEvent.objects.filter(wm_id=wm_id).update(event_id=event_id)
    return len(refs)


def trash_error_keys(errors: list[Any]) -> set[str]:
    """The data keys a trash item's errors name (the field's ingestion key, or the announced plain string)."""
    keys = set()
    for error in errors:
        field = error.get("field") if isinstance(error, dict) else None
        if isinstance(field, dict) and ingestion_key(field):
            keys.add(ingestion_key(field))
        elif isinstance(field, str) and field:
            keys.add(field)
    return keys


def trash_fix_fields(*, trashed: TrashedEvent) -> list[dict[str, Any]]:
    """The fields a fix must satisfy: our event type's data fields, with Webmarketer's own definition (sent
    with each error) instead of ours for the fields it refused: its type may have changed since our mirror."""
    event_type = trashed.event.event_type if trashed.event else None
    ours = [f for f in (event_type.fields if event_type else []) if f.get("entity") in DATA_ENTITIES]
    theirs: dict[str, dict[str, Any]] = {}
    for error in trashed.errors:
        field = error.get("field") if isinstance(error, dict) else None
        if isinstance(field, dict) and field.get("storageKey") and field.get("entity", "user") in DATA_ENTITIES:
            theirs[field["storageKey"]] = field
        elif isinstance(field, str) and field and not any(ingestion_key(f) == field for f in ours):
            # Only a name (the format the docs announce): a text field nobody has to fill.
            theirs.setdefault(
                field,
                {"type": "string", "entity": "event", "storageKey": field, "ingestionKey": field, "optional": True},
            )
    merged = [theirs.pop(f.get("storageKey"), f) for f in ours]
    return merged + list(theirs.values())


class FixInvalid(ValueError):
    """The fixed data still breaks the event type."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


@transaction.atomic
def trash_replay(*, trashed: TrashedEvent, data: dict[str, Any], user: Any, note: str = "") -> Delivery:
    """Fix and replay: our event gets the fixed data and a new delivery generation with a NEW nonce (the old
    one is burnt at Webmarketer: the same nonce would be deduplicated away); the trash item is resolved."""
    trashed = TrashedEvent.objects.select_for_update().get(pk=trashed.pk)
    if trashed.resolved:
        raise ValueError("this trashed event is already resolved")
    event: Event | None = trashed.event
    if event is None:
        raise ValueError("this trashed event matches none of our deliveries: there is no event of ours to fix")
    if event.event_type is None:
        raise ValueError(f"event {event.uuid} has no known event type to validate the fix against")
    errors = validate_data(trash_fix_fields(trashed=trashed), data, event.event_type.phone_parsing_config)
    if errors:
        raise FixInvalid(errors)
    previous = event.deliveries.filter(connection=trashed.connection).order_by("-generation").first()
    # The route the event went under, else (deleted since) the type's current route to this connection.
    route = (previous.route if previous else None) or Route.objects.filter(
        event_type=event.event_type, connection=trashed.connection
    ).first()
    if route is not None and not route.enabled:
        raise ValueError(
            f"the route of {event.event_type_ref} to {trashed.connection.name} is disabled: enable it to replay"
        )
    before = event.data
    event.data, event.status, event.errors = data, Event.Status.OK, []
    event.save(update_fields=["data", "status", "errors"])
    now = timezone.now()
    delivery = Delivery.objects.create(
        event=event,
        connection=trashed.connection,
        route=route,
        generation=previous.generation + 1 if previous else 0,
        nonce=str(uuid.uuid4()),
        created_at=now,
        next_attempt_at=now,
    )
    trashed.resolved, trashed.resolution = True, TrashedEvent.Resolution.REPLAYED
    trashed.resolution_note = note or f"fixed and replayed as delivery {delivery.pk} (nonce {delivery.nonce})"
    trashed.resolved_by, trashed.resolved_at, trashed.replay_delivery = _user(user), now, delivery
    trashed.save()
    audit_record(
        user=user,
        action="trash.replay",
        target=event,
        details={
            "trashed": trashed.wm_id,
            "before": before,
            "after": data,
            "delivery": delivery.pk,
            "nonce": delivery.nonce,
            "event_nonce": event.nonce,
            "note": note,
        },
    )
    connections_wake({trashed.connection_id})
    return delivery


@transaction.atomic
def trash_dismiss(*, items: Iterable[TrashedEvent], user: Any, note: str = "") -> int:
    """Mark trash items resolved without replaying them (e.g. test traffic); returns how many."""
    pending = TrashedEvent.objects.filter(pk__in=[i.pk for i in items], resolved=False)
    wm_ids = list(pending.values_list("wm_id", flat=True))
    count = TrashedEvent.objects.filter(wm_id__in=wm_ids).update(
        resolved=True,
        resolution=TrashedEvent.Resolution.DISMISSED,
        resolution_note=note or "dismissed",
        resolved_by=_user(user),
        resolved_at=timezone.now(),
    )
    if count:
        audit_record(
            user=user,
            action="trash.dismiss",
            target=f"{count} trashed events",
            details={"wm_ids": wm_ids, "note": note},
        )
    return count


# -- raw events --------------------------------------------------------------------------------------------
def raw_event_fetch(*, delivery: Delivery) -> dict[str, Any]:
    """The event as Webmarketer received it (by the id it gave our delivery)."""
    if not delivery.vendor_ref:
        raise ValueError("this delivery has no Webmarketer event id (not delivered yet)")
    session = _session(delivery.connection)
    vendor: Webmarketer = session.vendor  # type: ignore[assignment]
    return parse_raw_event(_call(session, lambda token: vendor.raw_event_request(token, delivery.vendor_ref)))


# -- offline interactions ----------------------------------------------------------------------------------
def offline_interaction_send(
    *,
    connection: VendorConnection,
    date: datetime,
    user_data: dict[str, Any],
    node_data: dict[str, Any],
    user: Any = None,
    origin: str = "",
) -> OfflineInteraction:
    """Send one offline interaction; the record says sent, rejected (Webmarketer's message verbatim) or failed."""
    session = _session(connection)
    vendor: Webmarketer = session.vendor  # type: ignore[assignment]
    record = OfflineInteraction(
        connection=connection,
        date=date,
        user_data=user_data,
        node_data=node_data,
        origin=origin[:300],
        created_by=_user(user),
    )

    def build(token: str | None) -> VendorRequest:
        return vendor.offline_interaction_request(token, date=date, user_data=user_data, node_data=node_data)

    try:
        answer = parse_offline_interaction(_call(session, build))
    except AnswerError as exc:
        record.status, record.response_status, record.answer = OfflineInteraction.Status.FAILED, exc.status, str(exc)
    else:
        record.status = OfflineInteraction.Status.SENT if answer.accepted else OfflineInteraction.Status.REJECTED
        record.response_status = answer.status
        record.answer = answer.message if not answer.accepted else _text(answer.body)
    record.save()
    if user is not None:
        audit_record(
            user=user,
            action="offline_interaction.send",
            target=connection,
            details={"id": record.pk, "status": record.status, "origin": origin},
        )
    return record


def _text(body: Any) -> str:
    return body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)


USER_COLUMNS = ("email", "phone")
PHONE = re.compile(r"^\+?[\d\s.\-()/]+$")


@dataclass
class RowReport:
    row: int
    status: str  # sent | already_sent (not sent again) | invalid | rejected | failed
    message: str = ""
    interaction_id: int | None = None

    def __str__(self) -> str:
        words = {
            "invalid": "invalid",
            "rejected": "rejected by Webmarketer",
            "failed": "not delivered",
            "already_sent": "already sent, not sent again",
        }
        return f"row {self.row}: {words.get(self.status, self.status)}" + (f": {self.message}" if self.message else "")


@dataclass
class ImportReport:
    rows: list[RowReport]

    @property
    def sent(self) -> int:
        return sum(r.status == "sent" for r in self.rows)

    @property
    def already_sent(self) -> int:
        return sum(r.status == "already_sent" for r in self.rows)

    @property
    def failed(self) -> int:
        return len(self.rows) - self.sent - self.already_sent


@dataclass
class _Row:
    number: int
    date: datetime
    user_data: dict[str, str]
    node_data: dict[str, str]


def _csv_text(file: str | Path | IO) -> str:
    raw = Path(file).read_bytes() if isinstance(file, str | Path) else file.read()
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ValueError("the CSV file is not UTF-8 text") from None
    return raw.lstrip("\ufeff")


def _header(cells: list[str]) -> list[tuple[str, str]]:
    """(destination, key) per column: ("date"|"user"|"node", key); raises ValueError on a bad header."""
    columns: list[tuple[str, str]] = []
    for cell in (c.strip() for c in cells):
        lower = cell.lower()
        if lower == "date":
            columns.append(("date", "date"))
        elif lower == "wmktid":
            columns.append(("node", "wmktId"))
        elif lower in USER_COLUMNS:
            columns.append(("user", lower))
        elif lower.startswith("user.") and cell[5:]:
            columns.append(("user", cell[5:]))
        elif lower.startswith("node.") and cell[5:]:
            columns.append(("node", cell[5:]))
        elif cell:
            columns.append(("node", cell))
        else:
            raise ValueError("row 1 (header): a column has no name")
    duplicates = sorted({f"{d}.{k}" for d, k in columns if columns.count((d, k)) > 1})
    if duplicates:
        raise ValueError(f"row 1 (header): columns given twice: {', '.join(duplicates)}")
    missing = [name for name, col in (("date", ("date", "date")), ("wmktId", ("node", "wmktId"))) if col not in columns]
    if missing:
        raise ValueError(f"row 1 (header): missing column {' and '.join(missing)} (see the header convention)")
    return columns


def user_data_problems(user_data: dict[str, Any]) -> list[str]:
    """What is wrong with the identity fields of an offline interaction's userData (email, phone)."""
    problems = []
    if "email" in user_data:
        try:
            validate_email(user_data["email"])
        except ValidationError:
            problems.append(f"email {user_data['email']!r} is not a valid email address")
    if "phone" in user_data:
        phone = user_data["phone"]
        if not isinstance(phone, str) or not PHONE.match(phone) or sum(c.isdigit() for c in phone) < 6:
            problems.append(f"phone {phone!r} is not a phone number")
    return problems


def _row(number: int, columns: list[tuple[str, str]], cells: list[str]) -> _Row:
    """One data row checked; raises ValueError with the reason."""
    if len(cells) != len(columns):
        raise ValueError(f"has {len(cells)} cells, the header has {len(columns)}")
    values: dict[str, dict[str, str]] = {"date": {}, "user": {}, "node": {}}
    for (dest, key), cell in zip(columns, cells, strict=True):
        if cell.strip():
            values[dest][key] = cell.strip()
    problems = []
    date = timezone.now()
    if "date" not in values["date"]:
        problems.append("date is empty")
    else:
        try:
            date = parse_rfc3339(values["date"]["date"])
        except ValueError as exc:
            problems.append(f"date {values['date']['date']!r} is {exc}")
    if not values["node"].get("wmktId"):
        problems.append("wmktId is empty (Webmarketer needs it to find the advertiser node)")
    user_data = values["user"]
    if not user_data:
        problems.append("no user column filled (email, phone or user.*)")
    problems += user_data_problems(user_data)
    if problems:
        raise ValueError("; ".join(problems))
    return _Row(number, date, user_data, values["node"])


def _interaction_key(date: datetime, user_data: dict[str, Any], node_data: dict[str, Any]) -> tuple[float, str, str]:
    """What makes two offline interactions the same one: the instant, and the data with its keys in any order."""
    return (
        date.timestamp(),
        json.dumps(user_data, sort_keys=True, ensure_ascii=False),
        json.dumps(node_data, sort_keys=True, ensure_ascii=False),
    )


def _already_sent(connection: VendorConnection, rows: list[_Row]) -> dict[tuple[float, str, str], OfflineInteraction]:
    """The interactions among these rows that this connection already received (status sent), by their key."""
    dates = {row.date for row in rows}
    found = OfflineInteraction.objects.filter(
        connection=connection, status=OfflineInteraction.Status.SENT, date__in=dates
    ).order_by("created_at", "id")
    return {_interaction_key(r.date, r.user_data, r.node_data): r for r in found}


def offline_interactions_import_csv(
    *,
    connection: VendorConnection,
    file: str | Path | IO,
    user: Any = None,
    max_rows: int | None = None,
    resend: bool = False,
) -> ImportReport:
    """Check every row of a CSV file of offline interactions (module docstring: the header convention), then
    send the valid ones; the report has one line per row. A bad header, or more than `max_rows` data rows,
    raises ValueError and nothing is sent. A row this connection already received (same date, userData and
    nodeData, sent) is reported as already sent and not sent again, unless `resend`."""
    text = _csv_text(file)
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)
    records = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    if not records:
        raise ValueError("the CSV file is empty: it needs a header row (see the header convention)")
    columns = _header(records[0])
    filled = sum(1 for cells in records[1:] if any(c.strip() for c in cells))
    if max_rows is not None and filled > max_rows:
        raise ValueError(
            f"the file has {filled} rows; at most {max_rows} are taken here (each row is one call to Webmarketer): "
            "split it, or use manage.py import_offline_interactions"
        )
    name = Path(str(file if isinstance(file, str | Path) else getattr(file, "name", "") or "upload.csv")).name
    reports: dict[int, RowReport] = {}
    valid: list[_Row] = []
    # Every row is checked before anything is sent, so staff see all the mistakes of the file at once.
    for number, cells in enumerate(records[1:], start=2):
        if not any(c.strip() for c in cells):
            continue
        try:
            valid.append(_row(number, columns, cells))
        except ValueError as exc:
            reports[number] = RowReport(number, "invalid", str(exc))
    _session(connection)  # a misconfigured connection fails once, not once per row
    # Webmarketer keeps no key to recognise an interaction twice: a file imported again would count twice.
    sent_before = {} if resend else _already_sent(connection, valid)
    for row in valid:
        key = _interaction_key(row.date, row.user_data, row.node_data)
        if earlier := sent_before.get(key):
            when = timezone.localtime(earlier.created_at)  # the console's time zone: UTC
            origin = f" ({earlier.origin})" if earlier.origin else ""
            message = f"already sent on {when:%Y-%m-%d %H:%M} UTC{origin}"
            reports[row.number] = RowReport(row.number, "already_sent", message, earlier.pk)
            continue
        record = offline_interaction_send(
            connection=connection,
            date=row.date,
            user_data=row.user_data,
            node_data=row.node_data,
            origin=f"{name} row {row.number}",
        )
        message = "" if record.status == OfflineInteraction.Status.SENT else record.answer
        reports[row.number] = RowReport(row.number, record.status, message, record.pk)
        if record.status == OfflineInteraction.Status.SENT and not resend:
            sent_before[key] = record  # the same row twice in one file goes once
    report = ImportReport([reports[n] for n in sorted(reports)])
    audit_record(
        user=user,
        action="offline_interactions.import",
        target=connection,
        details={
            "file": name,
            "rows": len(report.rows),
            "sent": report.sent,
            "already_sent": report.already_sent,
            "failed": report.failed,
            "resend": resend,
        },
    )
    return report
