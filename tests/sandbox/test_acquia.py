"""The Acquia sandbox (in process): Basic-auth tokens, the daily bcrypt accessKey, ten objects per entity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import bcrypt
import httpx
import pytest
from starlette.testclient import TestClient

from tracking.vendors.acquia import Acquia, access_key
from tracking.vendors.base import OutgoingEvent, VendorRequest

TRACKER = "/acquia/v2/999/dw/tracker"
EVENT = {"Type": "login", "EventTimeStamp": "2024-06-21T12:36:37Z", "Email": "a@b.c"}


@pytest.fixture
def user(client):
    return client.post("/__sandbox__/acquia/users").json()


@pytest.fixture
def token(client, user):
    response = client.post("/acquia/token?action=create&scheme=a1webtag", auth=(user["username"], user["password"]))
    assert response.status_code == 200
    return response.json()["token"]


def today_key(token: str) -> str:
    return access_key(token, datetime.now(UTC).date())


def send(client: TestClient, request: VendorRequest) -> httpx.Response:
    return client.request(request.method, request.url, params=request.params, json=request.json,
                          data=request.form, headers=request.headers)  # fmt: skip


def track(client, key: str | None, body: dict) -> httpx.Response:
    params = {"scheme": "a1webtag", **({"accessKey": key} if key else {})}
    return client.post(TRACKER, params=params, json=body)


def test_it_issues_a_token_only_for_good_basic_credentials(client, user):
    url = "/acquia/token?action=create&scheme=a1webtag"

    assert client.post(url, auth=(user["username"], "wrong")).status_code == 401
    assert client.post(url).status_code == 401
    assert client.post("/acquia/token?scheme=a1webtag", auth=(user["username"], user["password"])).status_code == 400


def test_it_takes_events_signed_with_todays_key(client, token):
    response = track(client, today_key(token), {"events": [EVENT], "customers": [{"Email": "a@b.c"}]})

    assert response.status_code == 200
    stored = client.get("/__sandbox__/acquia/events").json()
    assert stored["count"] == 1 and stored["data"][0]["Type"] == "login"
    assert stored["customers"] == [{"Email": "a@b.c", "_tenant": "999"}]


def test_it_answers_400_without_access_key_and_401_with_a_bad_one(client, token):
    yesterday = access_key(token, datetime.now(UTC).date() - timedelta(days=1))
    stranger = bcrypt.hashpw(b"not-a-token", bcrypt.gensalt(rounds=4, prefix=b"2a")).decode()

    assert track(client, None, {"events": [EVENT]}).status_code == 400
    assert track(client, yesterday, {"events": [EVENT]}).status_code == 401
    assert track(client, stranger, {"events": [EVENT]}).status_code == 401
    assert track(client, "garbage", {"events": [EVENT]}).status_code == 401


def test_it_refuses_more_than_ten_objects_per_entity_and_bad_payloads(client, token):
    key = today_key(token)

    assert track(client, key, {"events": [EVENT] * 11}).status_code == 400
    assert track(client, key, {"events": [EVENT] * 10}).status_code == 200
    assert track(client, key, {"customers": [{"Email": "a@b.c"}]}).status_code == 400
    assert track(client, key, {"events": [{**EVENT, "FirstName": ""}]}).status_code == 400
    assert track(client, key, {"events": [{"Type": "login"}]}).status_code == 400


def test_revoked_tokens_no_longer_sign(client, token):
    key = today_key(token)
    assert track(client, key, {"events": [EVENT]}).status_code == 200

    client.delete("/__sandbox__/acquia/tokens")

    assert track(client, key, {"events": [EVENT]}).status_code == 401


def test_it_records_calls_without_the_access_key(client, token):
    key = today_key(token)
    track(client, key, {"events": [EVENT]})

    received = client.get("/__sandbox__/received", params={"vendor": "acquia"}).json()["data"]
    assert received[-1]["query"]["accessKey"] == "[redacted]"
    assert key not in str(received)


def test_injected_faults_apply_to_the_tracker(client, token):
    client.post("/__sandbox__/faults", json={"rate_429": 1.0, "retry_after": 9, "vendors": ["acquia"]})

    response = track(client, today_key(token), {"events": [EVENT]})

    assert (response.status_code, response.headers["retry-after"]) == (429, "9")


def test_the_hubs_module_talks_to_it_end_to_end(client, user):
    vendor = Acquia(base_url="http://testserver/acquia/", auth_url="http://testserver/acquia",
                    settings={"tenant_id": "999"}, secrets=user)  # fmt: skip
    vendor.check()
    now = datetime.now(UTC)
    token = vendor.parse_token(send(client, vendor.token_request(now)), now).value
    events = [OutgoingEvent(key=k, nonce=f"n{k}", event_type="login", event_date=now, data={"email": f"{k}@b.c"},
                            mapping={"Email": "data.email"}) for k in range(12)]  # fmt: skip

    requests = vendor.build(events, token)

    assert [vendor.classify(r, send(client, r)).outcome for r in requests] == ["delivered", "delivered"]
    assert client.get("/__sandbox__/acquia/events").json()["count"] == 12
