"""The embedded broker: kombu's SQLAlchemy transport, polling faster than its 1 s default.

kombu passes that transport's options to SQLAlchemy's create_engine, so `polling_interval` cannot go in
broker_transport_options: a subclass carries it, registered under the `sqla` scheme."""

from __future__ import annotations

from django.conf import settings
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Transport as SQLAlchemyTransport


class Transport(SQLAlchemyTransport):
    polling_interval = settings.CELERY_POLLING_INTERVAL


def register() -> None:
    TRANSPORT_ALIASES["sqla"] = "project.broker:Transport"
