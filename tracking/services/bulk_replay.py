"""Bulk replay: many deliveries replayed by a Celery job, in chunks ordered by delivery id, with progress,
cancel and an audit entry. Resumable: each chunk and the cursor after it commit together (the job row locked),
so a worker that dies mid-chunk leaves the chunk undone and any later run, or two at once, picks up after the
cursor; the beat sweep re-queues a job whose run stopped."""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from ..models import BulkReplay, Delivery
from ..selectors import bulk_replay_deliveries, bulk_replay_suppressed
from .audit import audit_record
from .replay import delivery_replay_one
from .wake import connections_wake

CHUNK = 100
# Reasons kept on the job for the deliveries it could not replay (the first few; the count says the rest).
REASONS_KEPT = 20


def _enqueue(job_id: int) -> None:
    from ..tasks import bulk_replay_task

    transaction.on_commit(lambda: bulk_replay_task.delay(job_id))


@transaction.atomic
def bulk_replay_create(*, user, criteria: dict, include_delivered: bool = False, description: str = "") -> BulkReplay:
    """A job over the deliveries the criteria select now (later deliveries are never part of it), queued."""
    criteria = {**criteria, "max_id": Delivery.objects.aggregate(m=Max("pk"))["m"] or 0}
    total = bulk_replay_deliveries(criteria=criteria, include_delivered=include_delivered).count()
    # Suppressed deliveries (no consent) are never replayed: counted, so the page says how many were skipped.
    suppressed = bulk_replay_suppressed(criteria=criteria).count()
    job = BulkReplay.objects.create(
        created_by=user if getattr(user, "is_authenticated", False) else None,
        description=description[:300],
        criteria=criteria,
        include_delivered=include_delivered,
        total=total,
        suppressed=suppressed,
    )
    audit_record(
        user=user,
        action="bulk_replay.start",
        target=job,
        details={
            "job": job.pk,
            "what": description,
            "deliveries": total,
            "include_delivered": include_delivered,
            "suppressed_skipped": suppressed,
        },
    )
    _enqueue(job.pk)
    return job


def bulk_replay_cancel(*, job: BulkReplay, user=None) -> None:
    """Ask the job to stop after its current chunk (a queued one stops at once); audited."""
    BulkReplay.objects.filter(pk=job.pk, status__in=[BulkReplay.Status.QUEUED, BulkReplay.Status.RUNNING]).update(
        cancel_requested=True
    )
    BulkReplay.objects.filter(pk=job.pk, status=BulkReplay.Status.QUEUED).update(
        status=BulkReplay.Status.CANCELLED, finished_at=timezone.now()
    )
    job.refresh_from_db()
    handled = job.done + job.failed
    audit_record(user=user, action="bulk_replay.cancel", target=job, details={"job": job.pk, "handled": handled})


def _finish(job: BulkReplay, status: str) -> None:
    """End the job, and say in the audit trail how many it replayed (on behalf of who asked for it)."""
    job.status, job.finished_at = status, timezone.now()
    job.save(update_fields=["status", "finished_at"])
    details = {
        "job": job.pk,
        "status": status,
        "replayed": job.done,
        "not_replayed": job.failed,
        "suppressed_skipped": job.suppressed,
    }
    audit_record(user=job.created_by, action="bulk_replay.finish", target=job, details=details)


def bulk_replay_chunk(*, job_id: int, size: int = CHUNK) -> bool:
    """Replay the next chunk after the job's cursor and move the cursor, in one transaction (the job row locked:
    two runs never handle a chunk twice). Returns whether more may follow."""
    with transaction.atomic():
        job = BulkReplay.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status not in (BulkReplay.Status.QUEUED, BulkReplay.Status.RUNNING):
            return False
        if job.cancel_requested:
            _finish(job, BulkReplay.Status.CANCELLED)
            return False
        if job.status == BulkReplay.Status.QUEUED:
            job.status = BulkReplay.Status.RUNNING
        # The start of the current run: the sweep takes a run whose start is long past as stopped.
        job.started_at = job.started_at or timezone.now()
        selection = bulk_replay_deliveries(criteria=job.criteria, include_delivered=job.include_delivered)
        rows = list(
            selection.filter(pk__gt=job.cursor).select_related("event", "connection", "route").order_by("pk")[:size]
        )
        if not rows:
            _finish(job, BulkReplay.Status.DONE)
            return False
        reasons = [r for r in job.error.splitlines() if r]
        woken = set()
        for delivery in rows:
            if Delivery.objects.filter(
                event_id=delivery.event_id, connection_id=delivery.connection_id, generation__gt=delivery.generation
            ).exists():
                job.done += 1  # replayed meanwhile (another replay): nothing owed twice
                continue
            new, why = delivery_replay_one(latest=delivery, include_delivered=job.include_delivered)
            if new is None:  # e.g. the person's consent no longer allows it (replay.CONSENT_SKIP, with the reason)
                job.failed += 1
                if len(reasons) < REASONS_KEPT:
                    reasons.append(f"{delivery.event.uuid} {why}")
            else:
                job.done += 1
                woken.add(new.connection_id)
        job.cursor = rows[-1].pk
        job.error = "\n".join(reasons)
        job.save(update_fields=["status", "started_at", "done", "failed", "cursor", "error"])
        connections_wake(woken)
    return True


def bulk_replay_run(*, job_id: int, budget: float | None = None) -> bool:
    """Chunks until the job ends or the run has used its time (then True: run again, the cursor holds)."""
    budget = settings.HUB_STUCK_AFTER_SECONDS * settings.HUB_RUN_SHARE if budget is None else budget
    started = time.monotonic()
    BulkReplay.objects.filter(pk=job_id, status=BulkReplay.Status.RUNNING).update(started_at=timezone.now())
    while bulk_replay_chunk(job_id=job_id):
        if time.monotonic() - started >= budget:
            return True
    job = BulkReplay.objects.filter(pk=job_id, status=BulkReplay.Status.DONE).first()
    if job is not None and job.total != job.done + job.failed:
        # Rows left the selection after the count (replayed or changed meanwhile): the total is what was handled.
        BulkReplay.objects.filter(pk=job_id).update(total=job.done + job.failed)
    return False


def bulk_replays_sweep(*, now=None) -> dict[str, int]:
    """Re-queue jobs whose run stopped (a worker died): running ones whose run started longer ago than a run may
    last, queued ones whose message never ran. Harmless if the run is alive after all (the row lock)."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.HUB_STUCK_AFTER_SECONDS)
    running = BulkReplay.objects.filter(status=BulkReplay.Status.RUNNING, started_at__lt=stale)
    queued = BulkReplay.objects.filter(status=BulkReplay.Status.QUEUED).filter(
        Q(started_at__lt=stale) | Q(started_at__isnull=True, created_at__lt=stale)
    )
    jobs = [*running.values_list("pk", flat=True), *queued.values_list("pk", flat=True)]
    from ..tasks import bulk_replay_task

    for pk in jobs:
        BulkReplay.objects.filter(pk=pk).update(started_at=now)  # one re-queue per stale period
        bulk_replay_task.delay(pk)
    return {"bulk_replays_requeued": len(jobs)}
