"""Route editor: list routes, create and edit them (mapping rows added and removed with HTMX), delete them,
and preview the exact request a vendor would receive for a logged event."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import TextField
from django.db.models.functions import Cast
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ..models import Event, EventType, Route
from ..route_forms import PATH_HELP, RouteForm, Row
from ..services.routes import route_create, route_delete, route_preview, route_update
from ..vendors.base import storable
from .base import HtmxHttpRequest, form_errors_add, permission_required

RECENT_EVENTS = 20


@require_GET
@permission_required("tracking.view_route")
def route_list(request: HtmxHttpRequest) -> HttpResponse:
    routes = Route.objects.select_related("event_type", "connection").order_by(
        "event_type__reference", "connection__name"
    )
    event_type = request.GET.get("event_type", "")
    if event_type:
        routes = routes.filter(event_type__reference=event_type)
    context = {
        "routes": routes,
        "event_type": event_type,
        "event_types": EventType.objects.values_list("reference", flat=True),
    }
    template = "tracking/routes/_table.html" if request.htmx else "tracking/routes/list.html"
    return render(request, template, context)


def _summary(data: str) -> str:
    """A few of the event's values, to tell recent events apart in the preview list (from the stored text:
    any row, even one nested too deeply to read back, gets a summary)."""
    try:
        values = json.loads(data)
    except (ValueError, RecursionError):
        values = None
    if not isinstance(values, dict):
        return "(data not readable)"
    parts = [f"{k}={v}" for k, v in values.items() if isinstance(v, str | int | float) and not isinstance(v, bool)]
    text = storable(", ".join(parts[:3]))
    return text if len(text) <= 70 else text[:69] + "…"


def _data_readable(event: Event) -> bool:
    try:
        event.data  # noqa: B018 (loads the deferred field)
    except (ValueError, RecursionError):
        return False
    return True


def _recent_events(form: RouteForm) -> list[Event]:
    event_type = form.selected_event_type()
    if event_type is None:
        return []
    events = list(
        Event.objects.filter(event_type=event_type, status=Event.Status.OK)
        .defer("data")
        .annotate(data_text=Cast("data", TextField()))
        .order_by("-received_at", "-id")[:RECENT_EVENTS]
    )
    for event in events:
        event.summary = _summary(event.data_text)
    return events


def _context(form: RouteForm, route: Route | None, *, can_edit: bool) -> dict:
    if not can_edit:
        form.make_read_only()
    return {
        "form": form,
        "route": route,
        "can_edit": can_edit,
        "path_help": PATH_HELP,
        "recent_events": _recent_events(form),
    }


def _save(request: HtmxHttpRequest, form: RouteForm, route: Route | None) -> Route | None:
    """Save through the services; their ValidationError lands on the form (nothing saved)."""
    if not form.is_valid():
        return None
    try:
        if route is None:
            return route_create(user=request.user, **form.values)
        return route_update(route=route, user=request.user, **form.values)
    except ValidationError as exc:
        form_errors_add(form, exc)
        return None


@require_http_methods(["GET", "POST"])
@permission_required("tracking.add_route")
def route_new(request: HtmxHttpRequest) -> HttpResponse:
    # "New route" from a connection page or the list filtered by event type: preselected.
    preset = {k: request.GET[k] for k in ("event_type", "connection") if request.GET.get(k)}
    form = RouteForm(request.POST if request.method == "POST" else None, preset=preset)
    if request.method == "POST" and (route := _save(request, form, None)):
        messages.success(request, f"Route saved: {route}.")
        return redirect(reverse("console:route-edit", args=[route.pk]))
    return render(request, "tracking/routes/edit.html", _context(form, None, can_edit=True))


@require_http_methods(["GET", "POST"])
@permission_required("tracking.view_route")
def route_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    route = get_object_or_404(Route.objects.select_related("event_type", "connection"), pk=pk)
    can_edit = request.user.has_perm("tracking.change_route")
    if request.method == "POST" and not can_edit:
        raise PermissionDenied("needs tracking.change_route")
    form = RouteForm(request.POST if request.method == "POST" else None, route=route)
    if request.method == "POST" and _save(request, form, route):
        messages.success(request, f"Route saved: {route}.")
        return redirect(reverse("console:route-edit", args=[route.pk]))
    return render(request, "tracking/routes/edit.html", _context(form, route, can_edit=can_edit))


@require_POST
@permission_required("tracking.delete_route")
def route_delete_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    route = get_object_or_404(Route.objects.select_related("event_type", "connection"), pk=pk)
    if not request.POST.get("confirm"):
        messages.error(request, "Tick the confirmation to delete this route.")
        return redirect(reverse("console:route-edit", args=[route.pk]))
    name = str(route)
    route_delete(route=route, user=request.user)
    messages.success(request, f"Route deleted: {name}. Its past deliveries are kept.")
    return redirect(reverse("console:route-list"))


def _form_from_query(request: HtmxHttpRequest) -> RouteForm:
    """The form as currently typed in the page (HTMX sends it along with the query); the saved route when
    the page shows it read-only (disabled fields are not sent)."""
    route = None
    if (route_id := request.GET.get("route", "")).isdigit():
        route = Route.objects.select_related("event_type", "connection").filter(pk=route_id).first()
    if route is not None and "connection" not in request.GET:
        return RouteForm(None, route=route)
    return RouteForm(request.GET, route=route)


@require_GET
@permission_required("tracking.view_route")
def route_vendor_part(request: HtmxHttpRequest) -> HttpResponse:
    """The vendor-dependent part of the form, re-rendered when the event type, connection or event name changes."""
    form = _form_from_query(request)
    can_edit = request.user.has_perm("tracking.change_route") or request.user.has_perm("tracking.add_route")
    return render(request, "tracking/routes/_vendor.html", _context(form, form.route, can_edit=can_edit))


@require_GET
@permission_required("tracking.view_route")
def route_mapping_row(request: HtmxHttpRequest) -> HttpResponse:
    """One empty mapping row, appended by the "Add a row" button."""
    return render(request, "tracking/routes/_row.html", {"row": Row(), "can_edit": True, "path_help": PATH_HELP})


@require_GET
@permission_required("tracking.view_route")
def route_preview_view(request: HtmxHttpRequest) -> HttpResponse:
    """The request(s) the vendor would receive for the chosen logged event under the route as typed."""
    form = _form_from_query(request)
    context: dict = {}
    connection = form.selected_connection()
    event = None
    if event_id := request.GET.get("preview_event", ""):
        event = Event.objects.filter(pk=event_id).defer("data").first() if event_id.isdigit() else None
    if connection is None:
        context["message"] = "Choose a connection first."
    elif event is None:
        context["message"] = "Choose a logged event to preview."
    elif not _data_readable(event):
        context["message"] = "This event's data is nested too deeply to read back: it cannot be previewed."
    else:
        values = form.route_values()
        context.update(
            preview=route_preview(connection=connection, event=event, **values),
            event=event,
            connection=connection,
            skipped=[r for r in form.rows if r.error],
        )
    return render(request, "tracking/routes/_preview.html", context)
