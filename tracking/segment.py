"""Segment messages mapped onto the hub's events: pure functions (no ORM, no I/O), unit-tested on their own.

Reference: Segment HTTP Tracking API (https://segment.com/docs/connections/sources/catalog/libraries/server/http-api/):
track, identify, page, screen, group, alias and batch; a message is at most 32 KB, a batch at most 500 KB.

What goes where:
  track's `event`           → the event type: the source's alias table, else the name as an event type reference
  page / screen             → the source's page-view event type
  `properties`              → the event's data (keys renamed by the source's rename table; page/screen add name)
  `messageId`               → the nonce (an SDK's retry is the same event)
  `timestamp`, else `originalTimestamp`, else receipt → eventDate
  `userId`, else `anonymousId` → trackerId
  `context`, the user's traits, userId, anonymousId → the event's context (mappings: context.ip, traits.email …)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .consent import consent_from_segment_context
from .models import SEGMENT_CALLS
from .schema import FieldError

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
# A userId, anonymousId, previousId or groupId: the length of the profile store's columns.
MAX_ID = 200
# Calls that become events; identify, group and alias change profiles (and become an event only when refused).
EVENT_CALLS = ("track", "page", "screen")
# The event type reference of a refused identify, group or alias (or of a page with no page-view type): a colon is
# never in a reference, so such an event is never taken for a real type's.
REFUSED_PREFIX = "segment:"


@dataclass(frozen=True)
class SegmentConfig:
    """A source's Segment settings, as plain data."""

    calls: frozenset[str] = frozenset(SEGMENT_CALLS)
    event_aliases: dict[str, str] = field(default_factory=dict)
    property_renames: dict[str, str] = field(default_factory=dict)
    page_view_type: str = ""


@dataclass
class Mapped:
    """One message as an item for the ingest service (its envelope), the context kept with it and the reasons it
    is invalid (named first in the event's errors)."""

    item: Any
    context: dict[str, Any]
    errors: list[FieldError] = field(default_factory=list)


def message_bytes(message: Any) -> int:
    """The size of a message as JSON (UTF-8, compact), as Segment counts it against its 32 KB."""
    try:
        return len(json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str).encode())
    except (ValueError, TypeError, RecursionError):
        return 0  # what cannot be dumped is refused by the ingest's own checks, with its reason


def message_name(message: Any, index: int | None = None) -> str:
    """How an error names a message: its place in the batch and its messageId when it has one."""
    where = f"message {index}" if index is not None else "the message"
    if isinstance(message, dict) and isinstance(message.get("messageId"), str):
        return f"{where} (messageId {message['messageId'][:80]!r})"
    return where


def message_ids(message: Any) -> list[str]:
    """The message's ids: userId then anonymousId, those present (numbers as their text)."""
    if not isinstance(message, dict):
        return []
    ids = []
    for key in ("userId", "anonymousId"):
        value = message.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value:
            ids.append(value)
    return ids


def message_context(message: dict[str, Any], batch_context: Any = None) -> dict[str, Any]:
    """The message's context over the batch's (the batch's applies to every message; the message's wins)."""
    own = message.get("context")
    return {**(batch_context if isinstance(batch_context, dict) else {}), **(own if isinstance(own, dict) else {})}


def message_traits(message: dict[str, Any]) -> dict[str, Any]:
    """The traits an identify or group call sets (Segment also reads them from context.traits)."""
    traits = message.get("traits")
    if isinstance(traits, dict):
        return traits
    context = message.get("context")
    inner = context.get("traits") if isinstance(context, dict) else None
    return inner if isinstance(inner, dict) else {}


def _renamed(properties: Any, renames: dict[str, str]) -> Any:
    if not isinstance(properties, dict):
        return properties  # the ingest service says "data must be a JSON object", and keeps it
    return {renames.get(key, key): value for key, value in properties.items()}


def _tracker_id(message: dict[str, Any]) -> Any:
    for key in ("userId", "anonymousId"):
        value = message.get(key)
        if value is not None and value != "":
            return str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    return None


def _event_date(message: dict[str, Any]) -> Any:
    for key in ("timestamp", "originalTimestamp"):
        if message.get(key) not in (None, ""):
            return message[key]
    return None  # receipt


