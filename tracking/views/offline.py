"""Offline interactions: send one (form) or a CSV file of them to Webmarketer; the recent ones with status.
Webmarketer answers synchronously: its 400 messages are shown verbatim."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.contrib import messages
from django.http import HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from ..forms import OfflineCsvForm, OfflineInteractionForm
from ..models import OfflineInteraction
from ..services import webmarketer
from .base import HtmxHttpRequest, permission_required

RECENT = 50
# Each row is one synchronous call to Webmarketer inside the web request: bigger files go to the command.
CONSOLE_MAX_ROWS = 500


# Post/redirect/get: what a POST leaves for the page after its redirect (a reload never sends anything again).
REPORT_KEY = "offline_import_report"
FORM_KEY = "offline_form_kept"


def _page(request: HtmxHttpRequest, **context: Any) -> HttpResponse:
    context.setdefault("form", OfflineInteractionForm())
    context.setdefault("csv_form", OfflineCsvForm())
    context["recent"] = OfflineInteraction.objects.select_related("connection", "created_by")[:RECENT]
    context["max_rows"] = CONSOLE_MAX_ROWS
    return render(request, "tracking/offline/page.html", context)


@require_GET
@permission_required("tracking.view_offlineinteraction")
def offline_page(request: HtmxHttpRequest) -> HttpResponse:
    context: dict[str, Any] = {}
    if kept := request.session.pop(FORM_KEY, None):
        # A send Webmarketer refused or that did not arrive: the form again as typed, to correct and resend.
        data = QueryDict(mutable=True)
        for key, values in kept.items():
            data.setlist(key, values)
        context["form"] = OfflineInteractionForm(data)
    if report := request.session.pop(REPORT_KEY, None):
        context["report"] = webmarketer.ImportReport([webmarketer.RowReport(**row) for row in report["rows"]])
        context["report_name"] = report["name"]
    return _page(request, **context)


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
        # Keep what was typed so it can be corrected and sent again (the page after the redirect shows it).
        request.session[FORM_KEY] = {k: v for k, v in request.POST.lists() if k != "csrfmiddlewaretoken"}
    return redirect("console:offline")


@require_POST
@permission_required("tracking.add_offlineinteraction")
def offline_import(request: HtmxHttpRequest) -> HttpResponse:
    csv_form = OfflineCsvForm(request.POST, request.FILES)
    if not csv_form.is_valid():
        return _page(request, csv_form=csv_form)
    upload = csv_form.cleaned_data["file"]
    resend = request.POST.get("resend") == "1"
    try:
        report = webmarketer.offline_interactions_import_csv(
            connection=csv_form.cleaned_data["connection"],
            file=upload,
            user=request.user,
            max_rows=CONSOLE_MAX_ROWS,
            resend=resend,
        )
    except ValueError as exc:  # a bad header or too many rows (nothing sent), or a misconfigured connection
        csv_form.add_error("file", str(exc))
        return _page(request, csv_form=csv_form)
    level = messages.SUCCESS if not report.failed and not report.already_sent else messages.WARNING
    counts = [f"{report.sent} sent"]
    if report.already_sent:
        counts.append(f"{report.already_sent} already sent before, not sent again")
    counts.append(f"{report.failed} not sent")
    messages.add_message(request, level, f"{upload.name}: {', '.join(counts)}, of {len(report.rows)} rows.")
    request.session[REPORT_KEY] = {"name": upload.name, "rows": [asdict(row) for row in report.rows]}
    return redirect(reverse("console:offline") + "#import-report")
