"""Segment-compatible ingest: each source's Segment settings (audited), the profiles its identify, alias and group
calls keep, and Segment messages turned into events by the ingest service (same validation, nonce dedup, outbox
and deliveries as /api/v1/events). The mapping itself is pure: tracking/segment.py."""

from __future__ import annotations

import json
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from ..models import (
    SEGMENT_CALLS,
    EventType,
    SegmentGroup,
    SegmentIdentity,
    SegmentProfile,
    SegmentSettings,
    Source,
)
from ..schema import storable_copy
from ..segment import (
    EVENT_CALLS,
    SegmentConfig,
    message_ids,
    message_map,
    message_traits,
    profile_refusal,
)
from .audit import audit_record
from .ingest import IngestExtra, IngestResult, events_ingest

SETTINGS_FIELDS = ("calls", "event_aliases", "property_renames", "page_view_type", "cors_origins")
# A profile's traits past this size as JSON: the newest identify's traits replace them instead of merging.
MAX_TRAITS_BYTES = 64 * 1024
ORIGIN = re.compile(r"^https?://[a-z0-9.-]+(:\d{1,5})?$|^https?://\[[0-9a-f:]+\](:\d{1,5})?$")
MAX_TABLE = 500  # entries of an alias or rename table


# -- settings ---------------------------------------------------------------------------------------------
def segment_settings_get(*, source: Source) -> SegmentSettings:
    """The source's Segment settings; unsaved defaults (every call, no tables, CORS off) when it has none."""
    try:
        return source.segment
    except SegmentSettings.DoesNotExist:
        return SegmentSettings(source=source)


def segment_config(settings: SegmentSettings) -> SegmentConfig:
    return SegmentConfig(
        calls=frozenset(settings.calls or ()),
        event_aliases=dict(settings.event_aliases or {}),
        property_renames=dict(settings.property_renames or {}),
        page_view_type=settings.page_view_type.reference if settings.page_view_type_id else "",
    )


def segment_settings_problems(
    *, calls: Any, event_aliases: Any, property_renames: Any, page_view_type: Any, cors_origins: Any
) -> dict[str, list[str]]:
    """What is wrong with these settings, per field ({} when they can be saved)."""
    problems: dict[str, list[str]] = {}
    if not isinstance(calls, list) or any(c not in SEGMENT_CALLS for c in calls):
        problems["calls"] = [f"calls are a list of {', '.join(SEGMENT_CALLS)}"]
    for name, table in (("event_aliases", event_aliases), ("property_renames", property_renames)):
        if not isinstance(table, dict) or any(not isinstance(v, str) or not v or not k for k, v in table.items()):
            problems[name] = ["a table of names to non-empty names"]
        elif len(table) > MAX_TABLE:
            problems[name] = [f"at most {MAX_TABLE} entries"]
        elif any(len(k) > 200 or len(v) > 200 for k, v in table.items()):
            problems[name] = ["names are at most 200 characters"]
    if isinstance(event_aliases, dict) and "event_aliases" not in problems:
        refs = set(EventType.objects.filter(archived_at__isnull=True).values_list("reference", flat=True))
        unknown = sorted({v for v in event_aliases.values() if v not in refs})
        if unknown:
            problems["event_aliases"] = [f"no (unarchived) event type has the reference {', '.join(unknown)}"]
    if page_view_type is not None and not isinstance(page_view_type, EventType):
        problems["page_view_type"] = ["an event type, or none"]
    if not isinstance(cors_origins, list) or any(not isinstance(o, str) or not ORIGIN.match(o) for o in cors_origins):
        problems["cors_origins"] = [
            "origins are scheme://host[:port] in lowercase, without a path (e.g. https://www.example.com)"
        ]
    return problems


@transaction.atomic
def segment_settings_update(*, source: Source, user=None, **changes: Any) -> SegmentSettings:
    """Change a source's Segment settings (any of SETTINGS_FIELDS), checked first (ValidationError: nothing saved),
    audited with what changed."""
    unknown = set(changes) - set(SETTINGS_FIELDS)
    if unknown:
        raise TypeError(f"segment_settings_update() got unknown fields: {', '.join(sorted(unknown))}")
    settings = segment_settings_get(source=source)
    values = {name: changes.get(name, getattr(settings, name)) for name in SETTINGS_FIELDS}
    problems = segment_settings_problems(**values)
    if problems:
        raise ValidationError(problems)
    changed = [name for name in SETTINGS_FIELDS if name in changes and getattr(settings, name) != changes[name]]
    for name, value in values.items():
        setattr(settings, name, value)
    settings.save()
    details = {name: _shown(getattr(settings, name)) for name in SETTINGS_FIELDS}
    audit_record(user=user, action="segment_settings.update", target=source, details={**details, "fields": changed})
    return settings


def _shown(value: Any) -> Any:
    return value.reference if isinstance(value, EventType) else value


def segment_cors_allowed(*, origin: str, source: Source | None = None) -> bool:
    """Whether a browser at `origin` may post this source's Segment calls (any source's, when None: a preflight
    carries no write key). Off unless a source lists the origin."""
    origin = origin.lower()
    rows = SegmentSettings.objects.filter(source__enabled=True)
    if source is not None:
        rows = rows.filter(source=source)
    return any(origin in (o.lower() for o in row) for row in rows.values_list("cors_origins", flat=True))


