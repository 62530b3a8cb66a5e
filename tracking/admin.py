"""The Django admin for every record. Secrets are write-only: the admin shows which keys are set, never
their values; attempts show the redacted request and the vendor's answer."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html

from .models import (
    Attempt,
    AuditEntry,
    Delivery,
    Event,
    EventType,
    Route,
    SegmentGroup,
    SegmentIdentity,
    SegmentProfile,
    SegmentSettings,
    Source,
    VendorConnection,
)
from .services.audit import audit_record
from .services.connections import (
    UPDATABLE_FIELDS,
    connection_test,
    secrets_merge,
    secrets_to_reenter,
    urls_problems,
)
from .services.replay import event_replay
from .services.routes import route_delete
from .services.segment import SETTINGS_FIELDS as SEGMENT_SETTINGS_FIELDS
from .services.segment import segment_settings_problems, segment_settings_update


class AppendOnlyMixin:
    """The log and the audit trail are append-only: nobody deletes from them in the admin (not even a
    superuser), so what was sent, and who did what, stays on record."""

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


class VendorConnectionForm(forms.ModelForm):
    new_secrets = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "autocomplete": "off"}),
        label="Set secrets",
        help_text=(
            'JSON object of secrets to set, e.g. {"service_account": {...}} for Webmarketer (the '
            "service-account JSON). Keys not named keep their value; an empty string removes one. "
            "Stored encrypted; never shown again."
        ),
    )

    class Meta:
        model = VendorConnection
        fields = ("kind", *UPDATABLE_FIELDS)

    def clean_new_secrets(self) -> dict:
        raw = self.cleaned_data["new_secrets"].strip()
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("Give a JSON object of secret name → value.")
        return value

    def clean(self) -> dict:
        """The same rules as the console's form: public URLs only (HUB_EGRESS_ALLOW for exceptions), and the
        stored secrets typed again when a URL moves to another scheme, host or port."""
        cleaned = super().clean()
        urls = {name: cleaned.get(name) or "" for name in ("base_url", "auth_url")}
        for name, message in urls_problems(**urls).items():
            self.add_error(name, message)
        # Before _post_clean, self.instance still holds the stored URLs and secrets.
        if self.instance.pk and (
            missing := secrets_to_reenter(connection=self.instance, secrets=cleaned.get("new_secrets"), **urls)
        ):
            self.add_error(
                "new_secrets",
                f"The connection now points at another host: set {', '.join(missing)} again "
                "(a stored secret is never sent to a new host).",
            )
        return cleaned


@admin.register(VendorConnection)
class VendorConnectionAdmin(admin.ModelAdmin):
    form = VendorConnectionForm
    list_display = ("name", "kind", "enabled", "base_url", "secret_keys", "circuit", "updated_at")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "base_url")
    readonly_fields = ("secret_keys", "circuit_failures", "circuit_open_until", "created_at", "updated_at")
    actions = ["test_connections"]

    def has_pull_event_types_permission(self, request) -> bool:
        # A pull creates, updates and archives local event types: the console's sync asks the same.
        return request.user.has_perms(["tracking.add_eventtype", "tracking.change_eventtype"])

    def has_pull_trash_permission(self, request) -> bool:
        # A pull stores trashed events: the console's trash pull asks the same.
        return request.user.has_perm("tracking.change_trashedevent")

    @admin.display(description="Secrets set")
    def secret_keys(self, obj: VendorConnection) -> str:
        return ", ".join(sorted(obj.secrets)) or "—"

    @admin.display(description="Circuit")
    def circuit(self, obj: VendorConnection) -> str:
        return f"open until {obj.circuit_open_until:%H:%M:%S}" if obj.circuit_open else "closed"

    def save_model(self, request, obj, form, change):
        new = form.cleaned_data.get("new_secrets") or {}
        if new:
            obj.secrets = secrets_merge(obj.secrets, new)
        super().save_model(request, obj, form, change)
        audit_record(
            user=request.user,
            action="connection.update" if change else "connection.create",
            target=obj,
            details={"fields": form.changed_data, "secret_keys": sorted(new)},
        )

    @admin.action(description="Test connection (auth flow)", permissions=["change"])
    def test_connections(self, request, queryset):
        for connection in queryset:
            report = connection_test(connection=connection)
            self.message_user(
                request, f"{connection.name}: {report.message}", messages.SUCCESS if report.ok else messages.ERROR
            )


@admin.register(EventType)
class EventTypeAdmin(admin.ModelAdmin):
    list_display = ("reference", "name", "field_count", "state_keys", "archived_at", "wm_id", "synced_at")
    list_filter = (("archived_at", admin.EmptyFieldListFilter),)
    search_fields = ("reference", "name")

    @admin.display(description="Fields")
    def field_count(self, obj: EventType) -> int:
        return len(obj.fields)

    @admin.display(description="States / statistics")
    def state_keys(self, obj: EventType) -> str:
        return ", ".join(f["storageKey"] for f in obj.states + obj.statistics) or "—"


@admin.register(Route)
class RouteAdmin(admin.ModelAdmin):
    list_display = ("event_type", "connection", "vendor_event_name", "enabled")
    list_filter = ("enabled", "connection__kind", "connection")
    search_fields = ("event_type__reference", "connection__name", "vendor_event_name")
    list_select_related = ("event_type", "connection")

    # Through the service: its due deliveries are cancelled naming who deleted it, and the delete is audited.
    def delete_model(self, request, obj: Route) -> None:
        route_delete(route=obj, user=request.user)

    def delete_queryset(self, request, queryset) -> None:
        for route in queryset:
            route_delete(route=route, user=request.user)


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ("name", "token_prefix", "enabled", "created_at", "last_used_at")
    list_filter = ("enabled",)
    search_fields = ("name",)
    readonly_fields = ("token_prefix", "created_at", "last_used_at")

    def has_add_permission(self, request) -> bool:
        # The token is shown once at creation: use `manage.py create_source NAME`.
        return False


class SegmentSettingsForm(forms.ModelForm):
    class Meta:
        model = SegmentSettings
        fields = ("source", *SEGMENT_SETTINGS_FIELDS)

    def clean(self) -> dict:
        """The service's checks (the same as the console's form)."""
        cleaned = super().clean()
        values = {name: cleaned.get(name, getattr(self.instance, name, None)) for name in SEGMENT_SETTINGS_FIELDS}
        for name, problems in segment_settings_problems(**values).items():
            for problem in problems:
                self.add_error(name if name in self.fields else None, problem)
        return cleaned


@admin.register(SegmentSettings)
class SegmentSettingsAdmin(admin.ModelAdmin):
    form = SegmentSettingsForm
    list_display = ("source", "accepted_calls", "page_view_type", "origins", "updated_at")
    search_fields = ("source__name",)
    list_select_related = ("source", "page_view_type")

    @admin.display(description="Calls")
    def accepted_calls(self, obj: SegmentSettings) -> str:
        return ", ".join(obj.calls) or "none"

    @admin.display(description="CORS origins")
    def origins(self, obj: SegmentSettings) -> str:
        return ", ".join(obj.cors_origins) or "CORS off"

    def save_model(self, request, obj, form, change):
        # Through the service, like the console: checked and audited with what changed.
        changes = {name: form.cleaned_data[name] for name in SEGMENT_SETTINGS_FIELDS}
        saved = segment_settings_update(source=form.cleaned_data["source"], user=request.user, **changes)
        obj.pk = saved.pk


class SegmentIdentityInline(admin.TabularInline):
    model = SegmentIdentity
    extra = 0
    fields = ("external_id", "created_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SegmentProfile)
class SegmentProfileAdmin(admin.ModelAdmin):
    """The traits Segment identify calls kept: written by the API only, read here."""

    list_display = ("__str__", "group_id", "updated_at")
    search_fields = ("=identities__external_id", "=group_id")
    readonly_fields = ("traits", "group_id", "created_at", "updated_at")
    inlines = [SegmentIdentityInline]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(SegmentGroup)
class SegmentGroupAdmin(admin.ModelAdmin):
    list_display = ("group_id", "updated_at")
    search_fields = ("=group_id",)
    readonly_fields = ("group_id", "traits", "updated_at")

    def has_add_permission(self, request) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    """Rows the hub writes (deliveries, attempts), shown under their parent: nothing to add, edit or delete."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class DeliveryInline(ReadOnlyInline):
    model = Delivery
    fields = ("connection", "generation", "status", "attempts", "next_attempt_at", "vendor_ref", "last_error")
    show_change_link = True


