"""Webmarketer insights: pick metrics, a breakdown, an interval and dates; the answer is drawn as lines (linear
intervals) or bars (non-linear ones), and a refusal is said in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django import forms
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from ..models import EventType, VendorConnection, VendorKind
from ..services.insights import insight_metrics, insights_chart, insights_query
from ..widgets import IsoDateInput
from .base import HtmxHttpRequest, permission_required

INTERVALS = [
    ("Over time", [("day", "Day"), ("week", "Week"), ("month", "Month"), ("quarter", "Quarter"),
                   ("semester", "Semester"), ("year", "Year")]),
    ("Seasonality", [("dayOfWeek", "Day of the week"), ("dayOfMonth", "Day of the month"),
                     ("dayOfYear", "Day of the year"), ("weekOfYear", "Week of the year"),
                     ("monthOfYear", "Month of the year"), ("quarterOfYear", "Quarter of the year"),
                     ("semesterOfYear", "Semester of the year")]),
]  # fmt: skip
GROUPS = [("project", "Whole project"), ("event-type", "Per event type")]


class InsightsForm(forms.Form):
    connection = forms.ModelChoiceField(queryset=VendorConnection.objects.none(), empty_label=None)
    metrics = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    group_by = forms.ChoiceField(label="Breakdown", choices=GROUPS, initial="project")
    event_types = forms.MultipleChoiceField(
        label="Event types", required=False, help_text="Only with the per-event-type breakdown; none: all of them."
    )
    interval = forms.ChoiceField(choices=INTERVALS, initial="day")
    since = forms.DateField(widget=IsoDateInput())
    until = forms.DateField(widget=IsoDateInput(), help_text="Included.")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connection"].queryset = VendorConnection.objects.filter(kind=VendorKind.WEBMARKETER)
        self.fields["metrics"].choices = insight_metrics()
        self.fields["event_types"].choices = [(r, r) for r in EventType.objects.values_list("reference", flat=True)]

    def clean(self) -> dict:
        data = super().clean()
        if data.get("since") and data.get("until") and data["until"] < data["since"]:
            self.add_error("until", "The end comes before the start.")
        return data


def _bounds(data: dict) -> tuple[datetime, datetime]:
    """The days picked as UTC instants: the first day's start to the last day's last millisecond."""
    since = datetime(data["since"].year, data["since"].month, data["since"].day, tzinfo=UTC)
    until = datetime(data["until"].year, data["until"].month, data["until"].day, tzinfo=UTC)
    return since, until + timedelta(days=1) - timedelta(milliseconds=1)


@require_GET
@permission_required("tracking.view_insights")
def insights_page(request: HtmxHttpRequest) -> HttpResponse:
    today = timezone.now().astimezone(UTC).date()
    initial = {"since": today - timedelta(days=29), "until": today, "metrics": ["event-count"]}
    form = InsightsForm(request.GET or None, initial=initial)
    context: dict = {"form": form}
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        since, until = _bounds(data)
        result = insights_query(
            connection=data["connection"],
            since=since,
            until=until,
            metrics=data["metrics"],
            group_by=data["group_by"],
            interval=data["interval"],
            event_types=data["event_types"],
        )
        context["result"] = result
        if result.ok:
            context["chart"] = {"insights": insights_chart(result, metrics=data["metrics"], interval=data["interval"])}
    # The result alone for the form's htmx request; the whole page otherwise (and when htmx restores history).
    partial = request.htmx and not request.htmx.history_restore_request
    template = "tracking/insights/_result.html" if partial else "tracking/insights/page.html"
    return render(request, template, context)
