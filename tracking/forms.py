"""Console forms for the Webmarketer pages: they read the request and render inputs; the rules live in the
services (event_type_clean, trash_replay, the offline checks), whose errors the forms show next to inputs."""

from __future__ import annotations

import contextlib
import json
import math
import re
import secrets
from typing import Any

from django import forms
from django.core.validators import validate_email
from django.http import QueryDict

from .models import EventType, VendorConnection, VendorKind
from .schema import FIELD_TYPES, ingestion_key
from .services.event_types import EXPIRATION_FROM, FIELD_KEYS
from .widgets import IsoDateTimeInput

# -- event-type editor ----------------------------------------------------------------------------------------
DATA_ENTITY_CHOICES = [("user", "user"), ("event", "event")]
STATE_ENTITY_CHOICES = [("state", "state"), ("statistic", "statistic")]
TYPE_CHOICES = [(t, t) for t in FIELD_TYPES]
SECTIONS = {"fields": DATA_ENTITY_CHOICES, "states": STATE_ENTITY_CHOICES}


class EventTypeForm(forms.Form):
    """The event type's own inputs (its fields are rows of FieldRowForm)."""

    name = forms.CharField(required=False, max_length=200, widget=forms.TextInput(attrs={"size": 40}))
    reference = forms.CharField(
        required=False,
        max_length=64,
        help_text="Lowercase letters, digits and single dashes, e.g. contact-form. Events name their type by it.",
    )
    phone_countries = forms.CharField(
        required=False,
        label="Phone parsing countries",
        help_text="ISO 3166 alpha-2 codes in the order national numbers are tried, e.g. FR, BE. "
        "Empty: only international numbers (+33…) are accepted.",
    )
    expiration_from = forms.CharField(
        required=False,
        label="Expiration policy",
        widget=forms.Select(
            choices=[("", "none (Webmarketer's default)")] + [(value, f"from the {value}") for value in EXPIRATION_FROM]
        ),
    )
    retention_days = forms.CharField(
        required=False,
        label="Retention (days)",
        widget=forms.NumberInput(attrs={"min": 1, "step": 1, "class": "narrow-number"}),
    )
    metadata = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='A JSON object, e.g. {"form": "webmarketer"}.',
    )


class FieldRowForm(forms.Form):
    """One field, state or statistic: a row of the editor (prefix = the row's id)."""

    type = forms.CharField(required=False, widget=forms.Select(choices=TYPE_CHOICES))
    entity = forms.CharField(required=False)
    storageKey = forms.CharField(required=False, widget=forms.TextInput(attrs={"size": 14}))  # noqa: N815
    ingestionKey = forms.CharField(  # noqa: N815
        required=False, widget=forms.TextInput(attrs={"size": 14, "placeholder": "= storage key"})
    )
    label = forms.CharField(required=False, widget=forms.TextInput(attrs={"size": 16}))
    optional = forms.BooleanField(required=False)
    discriminant = forms.BooleanField(required=False)
    isPii = forms.BooleanField(required=False, label="PII")  # noqa: N815
    isMostProbableLocation = forms.BooleanField(required=False, label="Most probable location")  # noqa: N815
    extra = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, section: str = "fields", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.section = section
        self.fields["entity"].widget = forms.Select(choices=SECTIONS[section])

    def value(self) -> dict[str, Any]:
        """The row as a Webmarketer field (unchecked: event_type_clean checks it)."""
        data = self.cleaned_data
        try:
            extra = json.loads(data["extra"]) if data["extra"] else {}
        except ValueError:
            extra = {}
        field = {k: v for k, v in (extra if isinstance(extra, dict) else {}).items() if k not in FIELD_KEYS}
        field |= {key: data[key] for key in ("type", "entity", "storageKey", "ingestionKey", "label")}
        field |= {flag: data[flag] for flag in ("optional", "discriminant", "isPii", "isMostProbableLocation")}
        return field

    @classmethod
    def initial_for(cls, field: dict[str, Any]) -> dict[str, Any]:
        initial = {key: field.get(key) or "" for key in ("type", "entity", "storageKey", "ingestionKey", "label")}
        initial |= {
            flag: bool(field.get(flag)) for flag in ("optional", "discriminant", "isPii", "isMostProbableLocation")
        }
        extra = {k: v for k, v in field.items() if k not in FIELD_KEYS}
        initial["extra"] = json.dumps(extra, ensure_ascii=False) if extra else ""
        return initial


