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
from ..models import Delivery, Event, EventType, VendorConnection, VendorKind
from ..selectors import event_delivery_badges, events_filter, keyset_page
from ..services import webmarketer
from ..services.replay import event_replay, vendors_without_dedup
from ..vendors.base import storable
from .base import HtmxHttpRequest, day_bound, list_template, permission_required


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
        "connection": params.get("connection", ""),
    }
    # The log shows no data: not loading it keeps any stored row (even one json cannot read back) listable.
    events = events_filter(**filters).defer("data")
    page = keyset_page(events, field="received_at", cursor=params.get("after", ""))
    event_delivery_badges(page.items)  # where each row stands at each vendor: two queries for the page
    query = params.copy()
    query.pop("after", None)
    context = {
        "page": page,
        "query": query.urlencode(),
        "params": params,
        "event_types": EventType.objects.values_list("reference", flat=True),
        "statuses": Event.Status.choices,
        "delivery_statuses": Delivery.Status.choices,
        "connections": VendorConnection.objects.values_list("pk", "name"),
    }
    template = list_template(
        request,
        page="tracking/events/list.html",
        rows="tracking/events/_rows.html",
        table="tracking/events/_table.html",
        table_id="event-table",
    )
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


def _deliveries_context(request: HtmxHttpRequest, event: Event) -> dict:
    """What the deliveries section needs: the rows (attempts prefetched), which are the latest per connection
    (those get a replay button), whether one is still owed (the section polls then)."""
    deliveries = list(
        event.deliveries.select_related("connection")
        .prefetch_related("attempt_set")
        .order_by("connection__name", "generation")
    )
    latest = {d.connection_id: d for d in deliveries}  # ordered by generation within a connection: the last wins
    return {
        "event": event,
        "deliveries": deliveries,
        "latest_ids": {d.pk for d in latest.values()},
        "undelivered": any(d.status != Delivery.Status.DELIVERED for d in latest.values()),
        "in_flight": any(d.status in IN_FLIGHT for d in latest.values()),
        "can_replay": request.user.has_perm("tracking.change_event") and event.status == Event.Status.OK,
        "webmarketer": VendorKind.WEBMARKETER,
    }


IN_FLIGHT = (Delivery.Status.PENDING, Delivery.Status.SENDING, Delivery.Status.RETRYING)


@require_GET
@permission_required("tracking.view_event")
def event_detail(request: HtmxHttpRequest, uuid) -> HttpResponse:
    event = get_object_or_404(Event.objects.select_related("event_type", "source").defer("data"), uuid=uuid)
    return render(
        request,
        "tracking/events/detail.html",
        {
            **_deliveries_context(request, event),
            "errors": shown(event.errors),
            "data_json": _data_json(event),
            # What a Segment call brought beside the data (context, traits, ids): route mappings read it.
            "context_json": shown(json.dumps(event.context, indent=2, ensure_ascii=False)) if event.context else "",
            "trashed": event.trashed.select_related("connection"),
        },
    )


@require_GET
@permission_required("tracking.view_event")
def event_deliveries(request: HtmxHttpRequest, uuid) -> HttpResponse:
    """The deliveries section alone (polled while one is owed, and after a replay)."""
    event = get_object_or_404(Event.objects.defer("data"), uuid=uuid)
    return render(request, "tracking/events/_deliveries.html", _deliveries_context(request, event))


@require_POST
@permission_required("tracking.view_event", "tracking.change_event")
def event_replay_view(request: HtmxHttpRequest, uuid) -> HttpResponse:
    """Replay the deliveries not delivered; with `delivery`, only that one's connection. A delivered one is sent
    again only with `confirm`, after a confirmation naming the vendors that would hold it twice."""
    event = get_object_or_404(Event.objects.defer("data"), uuid=uuid)
    notes: list[tuple[str, str]] = []
    confirm = None
    connection_ids = None
    include_delivered = False
    if pk := request.POST.get("delivery", ""):
        delivery = get_object_or_404(
            Delivery.objects.select_related("connection"), pk=pk if pk.isdigit() else 0, event=event
        )
        connection_ids = [delivery.connection_id]
        include_delivered = request.POST.get("confirm") == "1"
        if delivery.status == Delivery.Status.DELIVERED and not include_delivered:
            confirm = {
                "delivery": delivery,
                "names": [delivery.connection.name],
                "without_dedup": vendors_without_dedup([delivery.connection]),
            }
    if confirm is None:
        try:
            created = event_replay(
                event=event, user=request.user, connection_ids=connection_ids, include_delivered=include_delivered
            )
        except ValueError as exc:
            notes.append(("error", str(exc)))
        else:
            names = ", ".join(sorted({d.connection.name for d in created}))
            notes.append(("success", f"Replayed: {len(created)} deliveries queued again (same nonce): {names}."))
    if not request.htmx:
        for level, text in notes:
            getattr(messages, level)(request, text)
        if confirm is None:
            return redirect(reverse("console:event-detail", args=[event.uuid]))
    context = {**_deliveries_context(request, event), "replay_messages": notes, "confirm": confirm}
    if not request.htmx:
        return render(
            request,
            "tracking/events/detail.html",
            {**context, "errors": shown(event.errors), "data_json": _data_json(event), "trashed": event.trashed.all()},
        )
    return render(request, "tracking/events/_deliveries.html", context)


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
