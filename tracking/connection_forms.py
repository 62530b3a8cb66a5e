"""The connection form, one shape per vendor kind: only that vendor's settings and secrets, with help
taken from the vendor documents. Secrets are write-only: never rendered, blank keeps the stored value."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django import forms

from .models import VendorConnection, VendorKind
from .services.connections import connection_problem, secrets_to_reenter, urls_problems
from .vendors import acquia, vendor_class
from .vendors.webmarketer import DEFAULT_AUDIENCE, DEFAULT_INSIGHTS_PATH, DEFAULT_TRASH_PATH


@dataclass(frozen=True)
class Field:
    """One vendor setting or secret, stored under `key` in VendorConnection.settings / .secrets."""

    key: str
    label: str
    help: str
    required: bool = False
    choices: tuple[tuple[str, str], ...] = ()
    multiline: bool = False
    integer: bool = False
    json: bool = False  # a secret given as a JSON document (kept as an object)


@dataclass(frozen=True)
class KindSpec:
    intro: str
    base_url_label: str
    base_url_help: str
    base_url_default: str = ""
    base_url_required: bool = True
    auth_url_label: str = ""  # empty: this vendor has no auth URL
    auth_url_help: str = ""
    auth_url_default: str = ""
    auth_url_required: bool = False
    settings: tuple[Field, ...] = ()
    secrets: tuple[Field, ...] = ()


REGIONS = (("us-aws", "US AWS"), ("eu-aws", "EU AWS"), ("us-gcp", "US GCP"))
ENVIRONMENTS = (("preprod", "Pre-production"), ("prod", "Production"))

SPECS: dict[str, KindSpec] = {
    # Reference: VENDORS.md "Webmarketer" (paths and auth from the official PHP SDK).
    "webmarketer": KindSpec(
        intro=(
            "Events go to POST <API base>events with a bearer token obtained with the service account "
            "(an RS256 JWT sent to the token endpoint); the token is kept until shortly before it expires."
        ),
        base_url_label="API base",
        base_url_help="Every path (events, projects/{projectId}/event-types…) is relative to it.",
        base_url_default="https://api.webmarketer.io/api/v1/",
        auth_url_label="Token endpoint",
        auth_url_help="Where the service account's JWT is exchanged for an access token.",
        auth_url_default=DEFAULT_AUDIENCE,
        auth_url_required=True,
        settings=(
            Field(
                "project_id",
                "Project id",
                "Your Webmarketer project id: 3–64 lowercase letters, digits and single dashes.",
                required=True,
            ),
            Field(
                "trash_path",
                "Trashed-events path",
                f"No public path is documented; empty = {DEFAULT_TRASH_PATH}.",
            ),
            Field(
                "insights_path",
                "Insights path",
                f"No public path is documented; empty = {DEFAULT_INSIGHTS_PATH}.",
            ),
            Field(
                "page_size",
                "Page size",
                "Items per page when pulling event types and the trash; empty = the hub's default.",
                integer=True,
            ),
        ),
        secrets=(
            Field(
                "service_account",
                "Service account JSON",
                "The service-account file downloaded from Webmarketer (privateKey, privateKeyId, clientId, "
                "serviceAccountEmail), pasted whole.",
                required=True,
                multiline=True,
                json=True,
            ),
        ),
    ),
    # Reference: acquia-cdp-webtag-tracker-api.txt "Endpoint and Payloads"; VENDORS.md for the auth flow.
    "acquia": KindSpec(
        intro=(
            "Events go to POST https://<API subdomain>.agilone.com/v2/<tenant id>/dw/tracker?scheme=a1webtag&"
            "accessKey=…, at most 10 objects per entity and call. The token comes from the auth subdomain with "
            "Basic auth (the webtag user); the accessKey is bcrypt(token + today's date), made anew each day."
        ),
        base_url_label="API base URL (override)",
        base_url_help=(
            "Empty = https://<API subdomain>.agilone.com/ from the region and environment below. Set it only for "
            "a proxy or the vendor sandbox."
        ),
        base_url_required=False,
        auth_url_label="Token URL (override)",
        auth_url_help="Empty = https://<auth subdomain>.agilone.com/token from the region and environment below.",
        settings=(
            Field(
                "tenant_id",
                "Tenant ID",
                "Your CDP tenant ID, e.g. 999: the number in /v2/999/dw/tracker.",
                required=True,
            ),
            Field(
                "region",
                "Region",
                "API subdomains (pre-production / production): US AWS cs-api6 / api6, EU AWS cs-api6.eu / api6.eu, "
                "US GCP cs-gcp-api6 / api8.",
                choices=REGIONS,
            ),
            Field(
                "environment",
                "Environment",
                "Pre-production (the CS environment) or production.",
                choices=ENVIRONMENTS,
            ),
        ),
        secrets=(
            Field("username", "Webtag user", "The webtag user Acquia gives you (Basic auth of the token call).", True),
            Field("password", "Webtag password", "The webtag user's password.", required=True),
        ),
    ),
    # Reference: algonomy-rcdp-direct-api.txt "API Endpoint", "OAuth 2.0 Authentication", "Common Fields".
    "algonomy": KindSpec(
        intro=(
            "Events go to POST <API base>/callback/rest/events/<TENANT_HASH>/<EVENT_NAME> with a bearer token "
            "from OAuth 2.0 client credentials, kept until shortly before expires_in and refreshed once on a 401."
        ),
        base_url_label="API base",
        base_url_help="e.g. https://sandbox.algonomy.com (the endpoint in the documentation).",
        auth_url_label="Auth base",
        auth_url_help="Tokens come from <auth base>/oauth/token, e.g. https://rcdp-us.algonomy.com.",
        auth_url_required=True,
        settings=(
            Field("tenant_hash", "Tenant hash", "Your tenant identifier, provided during Algonomy onboarding.", True),
            Field("src_id", "srcId", "Source identifier, e.g. WBSTR (Web Store), MobileApp.", required=True),
            Field("src_type", "srcType", "Source type, e.g. Shopify, Website Name, App Name.", required=True),
            Field("site_hash", "Site hash", "Optional: the site hash provided during onboarding (siteHash)."),
            Field("sdk_version", "SDK version", "Optional: the SDK version string sent as sdkVersion (e.g. 2020R3)."),
            Field("store_id", "Store id", "Optional: physical store identifier for POS/omnichannel (storeId)."),
        ),
        secrets=(
            Field("client_id", "Client id", "The OAuth 2.0 client id.", required=True),
            Field("client_secret", "Client secret", "The OAuth 2.0 client secret.", required=True),
        ),
    ),
    # Reference: tracardi-webhooks.txt "Webhook URL"; VENDORS.md (collector port, @ source ids).
    "tracardi": KindSpec(
        intro=(
            "Events go to POST (JSON body) or GET (URL parameters) <collector>/collect/<event type>/<source id>"
            "[/<session id>], the method and session chosen per route. No sign-in: the source id is the key."
        ),
        base_url_label="Collector URL",
        base_url_help="The Tracardi collector (API) URL, usually on port 8686, e.g. http://tracardi.example.com:8686/.",
        settings=(
            Field(
                "source_id",
                "Source id",
                "The id of the webhook event source in Tracardi, which tells it how to process the data; ids starting "
                "with @ are internal and rejected.",
                required=True,
            ),
        ),
    ),
    # Reference: tracify-server-side-events-api.txt "Getting Started" and "Event Properties".
    "tracify": KindSpec(
        intro=(
            "Events go in batches to POST <API base>api/v1/events with the tracify-token header. Email, IP and "
            "User-Agent are hashed with calcGroup: raw PII never leaves the hub."
        ),
        base_url_label="API base",
        base_url_help="Events go to <API base>api/v1/events.",
        base_url_default="https://api.tracify.ai/",
        settings=(
            Field(
                "customer_site_id",
                "Customer site id",
                "Your customer site ID (CSID): your account representative provides it.",
                required=True,
            ),
            Field(
                "events_per_request",
                "Events per request",
                "Optional: at most this many events in one request (1 to 100; 100 when empty), for an account "
                "whose limit is lower.",
                integer=True,
            ),
        ),
        secrets=(
            Field(
                "api_key",
                "API key",
                "The API key from your Customer Success Manager, sent as the tracify-token header.",
                required=True,
            ),
        ),
    ),
}


def acquia_urls(region: str, environment: str) -> tuple[str, str] | None:
    """(API base, token URL) of a region and environment, from the seed's subdomain table."""
    pair = acquia.SUBDOMAINS.get(region, {}).get(environment)
    if pair is None:
        return None
    return f"https://{pair[0]}.agilone.com/", f"https://{pair[1]}.agilone.com/token"


