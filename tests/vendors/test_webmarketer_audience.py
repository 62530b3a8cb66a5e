"""The service-account assertion names the token endpoint it is sent to, so it cannot be replayed elsewhere."""

from __future__ import annotations

from datetime import UTC, datetime

import jwt
from starlette.testclient import TestClient

from tests.factories import service_account_make
from tracking.sandbox import create_app
from tracking.vendors.webmarketer import Webmarketer


def _vendor(auth_url: str, account: dict | None = None) -> Webmarketer:
    return Webmarketer(
        base_url="https://api.webmarketer.io/api/v1/",
        auth_url=auth_url,
        settings={"project_id": "my-project", "token_audience": "https://oauth.webmarketer.io/oidc/token"},
        secrets={"service_account": account or service_account_make()},
    )


def test_the_assertion_audience_is_the_configured_token_endpoint():
    request = _vendor("https://token.elsewhere.example/oidc/token").token_request(datetime.now(UTC))

    claims = jwt.decode(request.form["assertion"], options={"verify_signature": False})
    assert request.url == "https://token.elsewhere.example/oidc/token"
    assert claims["aud"] == "https://token.elsewhere.example/oidc/token"


def test_the_default_token_endpoint_is_webmarketers():
    request = _vendor("").token_request(datetime.now(UTC))

    claims = jwt.decode(request.form["assertion"], options={"verify_signature": False})
    assert request.url == claims["aud"] == "https://oauth.webmarketer.io/oidc/token"


def test_the_sandbox_refuses_an_assertion_made_for_another_token_endpoint():
    client = TestClient(create_app())
    account = client.post("/__sandbox__/webmarketer/service-accounts").json()
    stolen = _vendor("https://attacker.example/oidc/token", account).token_request(datetime.now(UTC))
    own = _vendor("http://testserver/webmarketer/oidc/token", account).token_request(datetime.now(UTC))

    replayed = client.post("/webmarketer/oidc/token", data=stolen.form)
    accepted = client.post("/webmarketer/oidc/token", data=own.form)

    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_grant"
    assert accepted.status_code == 200 and accepted.json()["access_token"]
