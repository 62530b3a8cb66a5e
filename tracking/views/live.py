"""The live stream: newest events and delivery attempts as they happen, polled every 2 s from id cursors."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ..models import EventType, VendorConnection
from ..selectors import live_batch
from .base import HtmxHttpRequest, permission_required


def _cursor(value: str) -> int | None:
    return int(value) if value.isdigit() else None


@require_GET
@permission_required("tracking.view_event")
def live_stream(request: HtmxHttpRequest) -> HttpResponse:
    """The page (latest rows), or with cursors the rows newer than them and the poller moved past them."""
    params = request.GET
    filters = {"event_type": params.get("event_type", ""), "connection": params.get("connection", "")}
    polled = "e" in params or "a" in params
    batch = live_batch(
        event_cursor=_cursor(params.get("e", "")), attempt_cursor=_cursor(params.get("a", "")), **filters
    )
    context = {
        "batch": batch,
        "filters": filters,
        "params": params,
        "event_types": EventType.objects.values_list("reference", flat=True),
        "connections": VendorConnection.objects.values_list("pk", "name"),
    }
    if polled and request.htmx:
        return render(request, "tracking/live/_rows.html", {**context, "oob": True})
    return render(request, "tracking/live/page.html", context)