def message_map(
    message: Any,
    *,
    call: str,
    config: SegmentConfig,
    traits: dict[str, Any] | None = None,
    known_types: set[str] | frozenset[str] = frozenset(),
    batch_context: Any = None,
    refusal: str = "",
) -> Mapped:
    """One Segment message as an event item: a track, page or screen, or any message refused (`refusal`, or a
    call the source does not accept) kept as an invalid event. `traits` are the user's known traits;
    `known_types` the event type references, to name an unknown event name clearly."""
    if not isinstance(message, dict):
        return Mapped(item=message, context={}, errors=[FieldError("message", "must be a JSON object")])
    errors: list[FieldError] = []
    context = message_context(message, batch_context)
    kept: dict[str, Any] = {"call": call, "context": context}
    # The traits known for the user, with those the browser library sends in context.traits on top.
    known = {**(traits or {}), **(context.get("traits") if isinstance(context.get("traits"), dict) else {})}
    if known:
        kept["traits"] = known
    for key in ("userId", "anonymousId", "event", "name", "category", "groupId", "previousId"):
        if message.get(key) not in (None, ""):
            kept[key] = message[key]

    data: Any = _renamed(message.get("properties", {}), config.property_renames)
    event_type: Any = f"{REFUSED_PREFIX}{call}"
    if refusal:
        errors.append(FieldError(call, refusal))
    elif call not in SEGMENT_CALLS:
        errors.append(
            FieldError("type", f"unknown Segment call {call!r}: use {', '.join(SEGMENT_CALLS)}", message.get("type"))
        )
    elif call not in config.calls:
        errors.append(FieldError(call, f"this source does not accept Segment {call} calls (its Segment settings)"))
    elif call == "track":
        name = message.get("event")
        if not isinstance(name, str) or not name:
            errors.append(FieldError("event", "a track call needs an event name", name))
        else:
            event_type = config.event_aliases.get(name, name)
            if event_type not in known_types and name not in config.event_aliases:
                errors.append(
                    FieldError(
                        "event",
                        f"Segment event {name!r} names no event type: add it to the source's event aliases "
                        "(Segment settings) or create an event type with that reference",
                        name,
                    )
                )
    elif call in ("page", "screen"):
        if config.page_view_type:
            event_type = config.page_view_type
        else:
            errors.append(FieldError(call, f"{call} calls need the source's page-view event type (Segment settings)"))
        if isinstance(data, dict):
            # The page's name and category are data too, unless its properties already say them.
            data = {**{k: message[k] for k in ("name", "category") if message.get(k) not in (None, "")}, **data}
    if call in SEGMENT_CALLS and call not in EVENT_CALLS:
        if not errors:
            raise ValueError(f"a {call} call is not an event unless refused")
        # identify, group and alias become events only when refused: their traits are what staff need to see.
        data = message_traits(message)

    item: dict[str, Any] = {"eventType": event_type, "data": data}
    for key, value in (("eventDate", _event_date(message)), ("trackerId", _tracker_id(message))):
        if value is not None:
            item[key] = value
    if message.get("messageId") not in (None, ""):
        item["nonce"] = message["messageId"]
    # The person's consent as the call states it (context.consent.categoryPreferences); else the source's default.
    if (consent := consent_from_segment_context(context)) is not None:
        item["consent"] = consent
    return Mapped(item=item, context=kept, errors=errors)


def profile_refusal(message: dict[str, Any], call: str) -> str:
    """Why an identify, group or alias call cannot change a profile ("" when it can)."""
    if call == "alias":
        ids = [_id_text(message.get("previousId")), _id_text(message.get("userId"))]
        if not all(ids):
            return "an alias call needs a previousId and a userId"
    else:
        ids = message_ids(message)
        if not ids:
            return f"{'an' if call == 'identify' else 'a'} {call} call needs a userId or an anonymousId"
    if call == "group":
        group_id = _id_text(message.get("groupId"))
        if not group_id:
            return "a group call needs a groupId"
        ids.append(group_id)
    if any(len(i) > MAX_ID for i in ids):
        return f"ids are at most {MAX_ID} characters"
    traits = message.get("traits")
    if traits is not None and not isinstance(traits, dict):
        return "traits must be a JSON object"
    return ""


def _id_text(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) else ""