@admin.register(Event)
class EventAdmin(AppendOnlyMixin, admin.ModelAdmin):
    list_display = ("uuid", "event_type_ref", "status", "event_date", "received_at", "source", "nonce")
    list_filter = ("status", "event_type", "source")
    search_fields = ("=uuid", "=nonce", "event_type_ref", "tracker_id")
    date_hierarchy = "received_at"
    readonly_fields = [f.name for f in Event._meta.fields]
    inlines = [DeliveryInline]
    actions = ["replay"]
    list_select_related = ("source",)

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Replay the deliveries not delivered (same nonce)", permissions=["change"])
    def replay(self, request, queryset):
        """Like the console's event-level replay: delivered ones are never sent again from here."""
        replayed, refused = 0, []
        for event in queryset:
            try:
                replayed += len(event_replay(event=event, user=request.user))
            except ValueError as exc:
                refused.append(f"{event.uuid}: {exc}")
        self.message_user(request, f"{replayed} deliveries queued again.")
        for line in refused:
            self.message_user(request, line, messages.WARNING)


ATTEMPT_FIELDS = (
    "started_at",
    "duration_ms",
    "method",
    "url",
    "response_status",
    "outcome",
    "error",
    "request_body",
    "response_body",
)


class AttemptInline(ReadOnlyInline):
    model = Attempt
    fields = ATTEMPT_FIELDS


