"""Fixtures of the delivery service tests: a Webmarketer connection and its token endpoint mocked with respx."""

from __future__ import annotations

import httpx
import pytest
import respx

from tests.factories import event_type_make, route_make, source_make, webmarketer_connection_make
from tracking.models import Delivery
from tracking.services.delivery import connection_dispatch
from tracking.services.ingest import events_ingest

TOKEN_URL = "https://oauth.webmarketer.io/oidc/token"
EVENTS_URL = "https://api.webmarketer.io/api/v1/events"
TOKEN = "tok-secret-123456"


@pytest.fixture
def connection():
    return webmarketer_connection_make(retry_base_seconds=10, retry_max_seconds=600)


@pytest.fixture
def vendor():
    """Webmarketer's token endpoint answers TOKEN; each test mocks the events endpoint as it needs."""
    with respx.mock(assert_all_called=False) as mock:
        mock.post(TOKEN_URL).mock(return_value=httpx.Response(200, json={"access_token": TOKEN, "expires_in": 3600}))
        yield mock


def contact_forms_ingest(connection, n: int = 1) -> list[Delivery]:
    """n contact forms (nonces n-0, n-1, …) ingested from a new source, routed to `connection`: their deliveries."""
    route_make(event_type_make(), connection)
    source, _ = source_make()
    items = [
        {"eventType": "contact-form", "nonce": f"n-{i}", "data": {"email": f"p{i}@example.com", "message": "hi"}}
        for i in range(n)
    ]
    events_ingest(source=source, items=items)
    return list(Delivery.objects.order_by("id"))


def dispatch(connection) -> int:
    """One dispatch run of the connection, in process; how many deliveries it claimed."""
    return connection_dispatch(connection_id=connection.pk)
