"""The sandbox's fault settings: POST replaces the set, PATCH merges into it."""

from __future__ import annotations


def test_post_replaces_the_whole_fault_set(client):
    client.post("/__sandbox__/faults", json={"latency_ms": 50, "vendors": ["tracify"]})

    faults = client.post("/__sandbox__/faults", json={"error_rate": 0.5}).json()

    assert (faults["error_rate"], faults["latency_ms"], faults["vendors"]) == (0.5, 0, [])


def test_patch_changes_only_what_it_names(client):
    client.post("/__sandbox__/faults", json={"latency_ms": 50, "vendors": ["tracify"]})

    faults = client.patch("/__sandbox__/faults", json={"error_rate": 0.5}).json()

    assert (faults["error_rate"], faults["latency_ms"], faults["vendors"]) == (0.5, 50, ["tracify"])
    assert client.get("/__sandbox__/faults").json() == faults


def test_patch_refuses_an_unknown_setting_and_keeps_the_set(client):
    client.post("/__sandbox__/faults", json={"latency_ms": 50})

    response = client.patch("/__sandbox__/faults", json={"latancy_ms": 10})

    assert response.status_code == 400 and "latancy_ms" in response.json()["error"]
    assert client.get("/__sandbox__/faults").json()["latency_ms"] == 50