def row_new(section: str) -> FieldRowForm:
    """An empty row for the "Add" buttons; a random id, so rows added in any order never collide."""
    entity = "event" if section == "fields" else "state"
    kind = "string" if section == "fields" else "boolean"
    return FieldRowForm(prefix=f"n{secrets.token_hex(4)}", section=section, initial={"entity": entity, "type": kind})


class EventTypeEditor:
    """The whole editor: the type's inputs and its rows, from an event type or from a POST."""

    def __init__(self, post: QueryDict | None = None, *, event_type: EventType | None = None) -> None:
        self.errors: list[str] = []  # about the field list as a whole
        if post is None:
            self.form = EventTypeForm(initial=self._initial(event_type))
            fields = event_type.fields if event_type else []
            self.rows = {
                section: [
                    FieldRowForm(prefix=f"r{i}", section=section, initial=FieldRowForm.initial_for(f))
                    for i, f in enumerate(fields)
                    if (f.get("entity") in ("state", "statistic")) == (section == "states")
                ]
                for section in SECTIONS
            }
            if event_type is None:
                self.rows["fields"].append(row_new("fields"))
            return
        self.form = EventTypeForm(post)
        self.form.is_valid()  # every input is optional here: this only fills cleaned_data
        self.rows = {
            section: [FieldRowForm(post, prefix=prefix, section=section) for prefix in post.getlist(f"{section}_row")]
            for section in SECTIONS
        }
        for row in self.all_rows:
            row.is_valid()

    @staticmethod
    def _initial(event_type: EventType | None) -> dict[str, Any]:
        if event_type is None:
            return {}
        policy = event_type.expiration_policy or {}
        return {
            "name": event_type.name,
            "reference": event_type.reference,
            "phone_countries": ", ".join(c.get("countryCode", "") for c in event_type.phone_parsing_config),
            "expiration_from": policy.get("from", ""),
            "retention_days": policy.get("retentionDurationInDays", ""),
            "metadata": json.dumps(event_type.metadata, ensure_ascii=False) if event_type.metadata else "",
        }

    @property
    def all_rows(self) -> list[FieldRowForm]:
        """Rows in the order their fields are saved: fields, then states and statistics."""
        return self.rows["fields"] + self.rows["states"]

    def data(self) -> dict[str, Any]:
        """What the editor says, Webmarketer-shaped, for event_type_save."""
        form = self.form.cleaned_data
        metadata: Any = form["metadata"].strip()
        if metadata:
            # Left as text when it is not JSON: the service then says it must be a JSON object.
            with contextlib.suppress(ValueError):
                metadata = json.loads(metadata)
        policy = None
        if form["expiration_from"] or form["retention_days"].strip():
            policy = {"from": form["expiration_from"], "retentionDurationInDays": form["retention_days"].strip()}
        return {
            "name": form["name"],
            "reference": form["reference"],
            "fields": [row.value() for row in self.all_rows],
            "phoneParsingConfig": [c for c in re.split(r"[\s,;]+", form["phone_countries"]) if c],
            "expirationPolicy": policy,
            "metadata": metadata,
        }

    def errors_show(self, errors: dict[str, list[str]]) -> None:
        """Put each error of EventTypeInvalid next to its input."""
        rows = self.all_rows
        inputs = {
            "name": "name",
            "reference": "reference",
            "metadata": "metadata",
            "phoneParsingConfig": "phone_countries",
            "expirationPolicy": "expiration_from",
            "expirationPolicy.from": "expiration_from",
            "expirationPolicy.retentionDurationInDays": "retention_days",
        }
        for path, messages in errors.items():
            parts = path.split(".")
            if parts[0] == "fields" and len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) < len(rows):
                row = rows[int(parts[1])]
                key = parts[2] if len(parts) > 2 and parts[2] in row.fields else None
                for message in messages:
                    row.add_error(key, message)
            elif path in inputs:
                for message in messages:
                    self.form.add_error(inputs[path], message)
            else:
                self.errors += messages


