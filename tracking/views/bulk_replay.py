"""Bulk replay: a confirmation that says how many deliveries a replay touches (and which vendors would hold a
delivered event twice), then a job page with a progress bar (HTMX polling) and cancel."""

from __future__ import annotations

from django.http import HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ..models import BulkReplay, VendorConnection
from ..selectors import bulk_replay_delivered_connections, bulk_replay_deliveries, bulk_replay_suppressed
from ..services.bulk_replay import bulk_replay_cancel, bulk_replay_create
from ..services.replay import vendors_without_dedup
from .base import HtmxHttpRequest, day_bound, permission_required

FILTER_KEYS = ("event_type", "status", "delivery_status", "since", "until", "q", "connection")
# Ticked events a confirmation carries (the log shows 50 a page; "Load more" a few pages).
TICKED_MAX = 1000


def _criteria(data: QueryDict) -> tuple[dict, str]:
    """The selection the request names, and the same in words: ticked events, or the log's filters."""
    if data.get("ticked"):
        ids = sorted({int(v) for v in data.getlist("event") if v.isdigit()})[:TICKED_MAX]
        return {"event_ids": ids}, f"{len(ids)} ticked event{'s' if len(ids) != 1 else ''}"
    filters = {k: data.get(k, "").strip() for k in FILTER_KEYS if data.get(k, "").strip()}
    criteria = dict(filters)
    for key, end in (("since", False), ("until", True)):
        if key in criteria:
            bound = day_bound(criteria[key], end=end)
            criteria[key] = bound.isoformat() if bound else ""
    words = []
    if connection := filters.get("connection"):
        name = VendorConnection.objects.filter(pk=connection if connection.isdigit() else 0).first()
        words.append(f"connection {name.name if name else connection}")
    words += [f"{k.replace('_', ' ')} {v}" for k, v in filters.items() if k != "connection"]
    return {"filters": criteria}, "events matching " + (", ".join(words) or "no filter (all)")


@require_http_methods(["GET", "POST"])
@permission_required("tracking.view_event", "tracking.change_event")
def bulk_replay_new(request: HtmxHttpRequest) -> HttpResponse:
    """GET (the log's filters) or POST (ticked events): the confirmation; POST with `start`: the job."""
    data = request.POST if request.method == "POST" else request.GET
    criteria, description = _criteria(data)
    include_delivered = data.get("include_delivered") == "1"
    if request.method == "POST" and data.get("start") == "1":
        job = bulk_replay_create(
            user=request.user, criteria=criteria, include_delivered=include_delivered, description=description
        )
        return redirect(reverse("console:bulk-replay-detail", args=[job.pk]))
    count = bulk_replay_deliveries(criteria=criteria).count()
    delivered_at = bulk_replay_delivered_connections(criteria=criteria)
    delivered = bulk_replay_deliveries(criteria=criteria, include_delivered=True).count() - count
    hidden = [(k, v) for k in (*FILTER_KEYS, "ticked") for v in data.getlist(k)]
    hidden += [("event", v) for v in (criteria.get("event_ids") or [])]
    context = {
        "description": description,
        "count": count,
        "delivered": delivered,
        "suppressed": bulk_replay_suppressed(criteria=criteria).count(),
        "without_dedup": vendors_without_dedup(delivered_at),
        "with_dedup": [c.name for c in delivered_at if not vendors_without_dedup([c])],
        "hidden": hidden,
        "back": reverse("console:event-list") + ("?" + data.urlencode() if request.method == "GET" else ""),
    }
    return render(request, "tracking/bulk_replay/confirm.html", context)


@require_GET
@permission_required("tracking.view_event")
def bulk_replay_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(BulkReplay.objects.select_related("created_by"), pk=pk)
    template = "tracking/bulk_replay/_progress.html" if request.htmx else "tracking/bulk_replay/detail.html"
    return render(request, template, {"job": job})


@require_POST
@permission_required("tracking.view_event", "tracking.change_event")
def bulk_replay_cancel_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(BulkReplay, pk=pk)
    bulk_replay_cancel(job=job, user=request.user)
    if request.htmx:
        return render(request, "tracking/bulk_replay/_progress.html", {"job": job})
    return redirect(reverse("console:bulk-replay-detail", args=[job.pk]))


@require_GET
@permission_required("tracking.view_event")
def bulk_replay_list(request: HtmxHttpRequest) -> HttpResponse:
    """The latest bulk replays, newest first."""
    jobs = BulkReplay.objects.select_related("created_by").order_by("-pk")[:50]
    return render(request, "tracking/bulk_replay/list.html", {"jobs": jobs})
