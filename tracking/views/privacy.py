"""Privacy: a person's consent updated (withdrawal stops what it no longer allows) and erasure on request, shown
first (counts and the vendors to ask), done after a confirmation. Both audited, neither keeps the identifier."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from ..privacy_forms import ConsentUpdateForm, PersonForm
from ..services.privacy import consent_update, erasure_plan, person_erase
from .base import HtmxHttpRequest, permission_required


def _page(request: HtmxHttpRequest, **context) -> HttpResponse:
    context.setdefault("consent_form", ConsentUpdateForm(prefix="consent"))
    context.setdefault("erase_form", PersonForm(prefix="erase"))
    return render(request, "tracking/privacy/page.html", context)


@require_GET
@permission_required("tracking.change_consent")
def privacy_page(request: HtmxHttpRequest) -> HttpResponse:
    """The two forms; with an erasure lookup in the query (erase-by, erase-value), what it would erase."""
    if "erase-value" not in request.GET:
        return _page(request)
    form = PersonForm(request.GET, prefix="erase")
    if not request.user.has_perm("tracking.erase_person"):
        messages.error(request, "Erasing a person's data needs the permission to erase (tracking.erase_person).")
        return _page(request, erase_form=form)
    if not form.is_valid():
        return _page(request, erase_form=form)
    return _page(request, erase_form=form, plan=erasure_plan(person=form.cleaned_data["person"]))


@require_POST
@permission_required("tracking.change_consent")
def privacy_consent(request: HtmxHttpRequest) -> HttpResponse:
    form = ConsentUpdateForm(request.POST, prefix="consent")
    if not form.is_valid():
        return _page(request, consent_form=form)
    result = consent_update(
        person=form.cleaned_data["person"], purposes=form.cleaned_data["purposes"], user=request.user
    )
    granted = ", ".join(result.purposes) or "nothing"
    messages.success(
        request,
        f"Consent recorded (now: {granted}) on {result.events} event{'s' if result.events != 1 else ''}; "
        f"{result.suppressed} pending or retrying deliver{'y' if result.suppressed == 1 else 'ies'} suppressed.",
    )
    return redirect(reverse("console:privacy"))


@require_POST
@permission_required("tracking.change_consent", "tracking.erase_person")
def privacy_erase(request: HtmxHttpRequest) -> HttpResponse:
    form = PersonForm(request.POST, prefix="erase")
    if not form.is_valid():
        return _page(request, erase_form=form)
    person = form.cleaned_data["person"]
    if not request.POST.get("confirm"):
        messages.error(request, "Tick the confirmation to erase: nothing was erased.")
        return _page(request, erase_form=form, plan=erasure_plan(person=person))
    plan = person_erase(person=person, user=request.user)
    messages.success(
        request,
        f"Erased: {len(plan.event_ids)} events, {plan.attempts} attempt bodies, {len(plan.offline_ids)} offline "
        f"interactions, {len(plan.trashed_ids)} trashed events. The audit trail records the counts only.",
    )
    for line in plan.vendor_lines():
        messages.warning(request, line)
    return redirect(reverse("console:privacy"))
