"""Fixtures of the delivery service tests: a Webmarketer connection and its token endpoint mocked with respx."""

from __future__ import annotations

import httpx
import pytest
import respx

from tests.factories import webmarketer_connection_make

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