# -- profiles: identify, alias, group ---------------------------------------------------------------------
def profile_traits(*, ids: list[str], known: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The traits known for these ids (userId first, then anonymousId): the userId's win. `known`: the traits by
    id already read (identities_traits) for a batch, instead of a query per message."""
    if not ids:
        return {}
    by_id = identities_traits(ids=ids) if known is None else known
    traits: dict[str, Any] = {}
    for external_id in reversed(ids):
        traits.update(by_id.get(external_id) or {})
    return traits


def identities_traits(*, ids: list[str]) -> dict[str, dict[str, Any]]:
    """The traits of each of these ids' profile (ids with no profile left out), in one query."""
    rows = SegmentIdentity.objects.filter(external_id__in=ids).values_list("external_id", "profile__traits")
    return {external_id: traits or {} for external_id, traits in rows}


def _merged(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    merged = {**old, **new}
    size = len(json.dumps(merged, ensure_ascii=False, default=str).encode())
    return merged if size <= MAX_TRAITS_BYTES else dict(new)


@transaction.atomic
def profile_join(*, ids: list[str]) -> SegmentProfile:
    """The one profile of these ids: theirs, joined (traits merged, the first id's win) when they were several,
    or a new one; every id then names it."""
    identities = list(SegmentIdentity.objects.select_for_update().filter(external_id__in=ids).select_related("profile"))
    rank = {external_id: n for n, external_id in enumerate(ids)}
    identities.sort(key=lambda i: rank[i.external_id])
    profile = identities[0].profile if identities else SegmentProfile.objects.create()
    others = {i.profile_id: i.profile for i in identities if i.profile_id != profile.pk}
    if others:
        traits: dict[str, Any] = {}
        for other in others.values():
            traits.update(other.traits)
        profile.traits = _merged(traits, profile.traits)
        profile.group_id = profile.group_id or next((o.group_id for o in others.values() if o.group_id), "")
        profile.save()
        SegmentIdentity.objects.filter(profile_id__in=others).update(profile=profile)
        SegmentProfile.objects.filter(pk__in=others).delete()
    known = {i.external_id for i in identities}
    SegmentIdentity.objects.bulk_create(
        [SegmentIdentity(external_id=i, profile=profile) for i in ids if i not in known], ignore_conflicts=True
    )
    return profile


@transaction.atomic
def profile_identify(*, ids: list[str], traits: dict[str, Any]) -> SegmentProfile:
    """An identify call: its ids name one profile (joined), its traits merge into that profile's (latest wins)."""
    profile = profile_join(ids=ids)
    profile.traits = _merged(profile.traits, storable_copy(traits)[0])
    profile.save(update_fields=["traits", "updated_at"])
    return profile


@transaction.atomic
def profile_alias(*, previous_id: str, user_id: str) -> SegmentProfile:
    """An alias call: the previous id (e.g. an anonymousId) and the userId are one person from now on."""
    return profile_join(ids=[user_id, previous_id])


@transaction.atomic
def group_store(*, ids: list[str], group_id: str, traits: dict[str, Any]) -> SegmentGroup:
    """A group call: the group's traits merge into its record, and the user's profile belongs to it."""
    group, _ = SegmentGroup.objects.select_for_update().get_or_create(group_id=group_id)
    group.traits = _merged(group.traits, storable_copy(traits)[0])
    group.save()
    profile = profile_join(ids=ids)
    if profile.group_id != group_id:
        profile.group_id = group_id
        profile.save(update_fields=["group_id", "updated_at"])
    return group


def _profile_apply(message: dict[str, Any], call: str) -> None:
    ids = message_ids(message)
    if call == "identify":
        profile_identify(ids=ids, traits=message_traits(message))
    elif call == "alias":
        profile_alias(previous_id=str(message["previousId"]), user_id=str(message["userId"]))
    else:
        group_store(ids=ids, group_id=str(message["groupId"]), traits=message_traits(message))


# -- messages ---------------------------------------------------------------------------------------------
def segment_messages_ingest(
    *, source: Source, messages: list[Any], call: str | None = None, batch_context: Any = None
) -> list[IngestResult]:
    """Segment messages, in order: identify, alias and group change profiles; track, page and screen (and any
    message refused: a call the source does not accept, an unknown event name, missing ids) become events through
    events_ingest, valid or kept as invalid with the reason. `call` is the endpoint's call (None: a batch, each
    message says its type). The results are those of the events, in order."""
    config = segment_config(segment_settings_get(source=source))
    known_types = frozenset(EventType.objects.filter(archived_at__isnull=True).values_list("reference", flat=True))
    items: list[Any] = []
    extras: list[IngestExtra] = []
    # The traits of every id the messages name, read once (again after an identify, alias or group changed them).
    ids_named = sorted({i for message in messages for i in message_ids(message)})
    known: dict[str, dict[str, Any]] | None = None
    for message in messages:
        kind = call or (message.get("type") if isinstance(message, dict) else None)
        kind = kind if isinstance(kind, str) and kind else "(none)"
        refusal = ""
        if isinstance(message, dict) and kind in SEGMENT_CALLS and kind not in EVENT_CALLS and kind in config.calls:
            refusal = profile_refusal(message, kind)
            if not refusal:
                _profile_apply(message, kind)
                known = None  # later messages of the batch see these traits
                continue
        if known is None:
            known = identities_traits(ids=ids_named) if ids_named else {}
        mapped = message_map(
            message,
            call=kind,
            config=config,
            traits=profile_traits(ids=message_ids(message), known=known),
            known_types=known_types,
            batch_context=batch_context,
            refusal=refusal,
        )
        items.append(mapped.item)
        extras.append(IngestExtra(context=mapped.context, errors=mapped.errors))
    return events_ingest(source=source, items=items, extras=extras) if items else []
