"""The Algonomy sandbox (in process): client-credentials tokens, tenant checks, required eventData fields."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from tracking.vendors.algonomy import Algonomy
from tracking.vendors.base import OutgoingEvent

BODY = {"srcId": "WBSTR", "srcType": "Website", "requestTime": 1710000000000, "customer": {"email": "user@mail.com"},
        "eventData": {"customerCode": "100"}}  # fmt: skip


@pytest.fixture
def account(client):
    return client.post("/__sandbox__/algonomy/clients", json={"tenant_hash": "TENANT1"}).json()


def token_for(client, account) -> str:
    form = {"grant_type": "client_credentials", "client_id": account["client_id"],
            "client_secret": account["client_secret"]}  # fmt: skip
    response = client.post("/algonomy/oauth/token", data=form)
    assert response.status_code == 200 and response.json()["expires_in"] == 3600
    return response.json()["access_token"]


def post(client, token: str, event: str = "eventLogin", body: dict = BODY, tenant: str = "TENANT1") -> httpx.Response:
    url = f"/algonomy/callback/rest/events/{tenant}/{event}"
    return client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})


def test_it_issues_tokens_for_client_credentials_only(client, account):
    bad = {"grant_type": "client_credentials", "client_id": account["client_id"], "client_secret": "nope"}
    wrong_grant = {**bad, "grant_type": "password", "client_secret": account["client_secret"]}

    assert client.post("/algonomy/oauth/token", data=bad).status_code == 401
    assert client.post("/algonomy/oauth/token", data=wrong_grant).status_code == 400


def test_it_accepts_an_event_with_202(client, account):
    response = post(client, token_for(client, account))

    assert response.status_code == 202
    stored = client.get("/__sandbox__/algonomy/events").json()
    assert stored["count"] == 1 and stored["data"][0]["eventName"] == "eventLogin"


def test_it_wants_a_bearer_token_it_issued(client, account):
    token_for(client, account)

    assert post(client, "made-up").status_code == 401
    assert client.post("/algonomy/callback/rest/events/TENANT1/eventLogin", json=BODY).status_code == 401


def test_revoked_tokens_are_refused(client, account):
    token = token_for(client, account)
    client.delete("/__sandbox__/algonomy/tokens")

    assert post(client, token).status_code == 401


def test_it_answers_404_for_unknown_tenants_or_events_and_403_for_another_tenant(client, account):
    token = token_for(client, account)
    client.post("/__sandbox__/algonomy/clients", json={"tenant_hash": "TENANT2"})

    assert post(client, token, event="eventBogus").status_code == 404
    assert post(client, token, tenant="NOBODY").status_code == 404
    assert post(client, token, tenant="TENANT2").status_code == 403


def test_it_answers_400_when_required_fields_are_missing(client, account):
    token = token_for(client, account)

    response = post(client, token, event="eventCheckout", body={**BODY, "eventData": {"transactionId": "727"}})
    no_customer = post(client, token, body={k: v for k, v in BODY.items() if k != "customer"})

    assert response.status_code == 400
    assert "eventData.tenderType is required" in response.json()["errors"]
    assert "eventData.shippingInfo is required" in response.json()["errors"]
    assert no_customer.status_code == 400


def test_the_hubs_module_talks_to_it_end_to_end(client, account):
    vendor = Algonomy(base_url="http://testserver/algonomy/", auth_url="http://testserver/algonomy",
                      settings={"tenant_hash": "TENANT1", "src_id": "WBSTR", "src_type": "Website"},
                      secrets={k: account[k] for k in ("client_id", "client_secret")})  # fmt: skip
    vendor.check()
    now = datetime.now(UTC)
    request = vendor.token_request(now)
    token = vendor.parse_token(client.post(request.url, data=request.form), now).value
    mapping = {"customer.customerCode": "=100", "eventData.customerCode": "data.customerCode"}
    event = OutgoingEvent(key=1, nonce="n1", event_type="login", event_date=now, data={"customerCode": "100"},
                          vendor_event_name="eventLogin", mapping=mapping)  # fmt: skip

    (sent,) = vendor.build([event], token)
    response = client.post(sent.url, json=sent.json, headers=sent.headers)

    assert vendor.classify(sent, response).outcome == "delivered"
