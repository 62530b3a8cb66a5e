"""Records of the hub: connections, event types, routes, sources, the event log and its deliveries."""

from __future__ import annotations

import hashlib
import math
import uuid

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone

from .crypto import EncryptedJSONField

reference_validator = RegexValidator(
    r"^[a-z0-9]+(?:-[a-z0-9]+)*$", "Use lowercase letters, digits and single dashes (e.g. contact-form)."
)


class VendorKind(models.TextChoices):
    WEBMARKETER = "webmarketer", "Webmarketer"
    ACQUIA = "acquia", "Acquia CDP webtag tracker"
    ALGONOMY = "algonomy", "Algonomy rCDP"
    TRACARDI = "tracardi", "Tracardi webhooks"
    TRACIFY = "tracify", "Tracify"


class VendorConnection(models.Model):
    """One account at one vendor: where to send, with which credentials, how fast and how patiently."""

    kind = models.CharField(max_length=20, choices=VendorKind.choices)
    name = models.CharField(max_length=100, unique=True)
    enabled = models.BooleanField(default=True)
    paused = models.BooleanField(
        default=False, help_text="Paused: deliveries are still queued and kept due, nothing is sent until resumed."
    )
    base_url = models.URLField(help_text="API base, e.g. https://api.webmarketer.io/api/v1/")
    auth_url = models.URLField(blank=True, help_text="Token endpoint, where the vendor has one.")
    settings = models.JSONField(default=dict, blank=True, help_text="Vendor settings, e.g. project_id.")
    secrets = EncryptedJSONField(blank=True, default=dict, editable=False)
    timeout_seconds = models.FloatField(default=10.0, validators=[MinValueValidator(0.1)])
    max_rate = models.FloatField(
        null=True, blank=True, help_text="Requests per second per worker process; empty for no limit."
    )
    batch_size = models.PositiveIntegerField(default=50, help_text="Deliveries claimed per dispatch run.")
    retry_base_seconds = models.FloatField(default=10.0, help_text="First retry delay (capped exponential).")
    retry_max_seconds = models.FloatField(default=600.0, help_text="Longest delay between two attempts.")
    give_up_after_seconds = models.PositiveIntegerField(
        default=24 * 3600, help_text="A delivery still failing this long after it was created is failed."
    )
    circuit_failures = models.PositiveIntegerField(default=0, editable=False)
    circuit_open_until = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def circuit_open(self) -> bool:
        return bool(self.circuit_open_until and self.circuit_open_until > timezone.now())