@admin.register(Delivery)
class DeliveryAdmin(AppendOnlyMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "event",
        "connection",
        "generation",
        "status_badge",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "vendor_ref",
    )
    list_filter = ("status", "connection")
    search_fields = ("=event__uuid", "=nonce", "vendor_ref")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Delivery._meta.fields]
    inlines = [AttemptInline]
    list_select_related = ("event", "connection")

    def has_add_permission(self, request) -> bool:
        return False

    class Media:
        css = {"all": ["admin-status.css"]}  # a class, not a style attribute: the CSP allows no inline style

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: Delivery):
        return format_html('<b class="delivery-status {}">{}</b>', obj.status, obj.get_status_display())


@admin.register(Attempt)
class AttemptAdmin(AppendOnlyMixin, admin.ModelAdmin):
    list_display = ("started_at", "delivery", "method", "url", "response_status", "outcome", "duration_ms")
    list_filter = ("outcome", "response_status", "delivery__connection")
    search_fields = ("=delivery__event__uuid", "url", "error")
    date_hierarchy = "started_at"
    readonly_fields = [f.name for f in Attempt._meta.fields]
    list_select_related = ("delivery__event", "delivery__connection")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AuditEntry)
class AuditEntryAdmin(AppendOnlyMixin, admin.ModelAdmin):
    list_display = ("at", "user", "action", "target")
    list_filter = ("action", "user")
    search_fields = ("action", "target")
    date_hierarchy = "at"
    readonly_fields = ("at", "user", "action", "target", "details")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# -- Webmarketer mirror ------------------------------------------------------------------------------------
from .models import EventTypeConflict, OfflineInteraction, TrashedEvent, WebmarketerSync  # noqa: E402
from .services import webmarketer as wm  # noqa: E402


def _report(modeladmin, request, label: str, call) -> None:
    """Run one service call for an admin action; its failure becomes an error message, not a 500."""
    try:
        text = call()
    except (wm.AnswerError, ValueError) as exc:
        modeladmin.message_user(request, f"{label}: {exc}", messages.ERROR)
    else:
        modeladmin.message_user(request, f"{label}: {text}", messages.SUCCESS)


@admin.action(description="Pull event types from Webmarketer", permissions=["pull_event_types"])
def pull_event_types(modeladmin, request, queryset):
    def pull(connection: VendorConnection) -> str:
        summary = wm.event_types_pull(connection=connection, user=request.user)
        return (
            f"{len(summary.created)} created, {len(summary.updated)} updated, {len(summary.archived)} archived, "
            f"{len(summary.conflicts)} conflicts, {len(summary.local_ahead)} changed here only"
        )

    for connection in queryset.filter(kind="webmarketer"):
        _report(modeladmin, request, connection.name, lambda c=connection: pull(c))


