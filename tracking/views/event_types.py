"""Event types: the mirror of Webmarketer's (list, sync), the editor (rows added and removed with HTMX),
push, and conflicts shown side by side."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Prefetch, Q
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from ..forms import SECTIONS, EventTypeEditor, PushForm, row_new
from ..models import EventType, EventTypeConflict, VendorConnection, VendorKind, WebmarketerSync
from ..schema import DATA_ENTITIES
from ..services import webmarketer
from ..services.event_types import EventTypeInvalid, event_type_push_body, event_type_save, event_type_sync_state
from ..services.webmarketer import event_type_document
from .base import HtmxHttpRequest, permission_required

PAGE_SIZE = 50
NO_UPDATE_HINT = (
    "Webmarketer's API creates event types but cannot update them: make the same change in Webmarketer; "
    "the next sync then finds both sides equal."
)


def pull_words(summary: dict[str, Any]) -> str:
    """A sync's summary in words, e.g. "2 created (a, b); 1 unchanged"."""
    parts = []
    for key, words in (
        ("created", "created here"),
        ("updated", "updated from Webmarketer"),
        ("archived", "archived in Webmarketer"),
        ("conflicts", "changed on both sides (conflict: nothing overwritten)"),
        ("local_ahead", "changed here only (kept)"),
    ):
        references = summary.get(key) or []
        if references:
            parts.append(f"{len(references)} {words}: {', '.join(references)}")
    if summary.get("unchanged"):
        parts.append(f"{summary['unchanged']} unchanged")
    return "; ".join(parts) or "Webmarketer has no event type"


def _connections() -> list[VendorConnection]:
    connections = list(VendorConnection.objects.filter(kind=VendorKind.WEBMARKETER).order_by("name"))
    states = {s.connection_id: s for s in WebmarketerSync.objects.filter(connection__in=connections)}
    for connection in connections:
        connection.sync = states.get(connection.pk)  # type: ignore[attr-defined]
        summary = connection.sync.event_types_summary if connection.sync else None  # type: ignore[attr-defined]
        connection.sync_words = pull_words(summary) if summary else ""  # type: ignore[attr-defined]
    return connections


@require_GET
@permission_required("tracking.view_eventtype")
def event_type_list(request: HtmxHttpRequest) -> HttpResponse:
    params = request.GET
    open_conflicts = EventTypeConflict.objects.filter(resolved_at__isnull=True)
    event_types = EventType.objects.prefetch_related(
        Prefetch("conflicts", queryset=open_conflicts, to_attr="open_conflicts")
    ).order_by("reference")
    if q := params.get("q", "").strip():
        event_types = event_types.filter(Q(reference__icontains=q) | Q(name__icontains=q))
    archived = params.get("archived", "")
    if archived == "no":
        event_types = event_types.filter(archived_at__isnull=True)
    elif archived == "yes":
        event_types = event_types.filter(archived_at__isnull=False)
    page = Paginator(event_types, PAGE_SIZE).get_page(params.get("page"))
    for event_type in page:
        event_type.data_field_count = sum(f.get("entity") in DATA_ENTITIES for f in event_type.fields)
        event_type.sync_state = event_type_sync_state(event_type)
        event_type.conflict = event_type.open_conflicts[0] if event_type.open_conflicts else None
    query = params.copy()
    query.pop("page", None)
    context = {"page": page, "query": query.urlencode(), "params": params, "connections": _connections()}
    template = "tracking/event_types/list.html"
    if request.htmx and request.htmx.target == "event-type-table":
        template = "tracking/event_types/_table.html"
    return render(request, template, context)


