"""Event log, event detail (deliveries, attempts, replay), and the raw event as Webmarketer holds it."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.db.models import TextField
from django.db.models.functions import Cast
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from ..context_processors import console_nav
from ..models import Delivery, Event, EventType, VendorKind
from ..selectors import events_filter, keyset_page
from ..services import webmarketer
from ..services.replay import event_replay
from ..vendors.base import storable
from .base import HtmxHttpRequest, day_bound, permission_required


@require_GET
def home(request: HtmxHttpRequest) -> HttpResponse:
    """The first page the user may open (Sales land on the lead board)."""
    if not request.user.is_authenticated:
        return redirect("login")
    nav = console_nav(request)["console_nav"]
    if nav:
        return redirect(nav[0]["url"])
    return render(request, "tracking/no_access.html", status=403)


@require_GET
@permission_required("tracking.view_event")
def event_list(request: HtmxHttpRequest) -> HttpResponse:
    params = request.GET
    filters = {
        "event_type": params.get("event_type", ""),
        "status": params.get("status", ""),
        "delivery_status": params.get("delivery_status", ""),
        "since": day_bound(params.get("since", "")),
        "until": day_bound(params.get("until", ""), end=True),
        "q": params.get("q", ""),
    }
    # The log shows no data: not loading it keeps any stored row (even one json cannot read back) listable.
    events = events_filter(**filters).defer("data")
    page = keyset_page(events, field="received_at", cursor=params.get("after", ""))
    query = params.copy()
    query.pop("after", None)
    context = {
        "page": page,
        "query": query.urlencode(),
        "params": params,
        "event_types": EventType.objects.values_list("reference", flat=True),
        "statuses": Event.Status.choices,
        "delivery_statuses": Delivery.Status.choices,
    }
    # "Load more" and filter changes swap only the rows.
    template = "tracking/events/_rows.html" if request.htmx and params.get("after") else "tracking/events/list.html"
    if request.htmx and request.htmx.target == "event-table":
        template = "tracking/events/_table.html"
    return render(request, template, context)


def shown(value: Any) -> Any:
    """A stored value made printable: strings with lone surrogates or NUL (rows stored past ingest's checks)
    shown escaped, so the page can always be encoded."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, dict):
        return {shown(k): shown(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shown(v) for v in value]
    return value


def _data_json(event: Event) -> str:
    """The event's data pretty-printed; as stored (raw text) when it is nested too deeply to read or print."""
    try:
        return shown(json.dumps(event.data, indent=2, ensure_ascii=False))
    except (RecursionError, ValueError, TypeError):
        raw = Event.objects.filter(pk=event.pk).values_list(Cast("data", TextField()), flat=True).first()
        return shown(f"(nested too deeply to show formatted; as stored:)\n{raw}")


@require_GET
@permission_required("tracking.view_event")
def event_detail(request: HtmxHttpRequest, uuid) -> HttpResponse:
    event = get_object_or_404(Event.objects.select_related("event_type", "source").defer("data"), uuid=uuid)
    deliveries = (
        event.deliveries.select_related("connection")
        .prefetch_related("attempt_set")
        .order_by("connection__name", "generation")
    )
    return render(
        request,
        "tracking/events/detail.html",
        {
            "event": event,
            "errors": shown(event.errors),
            "data_json": _data_json(event),
            "deliveries": deliveries,
            "webmarketer": VendorKind.WEBMARKETER,
            "trashed": event.trashed.select_related("connection"),
        },
    )


@require_POST
@permission_required("tracking.change_event")
def event_replay_view(request: HtmxHttpRequest, uuid) -> HttpResponse:
    event = get_object_or_404(Event, uuid=uuid)
    try:
        created = event_replay(event=event, user=request.user)
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Replayed: {len(created)} deliveries queued again (same nonce).")
    return redirect(reverse("console:event-detail", args=[event.uuid]))


@require_GET
@permission_required("tracking.view_event")
def raw_event(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Fetched on demand: GET projects/{projectId}/events/{id} with the id Webmarketer gave the delivery."""
    delivery = get_object_or_404(Delivery.objects.select_related("connection"), pk=pk)
    context: dict = {"delivery": delivery}
    try:
        context["raw"] = json.dumps(webmarketer.raw_event_fetch(delivery=delivery), indent=2, ensure_ascii=False)
    except (webmarketer.AnswerError, ValueError) as exc:
        context["error"] = str(exc)
    return render(request, "tracking/events/_raw.html", context)