@admin.action(description="Pull trashed events from Webmarketer", permissions=["pull_trash"])
def pull_trashed_events(modeladmin, request, queryset):
    def pull(connection: VendorConnection) -> str:
        pulled = wm.trash_pull(connection=connection)
        return f"{pulled.fetched} listed, {pulled.stored} new, {pulled.linked} linked to our events"

    for connection in queryset.filter(kind="webmarketer"):
        _report(modeladmin, request, connection.name, lambda c=connection: pull(c))


@admin.action(description="Push to Webmarketer (enabled Webmarketer connections)", permissions=["change"])
def push_event_types(modeladmin, request, queryset):
    def push(event_type: EventType, connection: VendorConnection) -> str:
        return (
            "created, _id " + wm.event_type_push(event_type=event_type, connection=connection, user=request.user).wm_id
        )

    connections = list(VendorConnection.objects.filter(kind="webmarketer", enabled=True))
    if not connections:
        modeladmin.message_user(request, "No enabled Webmarketer connection.", messages.ERROR)
    for connection in connections:
        for event_type in queryset:
            _report(
                modeladmin, request, f"{event_type} → {connection.name}", lambda e=event_type, c=connection: push(e, c)
            )


VendorConnectionAdmin.actions = [*VendorConnectionAdmin.actions, pull_event_types, pull_trashed_events]
EventTypeAdmin.actions = [*EventTypeAdmin.actions, push_event_types]


@admin.register(EventTypeConflict)
class EventTypeConflictAdmin(admin.ModelAdmin):
    list_display = ("event_type", "connection", "detected_at", "seen_at", "resolution", "resolved_at", "resolved_by")
    list_filter = (("resolved_at", admin.EmptyFieldListFilter), "resolution", "connection")
    search_fields = ("event_type__reference",)
    date_hierarchy = "detected_at"
    readonly_fields = [f.name for f in EventTypeConflict._meta.fields]
    actions = ["keep_local", "take_remote"]
    list_select_related = ("event_type", "connection", "resolved_by")

    def has_add_permission(self, request) -> bool:
        return False

    def _resolve(self, request, queryset, keep: str) -> None:
        def resolve(conflict: EventTypeConflict) -> str:
            wm.event_type_conflict_resolve(conflict=conflict, keep=keep, user=request.user)
            return "kept ours" if keep == "local" else "took Webmarketer's version"

        for conflict in queryset.filter(resolved_at__isnull=True):
            _report(self, request, str(conflict.event_type), lambda c=conflict: resolve(c))

    @admin.action(description="Keep our version", permissions=["change"])
    def keep_local(self, request, queryset):
        self._resolve(request, queryset, "local")

    @admin.action(description="Take Webmarketer's version", permissions=["change"])
    def take_remote(self, request, queryset):
        self._resolve(request, queryset, "remote")


@admin.register(TrashedEvent)
class TrashedEventAdmin(admin.ModelAdmin):
    list_display = ("wm_id", "event_type_ref", "connection", "processing_date", "reasons", "event", "resolved")
    list_filter = ("resolved", "resolution", "connection", "event_type_ref")
    search_fields = ("=wm_id", "event_type_ref", "=event__uuid", "=event__nonce")
    date_hierarchy = "processing_date"
    readonly_fields = [f.name for f in TrashedEvent._meta.fields if f.name != "resolution_note"] + ["reasons"]
    actions = ["dismiss"]
    list_select_related = ("connection", "event")

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Why")
    def reasons(self, obj: TrashedEvent) -> str:
        return "; ".join(wm.trash_error_explain(e) for e in obj.errors) or "—"

    @admin.action(description="Dismiss (resolved without replay)", permissions=["change"])
    def dismiss(self, request, queryset):
        count = wm.trash_dismiss(items=queryset, user=request.user)
        self.message_user(request, f"{count} trashed events dismissed.")


