"""Trash inbox: the events Webmarketer could not process, each error in words; fix and replay (new nonce),
or dismiss, one by one or in bulk."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import F, QuerySet
from django.http import HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from ..forms import DismissForm, TrashFixForm
from ..models import TrashedEvent, VendorConnection, VendorKind, WebmarketerSync
from ..services import webmarketer
from .base import HtmxHttpRequest, permission_required

PAGE_SIZE = 50
STATES = (("open", "open"), ("resolved", "resolved"), ("all", "all"))
FILTERS = ("state", "event_type", "connection")


def trash_filter(*, state: str = "open", event_type: str = "", connection: str = "") -> QuerySet[TrashedEvent]:
    """Trash items newest first (by Webmarketer's processing date), filtered."""
    items = TrashedEvent.objects.select_related("connection", "event", "replay_delivery", "resolved_by")
    if state == "open":
        items = items.filter(resolved=False)
    elif state == "resolved":
        items = items.filter(resolved=True)
    if event_type:
        items = items.filter(event_type_ref=event_type)
    if connection.isdigit():
        items = items.filter(connection_id=int(connection))
    return items.order_by(F("processing_date").desc(nulls_last=True), "-id")


def _params(source: QueryDict) -> dict[str, str]:
    params = {key: source.get(key, "") for key in FILTERS}
    params["state"] = params["state"] or "open"
    return params


def _table_context(source: QueryDict) -> dict[str, Any]:
    params = _params(source)
    page = Paginator(trash_filter(**params), PAGE_SIZE).get_page(source.get("page"))
    for item in page:
        item.explained = [webmarketer.trash_error_explain(e) for e in item.errors]
    query = QueryDict(mutable=True)
    query.update({k: v for k, v in params.items() if v})
    return {"page": page, "params": params, "query": query.urlencode(), "page_number": page.number}


def _connections() -> list[VendorConnection]:
    connections = list(VendorConnection.objects.filter(kind=VendorKind.WEBMARKETER).order_by("name"))
    pulled = dict(
        WebmarketerSync.objects.filter(connection__in=connections).values_list("connection_id", "trash_pulled_at")
    )
    for connection in connections:
        connection.trash_pulled_at = pulled.get(connection.pk)  # type: ignore[attr-defined]
    return connections


@require_GET
@permission_required("tracking.view_trashedevent")
def trash_list(request: HtmxHttpRequest) -> HttpResponse:
    context = _table_context(request.GET)
    if request.htmx and request.htmx.target == "trash-table":
        return render(request, "tracking/trash/_table.html", context)
    context |= {
        "states": STATES,
        "connections": _connections(),
        "event_types": TrashedEvent.objects.order_by("event_type_ref")
        .values_list("event_type_ref", flat=True)
        .distinct(),
    }
    return render(request, "tracking/trash/list.html", context)


def _back_to_list(source: QueryDict) -> str:
    query = QueryDict(mutable=True)
    query.update({k: v for k, v in _params(source).items() if v and not (k == "state" and v == "open")})
    return reverse("console:trash-list") + (f"?{query.urlencode()}" if query else "")


@require_POST
@permission_required("tracking.change_trashedevent")
def trash_pull(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Pull the connection's trash now (the beat task does it periodically)."""
    connection = get_object_or_404(VendorConnection, pk=pk, kind=VendorKind.WEBMARKETER)
    try:
        pulled = webmarketer.trash_pull(connection=connection)
    except (webmarketer.AnswerError, ValueError) as exc:
        messages.error(request, f"Pulling the trash of {connection.name} failed: {exc}")
    else:
        messages.success(
            request,
            f"Pulled the trash of {connection.name}: {pulled.fetched} listed, {pulled.stored} new, "
            f"{pulled.linked} linked to our events.",
        )
    return redirect(_back_to_list(request.POST))


@require_POST
@permission_required("tracking.change_trashedevent")
def trash_dismiss_bulk(request: HtmxHttpRequest) -> HttpResponse:
    """Dismiss the selected rows (checkboxes) with one note."""
    ids = [int(i) for i in request.POST.getlist("ids") if i.isdigit()]
    form = DismissForm(request.POST)
    note = form.cleaned_data["note"].strip() if form.is_valid() else ""
    if not ids:
        messages.warning(request, "Select the rows to dismiss first.")
    elif not form.is_valid():
        messages.error(request, "The note is at most 1000 characters.")
    else:
        count = webmarketer.trash_dismiss(items=TrashedEvent.objects.filter(pk__in=ids), user=request.user, note=note)
        skipped = len(ids) - count
        text = f"{count} trashed event{'s' if count != 1 else ''} dismissed."
        if skipped:
            text += f" {skipped} were already resolved."
        messages.success(request, text)
    if request.htmx:
        return render(request, "tracking/trash/_table.html", _table_context(request.POST))
    return redirect(_back_to_list(request.POST))


def _fix_form(trashed: TrashedEvent, data: QueryDict | None = None) -> TrashFixForm | None:
    """The fix form, when there is something to fix: an open item linked to one of our typed events."""
    event = trashed.event
    if trashed.resolved or event is None or event.event_type is None:
        return None
    return TrashFixForm(
        data,
        fields=webmarketer.trash_fix_fields(trashed=trashed),
        original=event.data,
        in_error=webmarketer.trash_error_keys(trashed.errors),
    )


def _detail(request: HtmxHttpRequest, trashed: TrashedEvent, form: TrashFixForm | None) -> HttpResponse:
    context = {
        "trashed": trashed,
        "explained": [webmarketer.trash_error_explain(e) for e in trashed.errors],
        "raw": json.dumps(trashed.raw, indent=2, ensure_ascii=False),
        "event": trashed.event,
        "event_data": json.dumps(trashed.event.data, indent=2, ensure_ascii=False) if trashed.event else "",
        "form": form,
        "dismiss_form": DismissForm(),
    }
    if request.htmx and request.htmx.target == "trash-fix":
        return render(request, "tracking/trash/_fix.html", context)
    return render(request, "tracking/trash/detail.html", context)


def _trashed(pk: int) -> TrashedEvent:
    return get_object_or_404(
        TrashedEvent.objects.select_related("connection", "event__event_type", "replay_delivery", "resolved_by"), pk=pk
    )


@require_GET
@permission_required("tracking.view_trashedevent")
def trash_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    trashed = _trashed(pk)
    return _detail(request, trashed, _fix_form(trashed))


@require_POST
@permission_required("tracking.change_trashedevent")
def trash_replay(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Fix the event's data and send it again with a new nonce; refused fixes are shown next to the inputs."""
    trashed = _trashed(pk)
    detail_url = reverse("console:trash-detail", args=[trashed.pk])
    form = _fix_form(trashed, request.POST)
    if form is None:
        messages.error(request, "This trashed event cannot be fixed here (resolved, or not one of our events).")
        return HttpResponseClientRedirect(detail_url) if request.htmx else redirect(detail_url)
    form.is_valid()  # every input is optional: the event type's rules are checked by trash_replay
    try:
        delivery = webmarketer.trash_replay(
            trashed=trashed, data=form.fixed_data(), user=request.user, note=form.cleaned_data["note"].strip()
        )
    except webmarketer.FixInvalid as exc:
        form.errors_show(exc.errors)
    except ValueError as exc:  # resolved meanwhile, or the event lost its type
        messages.error(request, f"Not replayed: {exc}.")
        return HttpResponseClientRedirect(detail_url) if request.htmx else redirect(detail_url)
    else:
        messages.success(
            request,
            f"Fixed and replayed: delivery #{delivery.pk} to {trashed.connection.name} with the new nonce "
            f"{delivery.nonce}. Its progress shows below.",
        )
        url = reverse("console:event-detail", args=[trashed.event.uuid]) + f"#delivery-{delivery.pk}"
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    return _detail(request, trashed, form)


@require_POST
@permission_required("tracking.change_trashedevent")
def trash_dismiss_one(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    trashed = _trashed(pk)
    form = DismissForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The note is at most 1000 characters.")
        return redirect("console:trash-detail", pk=trashed.pk)
    if webmarketer.trash_dismiss(items=[trashed], user=request.user, note=form.cleaned_data["note"].strip()):
        messages.success(request, f"Dismissed {trashed.wm_id}.")
    else:
        messages.warning(request, f"{trashed.wm_id} was already resolved.")
    return redirect("console:trash-list")
