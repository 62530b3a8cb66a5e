"""Connection pages: list (kind, state, circuit, which secrets are set), a form per vendor kind with
write-only secrets, and a "Test connection" button that runs the vendor's auth flow."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ..connection_forms import SPECS, ConnectionForm, kind_choices
from ..models import VendorConnection
from ..selectors import connections_health
from ..services.connections import (
    connection_circuit_reset,
    connection_create,
    connection_pause_set,
    connection_test,
    connection_update,
)
from .base import HtmxHttpRequest, form_errors_add, permission_required


@require_GET
@permission_required("tracking.view_vendorconnection")
def connection_list(request: HtmxHttpRequest) -> HttpResponse:
    connections = list(VendorConnection.objects.annotate(route_count=Count("routes")).order_by("name"))
    health = connections_health([c.pk for c in connections])
    for connection in connections:
        connection.health = health[connection.pk]
    return render(request, "tracking/connections/list.html", {"connections": connections})


def _save(request: HtmxHttpRequest, form: ConnectionForm) -> VendorConnection | None:
    """Save through the services; their ValidationError lands on the form (nothing saved)."""
    if not form.is_valid():
        return None
    try:
        if form.connection is None:
            return connection_create(kind=form.kind, secrets=form.secrets, user=request.user, **form.result)
        return connection_update(connection=form.connection, secrets=form.secrets, user=request.user, **form.result)
    except ValidationError as exc:
        form_errors_add(form, exc)
        return None


@require_http_methods(["GET", "POST"])
@permission_required("tracking.add_vendorconnection")
def connection_new(request: HtmxHttpRequest) -> HttpResponse:
    data = request.POST if request.method == "POST" else request.GET
    kind = data.get("kind", "")
    form = ConnectionForm(request.POST, kind=kind) if request.method == "POST" and kind in SPECS else None
    if form is None and kind in SPECS:
        form = ConnectionForm(kind=kind)
    if form is not None and request.method == "POST" and (connection := _save(request, form)):
        messages.success(request, f"Connection {connection.name} saved. Use “Test connection” to try its sign-in.")
        return redirect(reverse("console:connection-edit", args=[connection.pk]))
    context = {"form": form, "kind": kind, "kinds": kind_choices(), "connection": None, "can_edit": True}
    if request.htmx and request.method == "GET":
        return render(request, "tracking/connections/_form.html", context)
    return render(request, "tracking/connections/edit.html", context)


@require_http_methods(["GET", "POST"])
@permission_required("tracking.view_vendorconnection")
def connection_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(VendorConnection, pk=pk)
    can_edit = request.user.has_perm("tracking.change_vendorconnection")
    if request.method == "POST" and not can_edit:
        raise PermissionDenied("needs tracking.change_vendorconnection")
    if connection.kind not in SPECS:
        raise PermissionDenied(f"no console form for connections of kind {connection.kind!r}: use the admin")
    form = ConnectionForm(
        request.POST if request.method == "POST" else None, kind=connection.kind, connection=connection
    )
    if request.method == "POST" and _save(request, form):
        messages.success(request, f"Connection {connection.name} saved.")
        return redirect(reverse("console:connection-edit", args=[connection.pk]))
    if not can_edit:
        for field in form.fields.values():
            field.disabled = True
    context = {
        "form": form,
        "kind": connection.kind,
        "connection": connection,
        "can_edit": can_edit,
        "routes": connection.routes.select_related("event_type").order_by("event_type__reference"),
    }
    connection.health = connections_health([connection.pk])[connection.pk]
    return render(request, "tracking/connections/edit.html", context)


@require_POST
@permission_required("tracking.change_vendorconnection")
def connection_test_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Run the vendor's auth flow with the saved settings and say how it went."""
    connection = get_object_or_404(VendorConnection, pk=pk)
    report = connection_test(connection=connection, user=request.user)
    if not request.htmx:
        messages.add_message(request, messages.SUCCESS if report.ok else messages.ERROR, report.message)
        return redirect(reverse("console:connection-edit", args=[connection.pk]))
    return render(request, "tracking/connections/_test.html", {"report": report, "connection": connection})


def _ops_answer(request: HtmxHttpRequest, connection: VendorConnection, note: str) -> HttpResponse:
    """The connection's operations box again (HTMX), or back to where the user was."""
    if not request.htmx:
        messages.success(request, note)
        return redirect(request.POST.get("next") or reverse("console:connection-edit", args=[connection.pk]))
    connection.health = connections_health([connection.pk])[connection.pk]
    return render(request, "tracking/connections/_ops.html", {"connection": connection, "ops_note": note})


@require_POST
@permission_required("tracking.view_vendorconnection", "tracking.change_vendorconnection")
def connection_pause_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Pause (send nothing, keep deliveries due) or resume (drain them): `paused` is "1" or "0"."""
    connection = get_object_or_404(VendorConnection, pk=pk)
    paused = request.POST.get("paused") == "1"
    connection_pause_set(connection=connection, paused=paused, user=request.user)
    note = (
        f"{connection.name} paused: nothing is sent, deliveries stay due." if paused else f"{connection.name} resumed."
    )
    return _ops_answer(request, connection, note)


@require_POST
@permission_required("tracking.view_vendorconnection", "tracking.change_vendorconnection")
def connection_circuit_reset_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    connection = get_object_or_404(VendorConnection, pk=pk)
    connection_circuit_reset(connection=connection, user=request.user)
    return _ops_answer(request, connection, f"Circuit of {connection.name} closed: sending resumes.")