@admin.register(OfflineInteraction)
class OfflineInteractionAdmin(AppendOnlyMixin, admin.ModelAdmin):
    list_display = ("date", "connection", "status", "response_status", "answer", "origin", "created_at")
    list_filter = ("status", "connection")
    search_fields = ("origin", "answer")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in OfflineInteraction._meta.fields]
    list_select_related = ("connection",)
    change_list_template = "admin/tracking/offlineinteraction/change_list.html"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        from django.urls import path

        upload = path(
            "upload/", self.admin_site.admin_view(self.upload_view), name="tracking_offlineinteraction_upload"
        )
        return [upload, *super().get_urls()]

    def upload_view(self, request):
        """A CSV file of offline interactions and a connection in, the per-row report out."""
        from django.core.exceptions import PermissionDenied
        from django.template.response import TemplateResponse

        from .forms import OfflineCsvForm
        from .views.offline import CONSOLE_MAX_ROWS

        # has_add_permission is False (records are made by sending, not typed in): ask the permission itself.
        if not request.user.has_perm("tracking.add_offlineinteraction"):
            raise PermissionDenied
        form = OfflineCsvForm(request.POST or None, request.FILES or None)
        report = None
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                report = wm.offline_interactions_import_csv(
                    connection=form.cleaned_data["connection"],
                    file=upload,
                    user=request.user,
                    max_rows=CONSOLE_MAX_ROWS,
                )
            except ValueError as exc:  # a bad header or too many rows: nothing was sent
                form.add_error("file", str(exc))
            else:
                counts = f"{report.sent} sent, {report.failed} not sent, of {len(report.rows)} rows"
                self.message_user(
                    request,
                    f"Uploaded {upload.name}: {counts}.",
                    messages.SUCCESS if not report.failed else messages.WARNING,
                )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Upload offline interactions (CSV)",
            "form": form,
            "report": report,
            "max_rows": CONSOLE_MAX_ROWS,
        }
        return TemplateResponse(request, "admin/tracking/offlineinteraction/upload.html", context)


@admin.register(WebmarketerSync)
class WebmarketerSyncAdmin(admin.ModelAdmin):
    list_display = ("connection", "event_types_pulled_at", "trash_pulled_at", "trash_until")
    readonly_fields = [f.name for f in WebmarketerSync._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


# -- Leads: read-only history of state and statistic changes and their deliveries ----------------------------
from .models import LeadAttempt, LeadChange, LeadDelivery  # noqa: E402


class ReadOnlyAdmin(AppendOnlyMixin, admin.ModelAdmin):
    """History is written by the console's lead board only; the admin shows it."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class LeadDeliveryInline(ReadOnlyInline):
    model = LeadDelivery
    fields = ("connection", "status", "attempts", "next_attempt_at", "vendor_ref", "delivered_at", "last_error")
    show_change_link = True


@admin.register(LeadChange)
class LeadChangeAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "event", "kind", "storage_key", "value", "date", "user")
    list_filter = ("kind", "storage_key", "event__event_type")
    search_fields = ("=event__uuid", "storage_key", "user__username")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in LeadChange._meta.fields]
    inlines = [LeadDeliveryInline]
    list_select_related = ("event", "user")


class LeadAttemptInline(ReadOnlyInline):
    model = LeadAttempt
    fields = ATTEMPT_FIELDS


@admin.register(LeadDelivery)
class LeadDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("id", "change", "connection", "status", "attempts", "next_attempt_at", "delivered_at")
    list_filter = ("status", "kind", "connection")
    search_fields = ("=event__uuid", "vendor_ref", "storage_key")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in LeadDelivery._meta.fields]
    inlines = [LeadAttemptInline]
    list_select_related = ("change__event", "connection")


@admin.register(LeadAttempt)
class LeadAttemptAdmin(ReadOnlyAdmin):
    list_display = ("started_at", "delivery", "method", "url", "response_status", "outcome", "duration_ms")
    list_filter = ("outcome", "response_status", "delivery__connection")
    search_fields = ("=delivery__event__uuid", "url", "error")
    date_hierarchy = "started_at"
    readonly_fields = [f.name for f in LeadAttempt._meta.fields]
    list_select_related = ("delivery__change__event", "delivery__connection")
