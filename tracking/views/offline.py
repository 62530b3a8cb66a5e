"""Offline interactions: send one (form) or a CSV file of them to Webmarketer; the recent ones with status.
Webmarketer answers synchronously: its 400 messages are shown verbatim."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from ..forms import OfflineCsvForm, OfflineInteractionForm
from ..models import OfflineInteraction
from ..services import webmarketer
from .base import HtmxHttpRequest, permission_required

RECENT = 50
# Each row is one synchronous call to Webmarketer inside the web request: bigger files go to the command.
CONSOLE_MAX_ROWS = 500


def _page(request: HtmxHttpRequest, **context: Any) -> HttpResponse:
    context.setdefault("form", OfflineInteractionForm())
    context.setdefault("csv_form", OfflineCsvForm())
    context["recent"] = OfflineInteraction.objects.select_related("connection", "created_by")[:RECENT]
    context["max_rows"] = CONSOLE_MAX_ROWS
    return render(request, "tracking/offline/page.html", context)


@require_GET
@permission_required("tracking.view_offlineinteraction")
def offline_page(request: HtmxHttpRequest) -> HttpResponse:
    return _page(request)


@require_GET
@permission_required("tracking.view_offlineinteraction")
def offline_node_row(request: HtmxHttpRequest) -> HttpResponse:
    """One more empty nodeData key/value pair for the form."""
    return render(request, "tracking/offline/_node_row.html", {"key": "", "value": ""})


def outcome_words(record: OfflineInteraction) -> tuple[str, str]:
    """(message level, text) for what happened to one interaction."""
    if record.status == OfflineInteraction.Status.SENT:
        return messages.SUCCESS, f"Sent to Webmarketer ({record.connection.name})."
    if record.status == OfflineInteraction.Status.REJECTED:
        return messages.ERROR, f"Webmarketer refused it (HTTP {record.response_status}): {record.answer}"
    return messages.ERROR, f"Not delivered: {record.answer}"


@require_POST
@permission_required("tracking.add_offlineinteraction")
def offline_send(request: HtmxHttpRequest) -> HttpResponse:
    form = OfflineInteractionForm(request.POST)
    if not form.is_valid():
        return _page(request, form=form)
    data = form.cleaned_data
    try:
        record = webmarketer.offline_interaction_send(
            connection=data["connection"],
            date=data["date"],
            user_data=data["user_data"],
            node_data=data["node_data"],
            user=request.user,
            origin="console form",
        )
    except ValueError as exc:  # the connection cannot work (settings, secrets)
        form.add_error("connection", str(exc))
        return _page(request, form=form)
    level, text = outcome_words(record)
    messages.add_message(request, level, text)
    if record.status != OfflineInteraction.Status.SENT:
        # Keep what was typed so it can be corrected and sent again.
        return _page(request, form=form)
    return redirect("console:offline")


@require_POST
@permission_required("tracking.add_offlineinteraction")
def offline_import(request: HtmxHttpRequest) -> HttpResponse:
    csv_form = OfflineCsvForm(request.POST, request.FILES)
    if not csv_form.is_valid():
        return _page(request, csv_form=csv_form)
    upload = csv_form.cleaned_data["file"]
    try:
        report = webmarketer.offline_interactions_import_csv(
            connection=csv_form.cleaned_data["connection"], file=upload, user=request.user, max_rows=CONSOLE_MAX_ROWS
        )
    except ValueError as exc:  # a bad header or too many rows (nothing sent), or a misconfigured connection
        csv_form.add_error("file", str(exc))
        return _page(request, csv_form=csv_form)
    level = messages.SUCCESS if not report.failed else messages.WARNING
    messages.add_message(
        request, level, f"{upload.name}: {report.sent} sent, {report.failed} not sent, of {len(report.rows)} rows."
    )
    return _page(request, report=report, report_name=upload.name)