class EventType(models.Model):
    """A Webmarketer event type: its fields (including states and statistics) define the schema."""

    reference = models.CharField(max_length=64, unique=True, validators=[reference_validator])
    name = models.CharField(max_length=200)
    fields = models.JSONField(default=list, blank=True, help_text="Webmarketer field list.")
    metadata = models.JSONField(default=dict, blank=True)
    phone_parsing_config = models.JSONField(default=list, blank=True)
    expiration_policy = models.JSONField(null=True, blank=True)
    archived_at = models.DateTimeField(null=True, blank=True)
    wm_id = models.CharField("Webmarketer _id", max_length=64, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    synced_hash = models.CharField(
        max_length=64,
        blank=True,
        editable=False,
        help_text="Digest of the version both sides had at the last sync: tells local and remote changes apart.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["reference"]

    def __str__(self) -> str:
        return self.reference

    def _by_entity(self, entity: str) -> list[dict]:
        return [f for f in self.fields if f.get("entity") == entity]

    @property
    def states(self) -> list[dict]:
        return self._by_entity("state")

    @property
    def statistics(self) -> list[dict]:
        return self._by_entity("statistic")


class Source(models.Model):
    """A company system allowed to post events; only a hash of its token is kept."""

    name = models.CharField(max_length=100, unique=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(max_length=12, editable=False)
    enabled = models.BooleanField(default=True)
    default_consent = models.JSONField(
        default=list,
        blank=True,
        help_text="Purposes an event of this source grants when it carries no consent of its own ([]: none).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def hash_token(token: str) -> str:
        # Tokens are 256-bit random: a plain digest is enough, no slow KDF needed.
        return hashlib.sha256(token.encode()).hexdigest()


class Route(models.Model):
    """Send events of one type to one connection, under the vendor's name, with a field mapping."""

    event_type = models.ForeignKey(EventType, on_delete=models.CASCADE, related_name="routes")
    connection = models.ForeignKey(VendorConnection, on_delete=models.CASCADE, related_name="routes")
    vendor_event_name = models.CharField(
        max_length=100, blank=True, help_text="The vendor's event name; empty = the event type reference."
    )
    mapping = models.JSONField(default=dict, blank=True, help_text="Vendor attribute → source path.")
    options = models.JSONField(default=dict, blank=True)
    purposes = models.JSONField(
        default=list, blank=True, help_text="Consent purposes an event needs to go this way ([]: none needed)."
    )
    enabled = models.BooleanField(default=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event_type", "connection"], name="route_unique")]

    def __str__(self) -> str:
        return f"{self.event_type} → {self.connection.name}"


class Event(models.Model):
    """One event as received: kept whether valid or not, never lost."""

    class Status(models.TextChoices):
        OK = "ok", "OK"
        INVALID = "invalid", "Invalid"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    nonce = models.CharField(max_length=200, db_index=True, help_text="The caller's dedup key, unique per source.")
    vendor_nonce = models.CharField(
        max_length=255, unique=True, help_text="The dedup key vendors see: unique across all sources."
    )
    event_type = models.ForeignKey(EventType, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    event_type_ref = models.CharField(max_length=200, db_index=True)
    data = models.JSONField(default=dict)
    event_date = models.DateTimeField()
    tracker_id = models.CharField(max_length=200, blank=True)
    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OK, db_index=True)
    errors = models.JSONField(default=list, blank=True)
    # The columns below are nullable without a default: SQLite adds such columns in place (ALTER TABLE ADD COLUMN),
    # where remaking the log would also drop the text-search triggers of 0009_text_search.
    context = models.JSONField(
        null=True,
        blank=True,
        help_text="What came with the event beside its data (Segment: context, the user's traits at receipt, "
        "userId, anonymousId); route mappings read it as context.…, traits.…, userId, anonymousId.",
    )
    consent = models.JSONField(
        null=True, blank=True, help_text="Purposes the person consented to; empty (null): stored before consent."
    )
    consent_origin = models.CharField(
        max_length=10,
        null=True,
        blank=True,
        choices=[("event", "sent with the event"), ("source", "the source's default"), ("update", "a consent update")],
    )
    redacted_at = models.DateTimeField(
        null=True, blank=True, help_text="When its personal data was erased (retention or an erasure request)."
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["source", "nonce"], name="event_source_nonce")]
        indexes = [
            models.Index(fields=["event_type_ref", "-received_at", "-id"], name="event_type_log"),
            # The lead board: one keyset page per lead type, read in order (selectors.leads_page).
            models.Index(fields=["event_type", "-received_at", "-id"], name="event_type_id_log"),
            # The log's search finds an exact tracker id without reading the log.
            models.Index(fields=["tracker_id"], name="event_tracker_id"),
        ]
        # The data's text search (selectors.data_contains) has an index the ORM does not describe, made by
        # migration 0009_text_search: a trigram FTS5 table on SQLite, a pg_trgm GIN index on PostgreSQL.
        permissions = [
            ("view_leads", "Can see the lead board"),
            ("change_leads", "Can change lead states and turnover"),
            ("change_consent", "Can update a person's consent"),
            ("erase_person", "Can erase a person's data"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type_ref} {self.uuid}"

    def save(self, *args, **kwargs) -> None:
        if not self.vendor_nonce:
            self.vendor_nonce = self.vendor_nonce_for(self.source_id, self.nonce)
        super().save(*args, **kwargs)

    @staticmethod
    def vendor_nonce_for(source_id: int | None, nonce: str) -> str:
        """The vendors' dedup key: the caller's nonce prefixed by its source (digits, then a colon), so two
        sources may use the same nonce and the vendors still see two events."""
        return f"{source_id or 0}:{nonce}"


class Delivery(models.Model):
    """An event owed to one connection (one row per replay generation): the transactional outbox."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        RETRYING = "retrying", "Retrying"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        SUPPRESSED = "suppressed", "Suppressed (no consent)"

    DUE_STATUSES = (Status.PENDING, Status.RETRYING)

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    connection = models.ForeignKey(VendorConnection, on_delete=models.CASCADE, related_name="deliveries")
    route = models.ForeignKey(Route, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries")
    generation = models.PositiveIntegerField(default=0, help_text="0 for the first send, +1 per replay.")
    nonce = models.CharField(max_length=255, help_text="The vendor's dedup key for this send.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    take_backs = models.PositiveIntegerField(
        default=0, help_text="Times the sweep took it back from a worker that stopped while sending."
    )
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    vendor_ref = models.CharField(max_length=200, blank=True, help_text="Id the vendor gave the event.")
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "deliveries"
        constraints = [models.UniqueConstraint(fields=["event", "connection", "generation"], name="delivery_unique")]
        indexes = [
            models.Index(fields=["connection", "status", "next_attempt_at"], name="delivery_due"),
            # The sweep: due rows and rows in flight are a sliver of the table; partial indexes keep it small.
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status__in=["pending", "retrying"]),
                name="delivery_due_now",
            ),
            models.Index(fields=["claimed_at"], condition=models.Q(status="sending"), name="delivery_in_flight"),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.connection.name} [{self.status}]"


class Exchange(models.Model):
    """One HTTP exchange with a vendor, secrets redacted: what Attempt and LeadAttempt record."""

    class Outcome(models.TextChoices):
        DELIVERED = "delivered", "Delivered"
        RETRY = "retry", "Retry"
        FAILED = "failed", "Failed"

    started_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(default=0)
    method = models.CharField(max_length=10)
    url = models.TextField()
    request_body = models.TextField(blank=True)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    error = models.TextField(blank=True)

    class Meta:
        abstract = True
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.method} {self.url} → {self.response_status or self.error}"


class Attempt(Exchange):
    """One HTTP exchange with a vendor for one delivery, secrets redacted."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_set")


class BulkReplay(models.Model):
    """A replay of many deliveries run as a Celery job: what it selects, how far it got (resumable from
    `cursor` after a worker restart), and who asked for it."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    description = models.CharField(max_length=300, blank=True, help_text="What was selected, in words.")
    criteria = models.JSONField(default=dict, help_text="The selection: delivery ids, or the event log's filters.")
    include_delivered = models.BooleanField(
        default=False, help_text="Delivered ones are sent again too (confirmed by the user, naming the vendors)."
    )
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    suppressed = models.PositiveIntegerField(
        default=0, help_text="Deliveries of the selection left alone: the person's consent does not allow them."
    )
    cursor = models.BigIntegerField(default=0, help_text="The last delivery id handled: a restart resumes after it.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    cancel_requested = models.BooleanField(default=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"bulk replay #{self.pk} ({self.done + self.failed}/{self.total}, {self.status})"


class AuditEntry(models.Model):
    """Who did what in the console."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=100)
    target = models.CharField(max_length=300, blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.user} {self.action} {self.target}"


# -- Webmarketer mirror: sync watermarks, event-type conflicts, trashed events, offline interactions ---------
class WebmarketerSync(models.Model):
    """Where the pulls of a Webmarketer connection stand; kept off the connection's settings so a pull is
    never an edit (editing a connection rebuilds its session and would race staff edits)."""

    connection = models.OneToOneField(VendorConnection, on_delete=models.CASCADE, related_name="webmarketer_sync")
    trash_until = models.DateTimeField(
        null=True, blank=True, help_text="Upper bound of the last trash pull; the next one starts there."
    )
    trash_pulled_at = models.DateTimeField(null=True, blank=True)
    event_types_pulled_at = models.DateTimeField(null=True, blank=True)
    event_types_summary = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"sync of {self.connection.name}"


class EventTypeConflict(models.Model):
    """A pull found an event type changed both here and in Webmarketer since the last sync: nothing was
    overwritten; staff choose a side. At most one open conflict per event type."""

    class Resolution(models.TextChoices):
        KEPT_LOCAL = "kept_local", "Kept ours"
        TOOK_REMOTE = "took_remote", "Took Webmarketer's"
        CONVERGED = "converged", "Both sides became equal"

    event_type = models.ForeignKey(EventType, on_delete=models.CASCADE, related_name="conflicts")
    connection = models.ForeignKey(VendorConnection, on_delete=models.CASCADE, related_name="+")
    remote = models.JSONField(help_text="Webmarketer's version, as last pulled.")
    local = models.JSONField(help_text="Our version when the conflict was last seen.")
    remote_hash = models.CharField(max_length=64)
    detected_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(default=timezone.now)
    resolution = models.CharField(max_length=20, choices=Resolution.choices, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-detected_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["event_type"], condition=models.Q(resolved_at__isnull=True), name="event_type_conflict_open"
            )
        ]

    def __str__(self) -> str:
        return f"conflict on {self.event_type}"


class TrashedEvent(models.Model):
    """An event Webmarketer could not process (kept in its trash), linked to our event when the ids match."""

    class Resolution(models.TextChoices):
        REPLAYED = "replayed", "Fixed and replayed"
        DISMISSED = "dismissed", "Dismissed"

    wm_id = models.CharField("Webmarketer _id", max_length=64, unique=True)
    connection = models.ForeignKey(VendorConnection, on_delete=models.CASCADE, related_name="trashed_events")
    event_type_ref = models.CharField(max_length=200, db_index=True)
    event_type_wm_id = models.CharField("Webmarketer eventTypeId", max_length=64, blank=True)
    errors = models.JSONField(default=list, blank=True)
    processing_date = models.DateTimeField(null=True, blank=True, db_index=True)
    raw_event_date = models.DateTimeField(null=True, blank=True)
    raw = models.JSONField(default=dict, blank=True, help_text="The item as Webmarketer listed it.")
    event = models.ForeignKey(Event, null=True, blank=True, on_delete=models.SET_NULL, related_name="trashed")
    pulled_at = models.DateTimeField(default=timezone.now)
    resolved = models.BooleanField(default=False, db_index=True)
    resolution = models.CharField(max_length=20, choices=Resolution.choices, blank=True)
    resolution_note = models.TextField(blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    replay_delivery = models.ForeignKey(
        Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="The fixed send."
    )

    class Meta:
        ordering = ["-processing_date", "-id"]

    def __str__(self) -> str:
        return f"{self.event_type_ref} {self.wm_id}"


class OfflineInteraction(models.Model):
    """One offline interaction sent to Webmarketer, with its answer (a rejection's message verbatim)."""

    class Status(models.TextChoices):
        SENT = "sent", "Sent"
        REJECTED = "rejected", "Rejected by Webmarketer"
        FAILED = "failed", "Not delivered"

    connection = models.ForeignKey(VendorConnection, on_delete=models.CASCADE, related_name="offline_interactions")
    date = models.DateTimeField()
    user_data = models.JSONField(default=dict)
    node_data = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, db_index=True)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    answer = models.TextField(blank=True, help_text="Webmarketer's answer, or why it could not be reached.")
    origin = models.CharField(max_length=300, blank=True, help_text="e.g. the CSV file and row.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"offline {self.date:%Y-%m-%d} → {self.connection.name} [{self.status}]"


# -- Leads: state and statistic changes of events, each delivered to Webmarketer ---------------------------
class LeadChange(models.Model):
    """One change a person made to a lead (an event whose type declares states): a state set to 0 or 1, or a
    statistic (e.g. turnover) set to an amount, at a business date. The history is the truth: a lead's
    current value per storageKey is its latest change."""

    class Kind(models.TextChoices):
        STATE = "state", "State"
        STATISTIC = "statistic", "Statistic"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="lead_changes")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    storage_key = models.CharField(max_length=100)
    value = models.DecimalField(max_digits=14, decimal_places=2, help_text="0 or 1 for a state; an amount.")
    date = models.DateTimeField(help_text="When it happened (sent to Webmarketer as the update's date).")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["event", "kind", "storage_key", "-id"], name="lead_change_latest")]

    def __str__(self) -> str:
        return f"{self.storage_key}={self.value} on {self.event}"


class LeadDelivery(models.Model):
    """A lead change owed to one Webmarketer connection the event went to. It waits for the event's vendor
    id, then goes like an event delivery (same retry rules). Changes of one lane (event, connection, kind,
    storageKey) go in the order they were made: one in flight at a time, and an older change never goes
    after a newer one (it is superseded: Webmarketer keeps the latest value with its date)."""

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting for the event's Webmarketer id"
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        DELIVERED = "delivered", "Delivered"
        RETRYING = "retrying", "Retrying"
        FAILED = "failed", "Failed"
        SUPERSEDED = "superseded", "Superseded by a newer change"

    DUE_STATUSES = (Status.PENDING, Status.RETRYING)

    change = models.ForeignKey(LeadChange, on_delete=models.CASCADE, related_name="deliveries")
    connection = models.ForeignKey(VendorConnection, on_delete=models.CASCADE, related_name="lead_deliveries")
    # The lane, copied from the change so that the database itself keeps one change in flight per lane.
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=LeadChange.Kind.choices)
    storage_key = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts since it was last queued.")
    take_backs = models.PositiveIntegerField(
        default=0, help_text="Times the sweep took it back from a worker that stopped while sending."
    )
    next_attempt_at = models.DateTimeField(default=timezone.now)
    queued_at = models.DateTimeField(
        default=timezone.now, help_text="When it became sendable (or was retried): the give-up window starts here."
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    vendor_ref = models.CharField(max_length=200, blank=True, help_text="The Webmarketer event id it updates.")
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "lead deliveries"
        constraints = [
            models.UniqueConstraint(fields=["change", "connection"], name="lead_delivery_unique"),
            models.UniqueConstraint(
                fields=["event", "connection", "kind", "storage_key"],
                condition=models.Q(status="sending"),
                name="lead_delivery_one_in_flight",
            ),
        ]
        indexes = [
            models.Index(fields=["connection", "status", "next_attempt_at"], name="lead_delivery_due"),
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status__in=["pending", "retrying"]),
                name="lead_delivery_due_now",
            ),
            models.Index(fields=["claimed_at"], condition=models.Q(status="sending"), name="lead_delivery_in_flight"),
            models.Index(fields=["id"], condition=models.Q(status="waiting"), name="lead_delivery_waiting"),
        ]

    def __str__(self) -> str:
        return f"{self.change} → {self.connection.name} [{self.status}]"


