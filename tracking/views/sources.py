"""Ingest sources: list, create (the token shown once; the default consent asked, deny-all preselected) and each
source's page, which says what its events grant when they carry no consent of their own."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from ..models import Source
from ..privacy_forms import SourceConsentForm, SourceForm
from ..services.ingest import source_consent_update, source_create
from .base import HtmxHttpRequest, permission_required


@require_GET
@permission_required("tracking.view_source")
def source_list(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "tracking/sources/list.html", {"sources": Source.objects.order_by("name")})


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
