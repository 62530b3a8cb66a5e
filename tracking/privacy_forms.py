"""The forms of the privacy pages (a person's consent, erasure) and of ingest sources (their default consent)."""

from __future__ import annotations

from typing import Any

from django import forms

from .consent import PURPOSE_LABELS, PURPOSES
from .services.privacy import Person, PersonError

PURPOSE_CHOICES = [(p, PURPOSE_LABELS[p]) for p in PURPOSES]


class PersonForm(forms.Form):
    """Who: an email address or a trackerId."""

    by = forms.ChoiceField(
        choices=[("email", "Email"), ("tracker_id", "Tracker id")], initial="email", widget=forms.RadioSelect
    )
    value = forms.CharField(max_length=254, label="Email or tracker id")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        try:
            cleaned["person"] = Person.of(**{cleaned["by"]: cleaned["value"]})
        except PersonError as exc:
            self.add_error("value", str(exc))
        return cleaned


class ConsentUpdateForm(PersonForm):
    purposes = forms.MultipleChoiceField(
        choices=PURPOSE_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Consents now to",
        help_text="None ticked: every consent withdrawn.",
    )


class SourceConsentForm(forms.Form):
    """A source's default consent: what its events grant when they carry none. Deny-all is preselected."""

    default = forms.ChoiceField(
        choices=[
            ("deny", "Deny all: events without consent are sent to no route that needs one"),
            ("allow", "Allow all purposes (the source's system only posts events of people who consented)"),
            ("custom", "Only the purposes ticked below"),
        ],
        initial="deny",
        widget=forms.RadioSelect,
        label="Events without consent of their own",
    )
    purposes = forms.MultipleChoiceField(choices=PURPOSE_CHOICES, required=False, widget=forms.CheckboxSelectMultiple)

    @staticmethod
    def initial_for(consent: list[str]) -> dict[str, Any]:
        if not consent:
            return {"default": "deny", "purposes": []}
        if set(consent) == set(PURPOSES):
            return {"default": "allow", "purposes": list(PURPOSES)}
        return {"default": "custom", "purposes": list(consent)}

    def default_consent(self) -> list[str]:
        choice = self.cleaned_data["default"]
        if choice == "allow":
            return list(PURPOSES)
        if choice == "custom":
            return list(self.cleaned_data.get("purposes") or [])
        return []


class SourceForm(SourceConsentForm):
    name = forms.CharField(max_length=100)

    field_order = ["name", "default", "purposes"]
