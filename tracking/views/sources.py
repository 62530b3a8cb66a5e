"""Source pages: the systems allowed to post (tokens shown once, at creation), each one's default consent (what its
events grant when they carry no consent of their own; asked at creation, deny-all preselected) and its Segment
settings (which calls, event aliases, property renames, the page-view type, browser origins), each change audited."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from ..models import Source
from ..privacy_forms import SourceConsentForm, SourceForm
from ..segment_forms import SegmentSettingsForm
from ..services.ingest import source_consent_update, source_create
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


@require_http_methods(["GET", "POST"])
@permission_required("tracking.add_source")
def source_new(request: HtmxHttpRequest) -> HttpResponse:
    form = SourceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        name = form.cleaned_data["name"].strip()
        if Source.objects.filter(name=name).exists():
            form.add_error("name", f"A source named {name} exists already.")
        else:
            try:
                source, token = source_create(name=name, default_consent=form.default_consent(), user=request.user)
            except IntegrityError:
                form.add_error("name", f"A source named {name} exists already.")
            else:
                # The token is shown on this answer only: only its hash is kept.
                return render(request, "tracking/sources/detail.html", _context(request, source, token=token))
    return render(request, "tracking/sources/new.html", {"form": form})


def _context(request: HtmxHttpRequest, source: Source, *, token: str = "", form=None) -> dict:
    can_edit = request.user.has_perm("tracking.change_source")
    form = form or SourceConsentForm(initial=SourceConsentForm.initial_for(source.default_consent))
    if not can_edit:
        for field in form.fields.values():
            field.disabled = True
    return {"source": source, "token": token, "form": form, "can_edit": can_edit}


@require_http_methods(["GET", "POST"])
@permission_required("tracking.view_source")
def source_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    source = get_object_or_404(Source, pk=pk)
    if request.method == "POST":
        if not request.user.has_perm("tracking.change_source"):
            raise PermissionDenied("needs tracking.change_source")
        form = SourceConsentForm(request.POST)
        if form.is_valid():
            source_consent_update(source=source, default_consent=form.default_consent(), user=request.user)
            messages.success(request, f"Default consent of {source.name} saved.")
            return redirect(reverse("console:source-detail", args=[source.pk]))
        return render(request, "tracking/sources/detail.html", _context(request, source, form=form))
    return render(request, "tracking/sources/detail.html", _context(request, source))
