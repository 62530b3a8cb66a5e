"""Clients of a fresh in-process sandbox (no state file), one per test."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from tracking.sandbox import create_app
from tracking.vendors.webmarketer import Webmarketer


@pytest.fixture
def client() -> TestClient:
    """A client of a fresh sandbox."""
    return TestClient(create_app())


@pytest.fixture
def webmarketer_client() -> TestClient:
    """A client of a fresh sandbox holding a bearer token for the Webmarketer API, through a service account the
    sandbox issued; `app_state` is the sandbox's Webmarketer, to look at what it keeps."""
    app = create_app()
    client = TestClient(app)
    account = client.post("/__sandbox__/webmarketer/service-accounts").json()
    vendor = Webmarketer(
        base_url="http://testserver/webmarketer/api/v1/",
        auth_url="http://testserver/webmarketer/oidc/token",
        settings={"project_id": "my-project"},
        secrets={"service_account": account},
    )
    request = vendor.token_request(datetime.now(UTC))
    token = client.post("/webmarketer/oidc/token", data=request.form).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    client.app_state = app.state.sandbox.vendors["webmarketer"]
    return client
