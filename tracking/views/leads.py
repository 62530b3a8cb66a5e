"""The lead board: leads newest first with filters, their states and turnover, changes made in place (HTMX),
and each lead's history of changes with where each one stands at Webmarketer (retry when it failed)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from ..models import Event, LeadChange, LeadDelivery
from ..selectors import lead_event_types, lead_rows, leads_page
from ..services.leads import LeadChangeError, is_lead, lead_change_record, lead_change_retry
from .base import HtmxHttpRequest, day_bound, list_template, permission_required

# What Sales read of a lead update's delivery: the outcome in plain words, never the connection, its URL, the
# request or the vendor's answer (those stay with the roles that read deliveries: Marketing, Auditors).
DETAILS_PERMISSION = "tracking.view_leaddelivery"
OUTCOMES = {
    LeadDelivery.Status.DELIVERED: ("delivered", "Delivered to Webmarketer"),
    LeadDelivery.Status.FAILED: ("failed", "Failed"),
    LeadDelivery.Status.SUPERSEDED: ("superseded", "Replaced by a newer change"),
}


def outcome_plain(delivery: LeadDelivery) -> tuple[str, str, str]:
    """(badge, outcome, reason) of a lead delivery for readers without the delivery details."""
    badge, label = OUTCOMES.get(delivery.status, ("waiting", "Waiting to be sent"))
    if delivery.status != LeadDelivery.Status.FAILED:
        return badge, label, ""
    if " — " in delivery.last_error:
        # The hub's own explanation of Webmarketer's answer (webmarketer.update_404_explain): plain words.
        return badge, label, delivery.last_error.rsplit(" — ", 1)[1]
    error = delivery.last_error.lower()
    if error.startswith("the event itself did not reach") or error.startswith("the event has no delivery"):
        reason = "The lead itself has not reached Webmarketer yet."
    elif "timeout" in error or "connection error" in error or "unreachable" in error or "http 5" in error:
        reason = "Webmarketer could not be reached."
    elif "http 401" in error or "http 403" in error or "token" in error:
        reason = "Webmarketer did not accept the hub's sign-in."
    elif "http 4" in error:
        reason = "Webmarketer refused the update."
    else:
        reason = "The update could not be sent."
    return badge, label, f"{reason} Marketing can see the details."


def _outcomes_plain(request: HtmxHttpRequest, rows: list) -> bool:
    """Give each delivery of these rows its plain outcome; True when the reader sees only that."""
    if request.user.has_perm(DETAILS_PERMISSION):
        return False
    for row in rows:
        for delivery in [*row.failures, *(d for change in row.history or [] for d in change.deliveries.all())]:
            delivery.plain = outcome_plain(delivery)
    return True


def _lead(uuid) -> Event:
    event = get_object_or_404(Event.objects.select_related("event_type"), uuid=uuid)
    if not is_lead(event):
        raise Http404("This event is not a lead: its type declares no state.")
    return event


def _state_choices() -> list[tuple[str, str]]:
    """The board's state filter: each state key declared by a lead type, set or not, and failed updates."""
    keys: dict[str, str] = {}
    for event_type in lead_event_types():
        for field in event_type.states:
            keys.setdefault(field["storageKey"], field.get("label") or field["storageKey"])
    choices = []
    for key, label in keys.items():
        choices += [(key, label), (f"not:{key}", f"not {label}")]
    return choices + [("failed", "an update failed")]


@require_GET
@permission_required("tracking.view_leads")
def lead_list(request: HtmxHttpRequest) -> HttpResponse:
    params = request.GET
    filters = {
        "event_type": params.get("event_type", ""),
        "state": params.get("state", ""),
        "since": day_bound(params.get("since", "")),
        "until": day_bound(params.get("until", ""), end=True),
        "q": params.get("q", ""),
    }
    page = leads_page(cursor=params.get("after", ""), **filters)
    query = params.copy()
    query.pop("after", None)
    rows = lead_rows(page.items)
    context = {
        "rows": rows,
        "outcomes_only": _outcomes_plain(request, rows),
        "page": page,
        "query": query.urlencode(),
        "params": params,
        "event_types": [t.reference for t in lead_event_types()],
        "state_choices": _state_choices(),
    }
    template = list_template(
        request,
        page="tracking/leads/list.html",
        rows="tracking/leads/_rows.html",
        table="tracking/leads/_table.html",
        table_id="lead-table",
    )
    return render(request, template, context)