class LeadAttempt(Exchange):
    """One HTTP exchange with Webmarketer for one lead delivery, secrets redacted."""

    delivery = models.ForeignKey(LeadDelivery, on_delete=models.CASCADE, related_name="attempt_set")


# -- Rollups: what the dashboard reads instead of the log ---------------------------------------------------
class HourlyCount(models.Model):
    """How many things happened in one UTC hour (period "h") or day (period "d"), per key; kept up to date by the
    services that change the rows (tracking/services/rollups.py) and rebuilt from the log by `manage.py
    rollups_rebuild`. Both grains are written by the same statement; a chart of days reads 24 times fewer rows.

    metric "event": event_type_ref, status ok | invalid, in the hour the event was received.
    metric "delivery": connection_id, final status (delivered | failed | cancelled | suppressed), in the hour the
    delivery was created (the event's receipt for a first send), so the chart shows the fate of the events received.
    metric "trash": event_type_ref, status = the reason Webmarketer gave, in the hour it processed the event.
    metric "lead": event_type_ref, status "state:<key>" (leads whose latest value is 1) or "statistic:<key>" (the
    sum of latest values, in cents), in the hour the lead was received; each change adds latest-now − latest-before.
    Keys never hold NULL (0 and "" instead): an upsert's ON CONFLICT only matches equal, non-null keys."""

    class Metric(models.TextChoices):
        EVENT = "event", "Events received"
        DELIVERY = "delivery", "Deliveries by final status"
        TRASH = "trash", "Events trashed by Webmarketer"
        LEAD = "lead", "Leads' current states and statistics"

    class Period(models.TextChoices):
        HOUR = "h", "Hour"
        DAY = "d", "Day"

    period = models.CharField(max_length=1, choices=Period.choices, default=Period.HOUR)
    hour = models.DateTimeField(help_text="Where the period starts (UTC): an hour, or midnight for a day.")
    metric = models.CharField(max_length=10, choices=Metric.choices)
    event_type_ref = models.CharField(max_length=200, default="", blank=True)
    connection_id = models.BigIntegerField(default=0, help_text="The VendorConnection's id (0: none).")
    status = models.CharField(max_length=200, default="", blank=True)
    count = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["hour", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["period", "hour", "metric", "event_type_ref", "connection_id", "status"],
                name="hourly_count_period_key",
            )
        ]
        indexes = [models.Index(fields=["period", "metric", "hour"], name="hourly_count_period_metric")]
        permissions = [
            ("view_dashboard", "Can see the dashboard"),
            ("view_insights", "Can query Webmarketer insights"),
        ]

    def __str__(self) -> str:
        key = self.event_type_ref or self.connection_id
        return f"{self.hour:%Y-%m-%d %H}h ({self.get_period_display()}) {self.metric} {key} {self.status}"