class PushForm(forms.Form):
    connection = forms.ModelChoiceField(
        queryset=VendorConnection.objects.filter(kind=VendorKind.WEBMARKETER, enabled=True),
        empty_label=None,
        label="Webmarketer connection",
    )


# -- trash fix ------------------------------------------------------------------------------------------------
INTEGER = re.compile(r"^-?\d{1,15}$")
NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


class TrashFixForm(forms.Form):
    """One input per data field of the event type (location: zipcode and country), pre-filled from the event;
    data keys the type does not know are kept as they were."""

    note = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={"size": 50}),
        help_text="Why and how it was fixed (kept in the audit trail).",
    )

    def __init__(
        self, *args, fields: list[dict[str, Any]], original: dict[str, Any], in_error: set[str], **kwargs
    ) -> None:
        super().__init__(*args, **kwargs)
        self.specs = fields
        self.original = original if isinstance(original, dict) else {}
        self.in_error = in_error
        self.rows: list[dict[str, Any]] = []
        for i, spec in enumerate(fields):
            key, kind = ingestion_key(spec), spec.get("type", "string")
            value = self.original.get(key)
            label = key + ("" if spec.get("optional") else " *")
            names = [f"f{i}"]
            if kind == "location":
                place = value if isinstance(value, dict) else {}
                names = [f"f{i}_zipcode", f"f{i}_country"]
                self.fields[names[0]] = forms.CharField(
                    required=False, label=f"{key}: zipcode", initial=_shown(place.get("zipcode"))
                )
                self.fields[names[1]] = forms.CharField(
                    required=False, label=f"{key}: country", initial=_shown(place.get("country"))
                )
            elif kind == "boolean":
                choices = [("", "— not set —"), ("true", "true"), ("false", "false")]
                initial = _shown(value) if isinstance(value, bool) else ""
                self.fields[names[0]] = forms.CharField(
                    required=False, label=label, widget=forms.Select(choices=choices), initial=initial
                )
            else:
                widget = forms.Textarea(attrs={"rows": 2}) if kind == "message" else forms.TextInput(attrs={"size": 40})
                self.fields[names[0]] = forms.CharField(
                    required=False, label=label, widget=widget, initial=_shown(value), strip=kind != "message"
                )
            self.rows.append({"key": key, "spec": spec, "names": names, "in_error": key in in_error})

    @property
    def extra_data(self) -> dict[str, Any]:
        known = {ingestion_key(spec) for spec in self.specs}
        return {k: v for k, v in self.original.items() if k not in known}

    def fix_rows(self) -> list[dict[str, Any]]:
        """For the template: each field with its bound inputs."""
        return [{**row, "inputs": [self[name] for name in row["names"]]} for row in self.rows]

    def fixed_data(self) -> dict[str, Any]:
        """The event's data with the inputs' values, typed as the field types say (an empty input = absent)."""
        data = dict(self.extra_data)
        for row in self.rows:
            kind, values = row["spec"].get("type", "string"), [self.cleaned_data[name] for name in row["names"]]
            value: Any
            if kind == "location":
                zipcode, country = (v.strip() for v in values)
                value = {"zipcode": zipcode, "country": country} if zipcode or country else None
            elif kind == "boolean":
                value = {"true": True, "false": False}.get(values[0])
            elif kind == "number":
                # Left as typed when not a number: the check then says "must be a number" next to it.
                text = values[0].strip()
                value = text or None
                if INTEGER.match(text):
                    value = int(text)
                elif NUMBER.match(text) and math.isfinite(float(text)):
                    value = float(text)
            else:
                value = values[0] or None
            if value is not None:
                data[row["key"]] = value
        return data

    def errors_show(self, errors: list[Any]) -> None:
        """FixInvalid's FieldErrors next to their inputs."""
        by_key = {row["key"]: row["names"][0] for row in self.rows}
        for error in errors:
            self.add_error(by_key.get(error.field), f"{error.field}: {error.message}")