def _lead_response(
    request: HtmxHttpRequest, event: Event, *, history: bool, status: int = 200, **extra: Any
) -> HttpResponse:
    """One lead: its board rows (an HTMX swap of the lead's <tbody>), or the lead's own page."""
    (row,) = lead_rows([event], history=history)
    posted = extra.pop("posted", None)
    if posted is not None:
        # Keep what was typed, next to the error that says what to fix.
        for value in row.statistics:
            value.typed = posted.get(f"amount-{value.key}", "")
        extra["typed_date"] = posted.get("date", "")
    context = {"row": row, "show_history": history, "outcomes_only": _outcomes_plain(request, [row]), **extra}
    template = "tracking/leads/_lead.html" if request.htmx else "tracking/leads/detail.html"
    return render(request, template, context, status=status)


@require_GET
@permission_required("tracking.view_leads")
def lead_detail(request: HtmxHttpRequest, uuid) -> HttpResponse:
    """The lead's rows; its own page (history open) without HTMX."""
    history = request.GET.get("history") == "1" or not request.htmx
    return _lead_response(request, _lead(uuid), history=history)


def _date(text: str) -> datetime | None:
    """A typed date and time, YYYY-MM-DD HH:MM[:SS] (UTC, the console's time zone); blank = now."""
    text = text.strip()
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise LeadChangeError(f"{text!r} is not a date: write it YYYY-MM-DD HH:MM (UTC, 24-hour clock).") from None
    return timezone.make_aware(value) if timezone.is_naive(value) else value


def _parse_change(post) -> dict[str, Any]:
    """The change a button asks for: "state:<key>:<0|1>" or "statistic:<key>" (amount in amount-<key>)."""
    kind, _, rest = post.get("change", "").partition(":")
    if kind == LeadChange.Kind.STATE:
        key, _, value = rest.rpartition(":")
        return {"kind": kind, "storage_key": key, "value": value}
    if kind == LeadChange.Kind.STATISTIC and rest:
        return {"kind": kind, "storage_key": rest, "value": post.get(f"amount-{rest}", "")}
    raise LeadChangeError("Choose what to change (a state button, or an amount and its button).")


def _describe(change: LeadChange) -> str:
    if change.kind == LeadChange.Kind.STATE:
        what = change.storage_key if change.value == 1 else f"{change.storage_key} undone"
    else:
        what = f"{change.storage_key} {change.value}"
    return f"{what} on {timezone.localtime(change.date):%Y-%m-%d %H:%M} UTC"


@require_POST
@permission_required("tracking.change_leads")
def lead_change(request: HtmxHttpRequest, uuid) -> HttpResponse:
    """Record a change (state set or undone, statistic amount) with its date; it goes to Webmarketer."""
    event = _lead(uuid)
    history = request.POST.get("history") == "1"
    try:
        change = lead_change_record(
            event=event, date=_date(request.POST.get("date", "")), user=request.user, **_parse_change(request.POST)
        )
    except LeadChangeError as exc:
        if not request.htmx:
            messages.error(request, str(exc))
            return redirect(reverse("console:lead-detail", args=[event.uuid]))
        # The row again with the message beside the inputs, which keep what was typed.
        return _lead_response(request, event, history=history, error=str(exc), posted=request.POST)
    notice = f"Saved: {_describe(change)}."
    if not request.htmx:
        messages.success(request, notice)
        return redirect(reverse("console:lead-detail", args=[event.uuid]))
    return _lead_response(request, event, history=history, notice=notice)


@require_POST
@permission_required("tracking.change_leads")
def lead_change_retry_view(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Queue a failed change again (the newest of its state or statistic only)."""
    change = get_object_or_404(LeadChange.objects.select_related("event__event_type"), pk=pk)
    event = change.event
    try:
        queued = lead_change_retry(change=change, user=request.user)
    except LeadChangeError as exc:
        error, notice = str(exc), ""
    else:
        error, notice = "", f"Queued again: {change.storage_key} ({queued} connection{'s' if queued > 1 else ''})."
    if not request.htmx:
        if error:
            messages.error(request, error)
        else:
            messages.success(request, notice)
        return redirect(reverse("console:lead-detail", args=[event.uuid]))
    return _lead_response(request, event, history=True, error=error, notice=notice)
