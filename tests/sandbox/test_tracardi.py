"""The Tracardi sandbox (in process): registered sources only, {"detail": …} errors, GET and POST."""

from __future__ import annotations

import pytest


@pytest.fixture
def source(client) -> str:
    return client.post("/__sandbox__/tracardi/sources", json={"source_id": "web-hook-1"}).json()["source_id"]


def test_it_collects_posted_and_queried_events_with_and_without_session(client, source):
    assert client.post(f"/tracardi/collect/page-view/{source}", json={"page": "/"}).status_code == 200
    assert client.get(f"/tracardi/collect/page-view/{source}/sess-1", params={"page": "/a"}).status_code == 200

    events = client.get("/__sandbox__/tracardi/events").json()["data"]
    assert [(e["method"], e["session"], e["properties"]) for e in events] == [
        ("POST", None, {"page": "/"}),
        ("GET", "sess-1", {"page": "/a"}),
    ]


def test_it_answers_401_for_unknown_sources_and_those_starting_with_at(client, source):
    unknown = client.post("/tracardi/collect/page-view/unknown", json={})
    reserved = client.post("/tracardi/collect/page-view/@internal", json={})

    assert (unknown.status_code, reserved.status_code) == (401, 401)
    assert "Invalid event source" in unknown.json()["detail"]
    assert client.post("/__sandbox__/tracardi/sources", json={"source_id": "@x"}).status_code == 400


def test_it_answers_406_for_a_disabled_source(client):
    client.post("/__sandbox__/tracardi/sources", json={"source_id": "off", "enabled": False})

    assert client.post("/tracardi/collect/page-view/off", json={}).status_code == 406


def test_it_answers_422_for_a_bad_body_or_a_type_conflict(client, source):
    url = f"/tracardi/collect/purchase/{source}"
    assert client.post(url, json={"amount": 10}).status_code == 200

    conflict = client.post(url, json={"amount": "ten"})

    assert conflict.status_code == 422 and "type conflict" in conflict.json()["detail"]
    assert client.post(url, json=[1, 2]).status_code == 422
    assert client.post(url, content=b"{not json", headers={"content-type": "application/json"}).status_code == 422


def test_injected_server_errors_reach_the_collector(client, source):
    client.post("/__sandbox__/faults", json={"error_rate": 1.0, "error_statuses": [500], "vendors": ["tracardi"]})

    assert client.post(f"/tracardi/collect/page-view/{source}", json={}).status_code == 500
