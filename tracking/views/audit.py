"""Audit pages for Auditors and Marketing: what was sent (every attempt across vendors, exportable as CSV) and
who did what (the audit trail)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator

from django.contrib.auth import get_user_model
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ..models import Attempt, AuditEntry, EventType, VendorConnection
from ..selectors import attempts_filter, audit_entries_filter, id_chunks, id_page, keyset_page
from .base import HtmxHttpRequest, day_bound, list_template, permission_required

CSV_COLUMNS = (
    "attempt_id",
    "started_at_utc",
    "connection",
    "vendor",
    "event_uuid",
    "event_type",
    "generation",
    "method",
    "url",
    "response_status",
    "outcome",
    "duration_ms",
    "error",
    "request_body",
    "response_body",
)


def _attempt_filters(params) -> dict:
    return {
        "connection": params.get("connection", ""),
        "event_type": params.get("event_type", ""),
        "outcome": params.get("outcome", ""),
        "status_code": params.get("status_code", "").strip(),
        "since": day_bound(params.get("since", "")),
        "until": day_bound(params.get("until", ""), end=True),
    }


def _query(params) -> str:
    query = params.copy()
    query.pop("after", None)
    return query.urlencode()


@require_GET
@permission_required("tracking.view_attempt")
def sent_list(request: HtmxHttpRequest) -> HttpResponse:
    """What was sent: every attempt, newest first, keyset-paged by id."""
    params = request.GET
    page = id_page(attempts_filter(**_attempt_filters(params)), cursor=params.get("after", ""))
    context = {
        "page": page,
        "params": params,
        "query": _query(params),
        "connections": VendorConnection.objects.values_list("pk", "name"),
        "event_types": EventType.objects.values_list("reference", flat=True),
        "outcomes": Attempt.Outcome.choices,
    }
    template = list_template(
        request,
        page="tracking/audit/sent.html",
        rows="tracking/audit/_sent_rows.html",
        table="tracking/audit/_sent_table.html",
        table_id="sent-table",
    )
    return render(request, template, context)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_rows(attempts) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for a in id_chunks(attempts):
        d = a.delivery
        yield writer.writerow(
            (
                a.pk,
                a.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                d.connection.name,
                d.connection.kind,
                d.event.uuid,
                d.event.event_type_ref,
                d.generation,
                a.method,
                a.url,
                a.response_status if a.response_status is not None else "",
                a.outcome,
                a.duration_ms,
                a.error,
                a.request_body,
                a.response_body,
            )
        )


@require_GET
@permission_required("tracking.view_attempt")
def sent_export(request: HtmxHttpRequest) -> StreamingHttpResponse:
    """The filtered attempts as CSV, streamed: read a thousand at a time by id, never all at once."""
    attempts = attempts_filter(**_attempt_filters(request.GET))
    response = StreamingHttpResponse(_csv_rows(attempts), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="attempts.csv"'
    return response


@require_GET
@permission_required("tracking.view_auditentry")
def audit_log(request: HtmxHttpRequest) -> HttpResponse:
    """Who did what: the audit trail, newest first, keyset-paged."""
    params = request.GET
    entries = audit_entries_filter(
        user=params.get("user", ""),
        action=params.get("action", ""),
        since=day_bound(params.get("since", "")),
        until=day_bound(params.get("until", ""), end=True),
    )
    page = keyset_page(entries, field="at", cursor=params.get("after", ""))
    for entry in page.items:
        entry.details_text = json.dumps(entry.details, ensure_ascii=False, indent=1, sort_keys=True)
    actions = sorted(AuditEntry.objects.order_by().values_list("action", flat=True).distinct()[:200])
    context = {
        "page": page,
        "params": params,
        "query": _query(params),
        "actions": actions,
        "users": get_user_model().objects.order_by("username").values_list("username", flat=True)[:500],
    }
    template = list_template(
        request,
        page="tracking/audit/log.html",
        rows="tracking/audit/_log_rows.html",
        table="tracking/audit/_log_table.html",
        table_id="audit-table",
    )
    return render(request, template, context)