class SecretTextarea(forms.Textarea):
    """A textarea that never renders a value, like PasswordInput(render_value=False): a secret typed into a
    form that comes back with errors is not echoed into the page (it is typed again)."""

    def format_value(self, value: Any) -> None:
        return None


class ConnectionForm(forms.Form):
    """A connection of one kind: common fields, that vendor's settings and secrets, delivery tuning."""

    name = forms.CharField(max_length=100, help_text="How the console names this account, e.g. acquia-eu-prod.")
    enabled = forms.BooleanField(required=False, initial=True, help_text="Disabled connections receive nothing.")
    base_url = forms.URLField(max_length=200, assume_scheme="https", widget=forms.URLInput(attrs={"size": 60}))
    auth_url = forms.URLField(
        max_length=200, required=False, assume_scheme="https", widget=forms.URLInput(attrs={"size": 60})
    )
    timeout_seconds = forms.FloatField(min_value=0.1, initial=10.0, label="Timeout (s)")
    max_rate = forms.FloatField(
        min_value=0.01, required=False, label="Max rate (requests/s)", help_text="Per worker process; empty = no limit."
    )
    batch_size = forms.IntegerField(min_value=1, initial=50, help_text="Deliveries claimed per dispatch run.")
    retry_base_seconds = forms.FloatField(min_value=0, initial=10.0, label="First retry after (s)")
    retry_max_seconds = forms.FloatField(min_value=0, initial=600.0, label="Longest retry delay (s)")
    give_up_after_seconds = forms.IntegerField(
        min_value=1, initial=24 * 3600, label="Give up after (s)", help_text="A delivery failing this long is failed."
    )
    ADVANCED = ("timeout_seconds", "max_rate", "batch_size", "retry_base_seconds", "retry_max_seconds",
                "give_up_after_seconds")  # fmt: skip

    def __init__(self, data=None, *, kind: str, connection: VendorConnection | None = None) -> None:
        self.kind = kind
        self.label = VendorKind(kind).label
        self.spec = SPECS[kind]
        self.connection = connection
        initial: dict[str, Any] = {"base_url": self.spec.base_url_default, "auth_url": self.spec.auth_url_default}
        if connection is not None:
            initial = {
                name: getattr(connection, name) for name in ("name", "enabled", "base_url", "auth_url", *self.ADVANCED)
            }
            initial.update(
                {f"setting_{f.key}": connection.settings.get(f.key, "") for f in self.spec.settings if f.key}
            )
            if kind == "acquia":
                # URLs that the region table gives are shown as "no override".
                derived = acquia_urls(connection.settings.get("region", ""), connection.settings.get("environment", ""))
                if derived and connection.base_url == derived[0]:
                    initial["base_url"] = ""
                if derived and connection.auth_url == derived[1]:
                    initial["auth_url"] = ""
        super().__init__(data, initial=initial)
        base, auth = self.fields["base_url"], self.fields["auth_url"]
        base.label, base.help_text, base.required = (
            self.spec.base_url_label,
            self.spec.base_url_help,
            self.spec.base_url_required,
        )
        if self.spec.auth_url_label:
            auth.label, auth.help_text = self.spec.auth_url_label, self.spec.auth_url_help
            auth.required = self.spec.auth_url_required
        else:
            del self.fields["auth_url"]
        for spec in self.spec.settings:
            self.fields[f"setting_{spec.key}"] = self._setting_field(spec)
        stored = connection.secrets if connection is not None else {}
        for spec in self.spec.secrets:
            is_set = bool(stored.get(spec.key))
            widget: forms.Widget = (
                SecretTextarea(attrs={"rows": 4, "autocomplete": "off", "spellcheck": "false"})
                if spec.multiline
                else forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
            )
            keep = " Set: leave blank to keep it." if is_set else " Not set yet."
            self.fields[f"secret_{spec.key}"] = forms.CharField(
                label=spec.label, help_text=spec.help + keep, required=False, widget=widget, strip=True
            )
        self.result: dict[str, Any] = {}
        self.secrets: dict[str, Any] = {}

    def _setting_field(self, spec: Field) -> forms.Field:
        if spec.choices:
            return forms.ChoiceField(
                choices=[("", "—"), *spec.choices], required=spec.required, label=spec.label, help_text=spec.help
            )
        if spec.integer:
            return forms.IntegerField(min_value=1, required=spec.required, label=spec.label, help_text=spec.help)
        return forms.CharField(
            max_length=300,
            required=spec.required,
            label=spec.label,
            help_text=spec.help,
            widget=forms.TextInput(attrs={"size": 40}),
        )

    # -- groups for the template -----------------------------------------------------------------------------
    def connection_fields(self) -> list[forms.BoundField]:
        return [self[n] for n in ("name", "enabled", "base_url", "auth_url") if n in self.fields]

    def setting_fields(self) -> list[forms.BoundField]:
        return [self[f"setting_{f.key}"] for f in self.spec.settings]

    def secret_fields(self) -> list[tuple[forms.BoundField, bool]]:
        stored = self.connection.secrets if self.connection is not None else {}
        return [(self[f"secret_{f.key}"], bool(stored.get(f.key))) for f in self.spec.secrets]

    def advanced_fields(self) -> list[forms.BoundField]:
        return [self[n] for n in self.ADVANCED]

    def secrets_typed(self) -> bool:
        return any(self.data.get(f"secret_{f.key}") for f in self.spec.secrets) if self.is_bound else False

    # -- validation ------------------------------------------------------------------------------------------
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        stored_settings = dict(self.connection.settings) if self.connection is not None else {}
        settings = dict(stored_settings)  # keys this form does not show (set by the CLI or admin) are kept
        for spec in self.spec.settings:
            value = cleaned.get(f"setting_{spec.key}")
            if value in (None, ""):
                settings.pop(spec.key, None)
            else:
                settings[spec.key] = value.strip() if isinstance(value, str) else value
        stored = self.connection.secrets if self.connection is not None else {}
        secrets: dict[str, Any] = {}
        for spec in self.spec.secrets:
            name = f"secret_{spec.key}"
            value = cleaned.get(name) or ""
            if not value:
                if spec.required and not stored.get(spec.key):
                    self.add_error(name, "Required: this connection has no value for it yet.")
                continue
            if spec.json:
                try:
                    value = json.loads(value)
                except ValueError as exc:
                    self.add_error(name, f"Not valid JSON ({exc.msg} at line {exc.lineno}): paste the whole file.")
                    continue
                if not isinstance(value, dict):
                    self.add_error(name, "Paste the JSON object of the file ({…}).")
                    continue
            secrets[spec.key] = value
        base_url, auth_url = cleaned.get("base_url", ""), cleaned.get("auth_url", "")
        if self.kind == "acquia" and (not base_url or not auth_url):
            derived = acquia_urls(settings.get("region", ""), settings.get("environment", ""))
            if derived is None:
                self.add_error(
                    "setting_region",
                    "Choose the region and environment, or give both the API base and token URL overrides.",
                )
            else:
                base_url, auth_url = base_url or derived[0], auth_url or derived[1]
        for name, message in urls_problems(base_url=base_url, auth_url=auth_url or "").items():
            self.add_error(name if cleaned.get(name) else None, message)
        for key in secrets_to_reenter(
            connection=self.connection, secrets=secrets, base_url=base_url, auth_url=auth_url or ""
        ):
            name = f"secret_{key}"
            message = "The connection now points at another host: enter this secret again (blank keeps it only "
            message += "while the host stays the same)."
            self.add_error(name, message) if name in self.fields else self.add_error(None, f"{key}: {message}")
        if self.errors:
            return cleaned
        problem = connection_problem(
            kind=self.kind, base_url=base_url, auth_url=auth_url, settings=settings, secrets={**stored, **secrets}
        )
        if problem:
            self.add_error(None, problem)
            return cleaned
        self.result = {
            "name": cleaned["name"].strip(),
            "enabled": cleaned["enabled"],
            "base_url": base_url,
            "auth_url": auth_url or "",
            "settings": settings,
            **{n: cleaned[n] for n in self.ADVANCED},
        }
        self.secrets = secrets
        return cleaned


def kind_choices() -> list[tuple[str, str]]:
    return [(k, label) for k, label in VendorKind.choices if k in SPECS and vendor_class(k)]
