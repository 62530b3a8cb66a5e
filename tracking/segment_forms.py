"""The console's form for a source's Segment settings: tables written one entry a line ("Order Completed =
purchase"), origins one a line; the service checks the values (services/segment.py)."""

from __future__ import annotations

from typing import Any

from django import forms

from .models import SEGMENT_CALLS, EventType, SegmentSettings


def table_parse(text: str, what: str) -> dict[str, str]:
    """Lines "name = value" as a table; ValidationError names the line that is not one."""
    table: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.rpartition("=")
        if not sep or not name.strip() or not value.strip():
            raise forms.ValidationError(f"line {number}: write {what}")
        table[name.strip()] = value.strip()
    return table


def table_text(table: dict[str, str]) -> str:
    return "\n".join(f"{name} = {value}" for name, value in table.items())


class SegmentSettingsForm(forms.Form):
    calls = forms.MultipleChoiceField(
        choices=[(c, c) for c in SEGMENT_CALLS],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Calls of another type are kept as invalid events, saying so.",
    )
    event_aliases = forms.CharField(
        label="Event aliases",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "placeholder": "Order Completed = purchase"}),
        help_text="One a line: Segment event name = event type reference. A name without an alias selects the "
        "event type of that reference; a name matching none is kept as an invalid event.",
    )
    property_renames = forms.CharField(
        label="Property renames",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": "orderId = order_id"}),
        help_text="One a line: Segment property key = data key.",
    )
    page_view_type = forms.ModelChoiceField(
        label="Page-view event type",
        queryset=EventType.objects.filter(archived_at__isnull=True).order_by("reference"),
        required=False,
        to_field_name="reference",
        help_text="The event type of page and screen calls; none: they are kept as invalid events.",
    )
    cors_origins = forms.CharField(
        label="Browser origins (CORS)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "https://www.example.com"}),
        help_text="One a line, for analytics.js posting straight to the hub. None: CORS off, and browsers are refused.",
    )

    @classmethod
    def for_settings(cls, settings: SegmentSettings, data=None) -> SegmentSettingsForm:
        initial = {
            "calls": list(settings.calls or []),
            "event_aliases": table_text(settings.event_aliases or {}),
            "property_renames": table_text(settings.property_renames or {}),
            "page_view_type": settings.page_view_type.reference if settings.page_view_type_id else None,
            "cors_origins": "\n".join(settings.cors_origins or []),
        }
        return cls(data, initial=initial)

    def clean_event_aliases(self) -> dict[str, str]:
        return table_parse(self.cleaned_data["event_aliases"], "Segment event name = event type reference")

    def clean_property_renames(self) -> dict[str, str]:
        return table_parse(self.cleaned_data["property_renames"], "Segment property key = data key")

    def clean_cors_origins(self) -> list[str]:
        # Origins are compared lowercase, without a trailing slash (what browsers send).
        return [
            line.strip().lower().rstrip("/") for line in self.cleaned_data["cors_origins"].splitlines() if line.strip()
        ]

    def changes(self) -> dict[str, Any]:
        """The cleaned values as segment_settings_update() takes them."""
        return {name: self.cleaned_data[name] for name in self.fields}
