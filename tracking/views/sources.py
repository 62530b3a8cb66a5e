"""Source pages: the systems allowed to post (tokens are never shown), and each one's Segment settings (which
calls, event aliases, property renames, the page-view type, browser origins), edited through the audited service."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from ..models import Source
from ..segment_forms import SegmentSettingsForm
from ..services.segment import segment_settings_get, segment_settings_update
from .base import HtmxHttpRequest, form_errors_add, permission_required


@require_GET
@permission_required("tracking.view_source")
def source_list(request: HtmxHttpRequest) -> HttpResponse:
    sources = list(Source.objects.select_related("segment", "segment__page_view_type").order_by("name"))
    for source in sources:
        source.segment_settings = segment_settings_get(source=source)
    return render(request, "tracking/sources/list.html", {"sources": sources})


@require_http_methods(["GET", "POST"])
@permission_required("tracking.view_source", "tracking.view_segmentsettings")
def source_segment(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    source = get_object_or_404(Source, pk=pk)
    can_edit = request.user.has_perm("tracking.change_segmentsettings")
    if request.method == "POST" and not can_edit:
        raise PermissionDenied("needs tracking.change_segmentsettings")
    settings = segment_settings_get(source=source)
    form = SegmentSettingsForm.for_settings(settings, request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            segment_settings_update(source=source, user=request.user, **form.changes())
        except ValidationError as exc:
            form_errors_add(form, exc)
        else:
            messages.success(request, f"Segment settings of {source.name} saved.")
            return redirect(reverse("console:source-segment", args=[source.pk]))
    context = {"source": source, "form": form, "can_edit": can_edit, "saved": settings.pk is not None}
    return render(request, "tracking/sources/segment.html", context)