class DismissForm(forms.Form):
    note = forms.CharField(required=False, max_length=1000, widget=forms.TextInput(attrs={"size": 40}))


# -- offline interactions -------------------------------------------------------------------------------------
def webmarketer_connections():
    return VendorConnection.objects.filter(kind=VendorKind.WEBMARKETER).order_by("name")


class OfflineInteractionForm(forms.Form):
    """One offline interaction: date, who (userData), where it came from (nodeData: wmktId + key/values)."""

    connection = forms.ModelChoiceField(queryset=webmarketer_connections(), empty_label=None)
    date = forms.DateTimeField(
        label="Date (UTC)",
        widget=IsoDateTimeInput(),
        help_text="When the interaction happened, in UTC.",
    )
    email = forms.CharField(required=False, widget=forms.EmailInput(attrs={"size": 30}))
    phone = forms.CharField(required=False, help_text="International (+33 6…) or national format.")
    wmkt_id = forms.CharField(
        label="wmktId", max_length=200, help_text="The Webmarketer id of the advertiser node (integration)."
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connection"].queryset = webmarketer_connections()
        self.node_pairs: list[tuple[str, str]] = []
        if self.is_bound:
            self.node_pairs = list(zip(self.data.getlist("node_key"), self.data.getlist("node_value"), strict=False))
        self.node_errors: list[str] = []

    def clean(self) -> dict[str, Any]:
        from .services.webmarketer import user_data_problems

        cleaned = super().clean()
        user_data = {k: cleaned[k].strip() for k in ("email", "phone") if cleaned.get(k, "").strip()}
        if not user_data and not self.has_error("email"):
            self.add_error("email", "Give an email or a phone: Webmarketer needs one to find the user.")
        for problem in user_data_problems(user_data):
            self.add_error("phone" if problem.startswith("phone") else "email", problem)
        node: dict[str, str] = {}
        for key, value in ((k.strip(), v.strip()) for k, v in self.node_pairs):
            if not key and not value:
                continue
            if not key:
                self.node_errors.append(f"The value {value!r} has no key.")
            elif key.lower() == "wmktid":
                self.node_errors.append("Give wmktId in its own input above.")
            elif key in node:
                self.node_errors.append(f"The key {key!r} is given twice.")
            elif not value:
                self.node_errors.append(f"The key {key!r} has no value.")
            else:
                node[key] = value
        if self.node_errors:
            raise forms.ValidationError("Fix the nodeData keys and values below.")
        cleaned["user_data"] = user_data
        if cleaned.get("wmkt_id"):
            cleaned["node_data"] = {"wmktId": cleaned["wmkt_id"].strip(), **node}
        return cleaned

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        if email:
            validate_email(email)
        return email


CSV_MAX_BYTES = 5 * 1024 * 1024


class OfflineCsvForm(forms.Form):
    connection = forms.ModelChoiceField(queryset=webmarketer_connections(), empty_label=None)
    file = forms.FileField(
        label="CSV file",
        help_text="Header row: date, wmktId, then email / phone / user.<key> (userData) and any other or "
        "node.<key> column, e.g. cid (nodeData). UTF-8; comma, semicolon or tab separated.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["connection"].queryset = webmarketer_connections()

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > CSV_MAX_BYTES:
            raise forms.ValidationError(f"The file is {upload.size // 1024} KiB; at most {CSV_MAX_BYTES // 1024} KiB.")
        return upload
