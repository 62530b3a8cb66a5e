"""Celery tasks: thin; each loads ids and calls one service."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from .services import delivery


@shared_task(
    name="tracking.dispatch",
    acks_late=True,
    autoretry_for=(OperationalError,),  # a locked SQLite file or a dropped DB connection
    retry_backoff=1,
    retry_backoff_max=30,
    max_retries=10,
)
def dispatch_connection(connection_id: int) -> int:
    claimed = delivery.connection_dispatch(connection_id=connection_id)
    if claimed:
        # More may be due: go again, behind the other connections' runs already queued (fairness).
        dispatch_connection.delay(connection_id)
    return claimed


@shared_task(name="tracking.sweep", acks_late=True, autoretry_for=(OperationalError,), max_retries=3)
def sweep() -> dict[str, int]:
    return delivery.deliveries_sweep()