class LatencyCount(models.Model):
    """Delivered deliveries of one connection per UTC hour or day (period, as HourlyCount; of the delivery's
    creation) and latency bucket (creation → delivered): p50/p95 come from the counts.

    Buckets are log-spaced by √2 from 10 ms: bucket 0 is under 10 ms, bucket k (0 < k < BUCKETS - 1) is
    [10·√2^(k-1), 10·√2^k) ms, the last one everything from about 1.5 days on (retries run up to 24 h)."""

    BASE_MS = 10.0
    BUCKETS = 50

    period = models.CharField(max_length=1, choices=HourlyCount.Period.choices, default=HourlyCount.Period.HOUR)
    hour = models.DateTimeField(help_text="Where the period starts (UTC).")
    connection_id = models.BigIntegerField()
    bucket = models.PositiveSmallIntegerField()
    count = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["hour", "connection_id", "bucket"]
        constraints = [
            models.UniqueConstraint(
                fields=["period", "hour", "connection_id", "bucket"], name="latency_count_period_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h connection {self.connection_id} bucket {self.bucket}: {self.count}"

    @classmethod
    def bucket_of(cls, ms: float) -> int:
        """The bucket of a latency in milliseconds."""
        if ms < cls.BASE_MS:
            return 0
        return min(cls.BUCKETS - 1, 1 + int(math.floor(2 * math.log2(ms / cls.BASE_MS))))

    @classmethod
    def upper_ms(cls, bucket: int) -> float:
        """A bucket's upper bound in milliseconds (for the last bucket, which has none: its lower bound)."""
        return cls.BASE_MS * 2 ** (min(bucket, cls.BUCKETS - 2) / 2)


# -- Segment-compatible ingest: per-source settings, the traits of the people it identified -----------------
SEGMENT_CALLS = ("track", "identify", "page", "screen", "group", "alias")


def segment_calls_default() -> list[str]:
    return list(SEGMENT_CALLS)


class SegmentSettings(models.Model):
    """How one source's Segment calls (/v1/…) become events: which calls it may make, how its event names and
    property keys map onto the hub's, which event type a page or screen view is, which browser origins may post."""

    source = models.OneToOneField(Source, on_delete=models.CASCADE, related_name="segment")
    calls = models.JSONField(default=segment_calls_default, blank=True, help_text="The Segment calls accepted.")
    event_aliases = models.JSONField(
        default=dict,
        blank=True,
        help_text='Segment event name → event type reference, e.g. {"Order Completed": "purchase"}.',
    )
    property_renames = models.JSONField(
        default=dict, blank=True, help_text='Segment property key → data key, e.g. {"orderId": "order_id"}.'
    )
    page_view_type = models.ForeignKey(
        EventType,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The event type of page and screen calls; none: they are kept as invalid events.",
    )
    cors_origins = models.JSONField(
        default=list,
        blank=True,
        help_text="Browser origins allowed to post (e.g. https://www.example.com); none: CORS off.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Segment settings"
        verbose_name_plural = "Segment settings"

    def __str__(self) -> str:
        return f"Segment settings of {self.source}"


class SegmentProfile(models.Model):
    """One person as Segment calls identified them: the traits of their identify calls (merged, latest wins) and
    their group. Each of their ids (userId, anonymousId, an alias's previousId) is a SegmentIdentity."""

    traits = models.JSONField(default=dict, blank=True)
    group_id = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return f"Segment profile #{self.pk}"


class SegmentIdentity(models.Model):
    """One id (a userId or anonymousId) of a profile: an alias call, or an identify with both ids, joins them."""

    external_id = models.CharField(max_length=200, unique=True)
    profile = models.ForeignKey(SegmentProfile, on_delete=models.CASCADE, related_name="identities")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["external_id"]
        verbose_name_plural = "Segment identities"

    def __str__(self) -> str:
        return self.external_id


class SegmentGroup(models.Model):
    """A group (company, account) of Segment group calls, with its traits."""

    group_id = models.CharField(max_length=200, unique=True)
    traits = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["group_id"]

    def __str__(self) -> str:
        return self.group_id
