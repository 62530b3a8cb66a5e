"""The dashboard: charts of what came in, what went out, what Webmarketer trashed and the lead funnel, read from
the rollups for one date range kept in the URL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from ..selectors import Window, dashboard_charts
from .base import HtmxHttpRequest, day_bound, permission_required

RANGES = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days", "custom": "Custom"}
DEFAULT_RANGE = "7d"
# Hourly bars up to two days, daily bars beyond; a custom range is capped at a bit over a year of days.
HOURLY_UP_TO = timedelta(days=2)
LONGEST = timedelta(days=400)


def window_from(params, now: datetime) -> tuple[Window, str, str]:
    """The window the GET parameters ask for (range=24h|7d|30d|custom with since/until days), the range
    actually used, and a problem in words when the custom dates could not be used."""
    chosen = params.get("range", DEFAULT_RANGE)
    if chosen not in RANGES:
        chosen = DEFAULT_RANGE
    next_hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    next_day = next_hour.replace(hour=0) + timedelta(days=1) if next_hour.hour else next_hour
    problem = ""
    if chosen == "custom":
        since, until = day_bound(params.get("since", "")), day_bound(params.get("until", ""), end=True)
        if since is None or until is None:
            problem = "Choose both days of the custom range (the last 7 days are shown)."
        elif until <= since:
            problem = "The custom range ends before it starts (the last 7 days are shown)."
        elif until - since > LONGEST:
            problem = f"A custom range spans at most {LONGEST.days} days (the last 7 days are shown)."
        else:
            step = "hour" if until - since <= HOURLY_UP_TO else "day"
            return Window(since, until, step), chosen, ""
        chosen = DEFAULT_RANGE
    if chosen == "24h":
        return Window(next_hour - timedelta(hours=24), next_hour, "hour"), chosen, problem
    days = 30 if chosen == "30d" else 7
    return Window(next_day - timedelta(days=days), next_day, "day"), chosen, problem


@require_GET
@permission_required("tracking.view_dashboard")
def dashboard(request: HtmxHttpRequest) -> HttpResponse:
    window, chosen, problem = window_from(request.GET, timezone.now())
    return render(
        request,
        "tracking/dashboard/page.html",
        {
            "charts": dashboard_charts(window),
            "window": window,
            "shown_until": window.until - timedelta(seconds=1),
            "range": chosen,
            "ranges": RANGES.items(),
            "params": request.GET,
            "problem": problem,
        },
    )
