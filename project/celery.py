"""Celery application: configured from Django settings (CELERY_*), tasks found in installed apps."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")


def _embedded_broker() -> None:
    from django.conf import settings

    if settings.CELERY_BROKER_URL.startswith("sqla+"):
        from .broker import register

        register()


app = Celery("hub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
_embedded_broker()


@app.on_after_finalize.connect
def setup_periodic_tasks(sender: Celery, **kwargs) -> None:
    """Beat schedule: the sweep is what makes retries and crash recovery happen."""
    from django.conf import settings

    sender.add_periodic_task(settings.HUB_SWEEP_SECONDS, sender.signature("tracking.sweep"), name="sweep")
    sender.add_periodic_task(
        settings.HUB_EVENT_TYPES_SYNC_SECONDS, sender.signature("tracking.event_types_sync"), name="event types sync"
    )
    sender.add_periodic_task(
        settings.HUB_TRASH_PULL_SECONDS, sender.signature("tracking.trash_pull_all"), name="trash pull"
    )
    sender.add_periodic_task(settings.HUB_RETENTION_SECONDS, sender.signature("tracking.retention"), name="retention")
