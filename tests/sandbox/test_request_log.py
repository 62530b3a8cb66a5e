"""The sandbox's request log: what it received survives a restart (a chaos run counts every request), and so does
Webmarketer's nonce dedup."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.testclient import TestClient

from tracking.sandbox import create_app
from tracking.vendors.webmarketer import Webmarketer


def started(tmp_path, account=None) -> tuple[TestClient, dict]:
    """A client of a sandbox started on the state and log files in tmp_path, holding a Webmarketer token."""
    app = create_app(tmp_path / "state.json", tmp_path / "requests.jsonl")
    client = TestClient(app)
    account = account or client.post("/__sandbox__/webmarketer/service-accounts").json()
    vendor = Webmarketer(
        base_url="http://testserver/webmarketer/api/v1/",
        auth_url="http://testserver/webmarketer/oidc/token",
        settings={"project_id": "my-project"},
        secrets={"service_account": account},
    )
    token = client.post("/webmarketer/oidc/token", data=vendor.token_request(datetime.now(UTC)).form).json()
    client.headers["Authorization"] = f"Bearer {token['access_token']}"
    return client, account


def send(client, nonce: str) -> str:
    body = {"projectId": "my-project", "eventType": "purchase", "nonce": nonce, "data": {"amount": 1}}
    response = client.post("/webmarketer/api/v1/events", json=body)
    assert response.status_code == 200
    return response.json()


def test_what_was_received_and_the_nonces_survive_a_restart(tmp_path):
    before, account = started(tmp_path)
    first = send(before, "n-1")
    assert send(before, "n-1") == first
    send(before, "n-2")

    after, _ = started(tmp_path, account)  # a new sandbox process on the same files

    received = after.get("/__sandbox__/received", params={"vendor": "webmarketer"}).json()
    assert received["count"] == 3 and [r["body"]["nonce"] for r in received["data"]] == ["n-1", "n-1", "n-2"]
    send(after, "n-1")
    events = after.get("/__sandbox__/webmarketer/events").json()["data"]
    assert sorted((e["nonce"], e["sends"]) for e in events) == [("n-1", 3), ("n-2", 1)]


def test_a_reset_empties_the_log(tmp_path):
    client, account = started(tmp_path)
    send(client, "n-1")

    client.post("/__sandbox__/reset")

    again, _ = started(tmp_path, account)
    assert again.get("/__sandbox__/received").json()["count"] == 0
    assert again.get("/__sandbox__/webmarketer/events").json()["count"] == 0