@require_POST
@permission_required("tracking.add_eventtype", "tracking.change_eventtype")
def event_types_sync(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Pull every event type of the connection's project now (the beat task does it periodically)."""
    connection = get_object_or_404(VendorConnection, pk=pk, kind=VendorKind.WEBMARKETER)
    try:
        summary = webmarketer.event_types_pull(connection=connection, user=request.user)
    except (webmarketer.AnswerError, ValueError) as exc:
        messages.error(request, f"Sync with {connection.name} failed: {exc}")
    else:
        level = messages.WARNING if summary.conflicts else messages.SUCCESS
        messages.add_message(request, level, f"Synced with {connection.name}: {pull_words(summary.as_dict())}.")
    return redirect("console:event-type-list")


@require_GET
@permission_required("tracking.view_eventtype")
def event_type_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    event_type = get_object_or_404(EventType, pk=pk)
    return render(
        request,
        "tracking/event_types/detail.html",
        {
            "event_type": event_type,
            "data_fields": [f for f in event_type.fields if f.get("entity") in DATA_ENTITIES],
            "states": [f for f in event_type.fields if f.get("entity") not in DATA_ENTITIES],
            "sync_state": event_type_sync_state(event_type),
            "conflict": event_type.conflicts.filter(resolved_at__isnull=True).select_related("connection").first(),
            "push_form": PushForm(),
            "push_body": json.dumps(event_type_push_body(event_type), indent=2, ensure_ascii=False),
            # JSON, as the editor takes it (not Python's repr of a dict).
            "metadata_json": json.dumps(event_type.metadata, indent=2, ensure_ascii=False),
            "no_update_hint": NO_UPDATE_HINT,
        },
    )


def _editor(request: HtmxHttpRequest, event_type: EventType | None) -> HttpResponse:
    if request.method == "POST":
        editor = EventTypeEditor(request.POST)
        try:
            saved = event_type_save(event_type=event_type, data=editor.data(), user=request.user)
        except EventTypeInvalid as exc:
            editor.errors_show(exc.errors)
        else:
            text = f"Saved event type {saved.reference}."
            if event_type_sync_state(saved) == "changed":
                text += " " + NO_UPDATE_HINT
            messages.success(request, text)
            url = reverse("console:event-type-detail", args=[saved.pk])
            return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    else:
        editor = EventTypeEditor(event_type=event_type)
    context = {"editor": editor, "event_type": event_type}
    template = "tracking/event_types/_editor.html" if request.htmx else "tracking/event_types/editor.html"
    return render(request, template, context)


@require_http_methods(["GET", "POST"])
@permission_required("tracking.add_eventtype")
def event_type_create(request: HtmxHttpRequest) -> HttpResponse:
    return _editor(request, None)


@require_http_methods(["GET", "POST"])
@permission_required("tracking.change_eventtype")
def event_type_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _editor(request, get_object_or_404(EventType, pk=pk))


@require_GET
@permission_required("tracking.view_eventtype")
def event_type_row(request: HtmxHttpRequest) -> HttpResponse:
    """A new, empty row for the editor ("Add a field" / "Add a state or statistic")."""
    section = request.GET.get("section", "")
    if section not in SECTIONS:
        raise Http404("unknown section")
    return render(request, "tracking/event_types/_row.html", {"row": row_new(section), "section": section})


@require_POST
@permission_required("tracking.change_eventtype")
def event_type_push(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Create the type in Webmarketer (POST projects/{projectId}/event-types); its refusal shown verbatim."""
    event_type = get_object_or_404(EventType, pk=pk)
    form = PushForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose an enabled Webmarketer connection to push to.")
    else:
        connection = form.cleaned_data["connection"]
        try:
            webmarketer.event_type_push(event_type=event_type, connection=connection, user=request.user)
        except webmarketer.AnswerError as exc:
            if exc.status:
                messages.error(request, f"Webmarketer refused the push (HTTP {exc.status}): {exc.message}")
            else:
                messages.error(request, f"The push to {connection.name} failed: {exc}")
        except ValueError as exc:
            messages.error(request, f"The push to {connection.name} failed: {exc}")
        else:
            messages.success(
                request, f"Pushed {event_type.reference} to {connection.name}: Webmarketer's _id is {event_type.wm_id}."
            )
    return redirect("console:event-type-detail", pk=event_type.pk)


# -- conflicts -------------------------------------------------------------------------------------------------
def field_summary(field: dict[str, Any] | None) -> str:
    if field is None:
        return "—"
    words = [str(field.get("type")), str(field.get("entity")), "optional" if field.get("optional") else "required"]
    words += [
        name
        for flag, name in (("discriminant", "discriminant"), ("isPii", "PII"), ("isMostProbableLocation", "location"))
        if field.get(flag)
    ]
    ingestion = field.get("ingestionKey")
    if ingestion and ingestion != field.get("storageKey"):
        words.append(f"from {ingestion}")
    if field.get("label"):
        words.append(f"label “{field['label']}”")
    return " · ".join(words)


def fields_compare(ours: list[dict], theirs: list[dict]) -> list[dict[str, Any]]:
    """Fields matched by storage key: same, changed (which attributes), only ours, only Webmarketer's."""
    mine = {f.get("storageKey"): f for f in ours}
    remote = {f.get("storageKey"): f for f in theirs}
    keys = list(mine) + [k for k in remote if k not in mine]
    rows = []
    for key in keys:
        a, b = mine.get(key), remote.get(key)
        if a is None:
            status, changed = "only in Webmarketer", []
        elif b is None:
            status, changed = "only here", []
        else:
            changed = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            status = "changed" if changed else "same"
        rows.append(
            {"key": key, "ours": field_summary(a), "theirs": field_summary(b), "status": status, "changed": changed}
        )
    return rows


def _shown(value: Any) -> str:
    if value in (None, "", [], {}):
        return "—"
    if isinstance(value, list) and all(isinstance(c, dict) and "countryCode" in c for c in value):
        # phoneParsingConfig: the countries in the order they are tried
        return " → ".join(str(c["countryCode"]) for c in sorted(value, key=lambda c: c.get("order", 0)))
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@require_GET
@permission_required("tracking.view_eventtype")
def conflict_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    conflict = get_object_or_404(
        EventTypeConflict.objects.select_related("event_type", "connection", "resolved_by"), pk=pk
    )
    ours, theirs = event_type_document(conflict.event_type), conflict.remote
    keys = [
        ("name", "Name"),
        ("metadata", "Metadata"),
        ("phoneParsingConfig", "Phone parsing"),
        ("archivedAt", "Archived"),
    ]
    if "expirationPolicy" in theirs:
        keys.append(("expirationPolicy", "Expiration policy"))
    facts = [
        {
            "label": label,
            "ours": _shown(ours.get(key)),
            "theirs": _shown(theirs.get(key)),
            "differs": _shown(ours.get(key)) != _shown(theirs.get(key)),
        }
        for key, label in keys
    ]
    return render(
        request,
        "tracking/event_types/conflict.html",
        {
            "conflict": conflict,
            "event_type": conflict.event_type,
            "facts": facts,
            "fields": fields_compare(ours.get("fields") or [], theirs.get("fields") or []),
        },
    )


@require_POST
@permission_required("tracking.change_eventtype")
def conflict_resolve(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    conflict = get_object_or_404(EventTypeConflict.objects.select_related("event_type"), pk=pk)
    keep = request.POST.get("keep", "")
    try:
        webmarketer.event_type_conflict_resolve(conflict=conflict, keep=keep, user=request.user)
    except ValueError as exc:
        messages.error(request, f"Not resolved: {exc}.")
        return redirect("console:event-type-conflict", pk=conflict.pk)
    if keep == "remote":
        messages.success(request, f"{conflict.event_type.reference}: took Webmarketer's version.")
    else:
        messages.success(request, f"{conflict.event_type.reference}: kept ours. {NO_UPDATE_HINT}")
    return redirect("console:event-type-detail", pk=conflict.event_type.pk)
