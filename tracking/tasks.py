"""Celery tasks: thin; each loads ids and calls one service."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from .services import delivery, leads

# The work tasks' retry policy: a locked SQLite file or a dropped DB connection is retried with backoff.
WORK_RETRY = {
    "acks_late": True,
    "autoretry_for": (OperationalError,),
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "max_retries": 10,
}


@shared_task(name="tracking.dispatch", **WORK_RETRY)
def dispatch_connection(connection_id: int) -> int:
    claimed = delivery.connection_dispatch(connection_id=connection_id)
    # More may be due: go again, behind the other connections' runs already queued (fairness); not after a run
    # that only failed (the connection is failing): its next probe waits for a wake, the sweep or the backoff.
    # A rate-limited connection goes again after its next slice of requests is due (dispatch_again_in).
    if claimed and (countdown := delivery.dispatch_again_in(connection_id)) is not None:
        if countdown:
            dispatch_connection.apply_async((connection_id,), countdown=countdown)
        else:
            dispatch_connection.delay(connection_id)
    return claimed


@shared_task(name="tracking.sweep", acks_late=True, autoretry_for=(OperationalError,), max_retries=3)
def sweep() -> dict[str, int]:
    from .services.bulk_replay import bulk_replays_sweep

    return {**delivery.deliveries_sweep(), **leads.lead_changes_sweep(), **bulk_replays_sweep()}


@shared_task(name="tracking.dispatch_lead_changes", **WORK_RETRY)
def dispatch_lead_changes(connection_id: int) -> int:
    claimed = leads.lead_changes_dispatch(connection_id=connection_id)
    if claimed:
        # More may be due (e.g. the next change of a lane that had one in flight): go again.
        dispatch_lead_changes.delay(connection_id)
    return claimed


def _webmarketer_ids() -> list[int]:
    from .models import VendorConnection, VendorKind

    return list(VendorConnection.objects.filter(kind=VendorKind.WEBMARKETER, enabled=True).values_list("pk", flat=True))


@shared_task(name="tracking.event_types_sync", acks_late=True, autoretry_for=(OperationalError,), max_retries=3)
def event_types_sync(connection_id: int | None = None) -> dict | None:
    """Beat calls it without an id: one task per enabled Webmarketer connection, so one slow project
    never holds up the others."""
    from .models import VendorConnection
    from .services import webmarketer

    if connection_id is None:
        for pk in _webmarketer_ids():
            event_types_sync.delay(pk)
        return None
    connection = VendorConnection.objects.get(pk=connection_id)
    return webmarketer.event_types_pull(connection=connection).as_dict()


@shared_task(name="tracking.trash_pull_all", acks_late=True, autoretry_for=(OperationalError,), max_retries=3)
def trash_pull_all(connection_id: int | None = None) -> dict | None:
    """Beat calls it without an id: one task per enabled Webmarketer connection."""
    from .models import VendorConnection
    from .services import webmarketer

    if connection_id is None:
        for pk in _webmarketer_ids():
            trash_pull_all.delay(pk)
        return None
    pulled = webmarketer.trash_pull(connection=VendorConnection.objects.get(pk=connection_id))
    return {"fetched": pulled.fetched, "stored": pulled.stored, "linked": pulled.linked}


@shared_task(name="tracking.bulk_replay", **WORK_RETRY)
def bulk_replay_task(job_id: int) -> bool:
    """One time-boxed run of a bulk replay; again while it has more (the cursor holds its place)."""
    from .services.bulk_replay import bulk_replay_run

    more = bulk_replay_run(job_id=job_id)
    if more:
        bulk_replay_task.delay(job_id)
    return more


@shared_task(name="tracking.retention", acks_late=True, autoretry_for=(OperationalError,), max_retries=3)
def retention() -> dict[str, int]:
    """Redact the personal data of events past their retention, in batches (time-boxed per run)."""
    from .services.privacy import retention_redact

    return retention_redact()
