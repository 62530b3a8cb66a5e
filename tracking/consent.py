"""Consent purposes: what an event's person agreed to, what a route needs, and how posted consent is read.

Pure functions (no ORM): ingest, the Segment-compatible surface, routes and the delivery service share them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

ANALYTICS = "analytics"
ADVERTISING = "advertising"
PERSONALISATION = "personalisation"
PURPOSES: tuple[str, ...] = (ANALYTICS, ADVERTISING, PERSONALISATION)
PURPOSE_LABELS = {
    ANALYTICS: "Analytics (measure)",
    ADVERTISING: "Advertising (attribution, ads)",
    PERSONALISATION: "Personalisation (recommendations)",
}
# Spellings read as one of ours (Segment/OneTrust category names, US spelling).
ALIASES = {
    "personalization": PERSONALISATION,
    "marketing": ADVERTISING,
    "ads": ADVERTISING,
    "targeting": ADVERTISING,
    "statistics": ANALYTICS,
    "performance": ANALYTICS,
}
# What a route to each vendor needs unless staff choose otherwise (issue 15: Webmarketer and Tracify do
# attribution, Algonomy personalises, Acquia and Tracardi measure).
DEFAULT_ROUTE_PURPOSES: dict[str, tuple[str, ...]] = {
    "webmarketer": (ADVERTISING,),
    "tracify": (ADVERTISING,),
    "algonomy": (PERSONALISATION,),
    "acquia": (ANALYTICS,),
    "tracardi": (ANALYTICS,),
}


class ConsentError(ValueError):
    """Posted consent that cannot be read; the message says why."""


def purpose_name(value: Any) -> str:
    """One purpose in our spelling; ConsentError for anything else."""
    if not isinstance(value, str):
        raise ConsentError(f"a purpose must be a string, not {type(value).__name__}")
    name = value.strip().lower()
    name = ALIASES.get(name, name)
    if name not in PURPOSES:
        raise ConsentError(f"unknown purpose {value[:50]!r} (known: {', '.join(PURPOSES)})")
    return name


def purposes_sorted(purposes: Iterable[str]) -> list[str]:
    """Purposes in PURPOSES order, without duplicates."""
    chosen = set(purposes)
    return [p for p in PURPOSES if p in chosen]


def consent_parse(value: Any) -> list[str]:
    """The purposes an event's `consent` grants: a list of purposes (["analytics", "advertising"]), or an object
    of purpose → true/false ({"advertising": false, "analytics": true}, as Segment's categoryPreferences).
    [] grants nothing. ConsentError for anything else (the event is kept as invalid and never sent)."""
    if isinstance(value, list):
        return purposes_sorted(purpose_name(v) for v in value)
    if isinstance(value, dict):
        granted = []
        for key, allowed in value.items():
            if not isinstance(allowed, bool):
                raise ConsentError(f"consent for {str(key)[:50]!r} must be true or false")
            if allowed:
                granted.append(purpose_name(key))
            else:
                purpose_name(key)  # an unknown purpose is an error even when refused
        return purposes_sorted(granted)
    raise ConsentError('must be a list of purposes (e.g. ["analytics"]) or an object of purpose → true/false')


def consent_from_segment_context(context: Any) -> list[str] | None:
    """The purposes a Segment call's `context.consent.categoryPreferences` grants, or None when the call says
    nothing about consent (the source's default then applies). Categories we do not know are ignored: Segment
    workspaces name their own (e.g. "functional"), and only ours decide a delivery."""
    if not isinstance(context, dict):
        return None
    consent = context.get("consent")
    preferences = consent.get("categoryPreferences") if isinstance(consent, dict) else None
    if not isinstance(preferences, dict):
        return None
    granted = set()
    for key, allowed in preferences.items():
        if allowed is True and isinstance(key, str):
            name = ALIASES.get(key.strip().lower(), key.strip().lower())
            if name in PURPOSES:
                granted.add(name)
    return purposes_sorted(granted)


def missing_purposes(needed: Iterable[str] | None, granted: Iterable[str] | None) -> list[str]:
    """The purposes a route needs that the event's consent does not grant ([] = it may be sent). An event
    without any consent recorded (None: stored before consent existed) grants everything."""
    if granted is None:
        return []
    have = set(granted)
    return [p for p in purposes_sorted(needed or ()) if p not in have]


def suppressed_reason(missing: Iterable[str]) -> str:
    """A suppressed delivery's last error: which purpose the person did not consent to."""
    return "suppressed: no consent for " + ", ".join(missing)


def default_route_purposes(kind: str) -> list[str]:
    return list(DEFAULT_ROUTE_PURPOSES.get(kind, ()))
