"""Every console page renders any stored event: lone surrogates, NUL, deep nesting (rows stored past ingest, e.g.
from before its checks) never 500 the event log, the event detail or the route preview."""

from __future__ import annotations

import json

import pytest
from django.db import connection as db

from tests.factories import event_store, event_type_make, route_make, user_make, webmarketer_connection_make

pytestmark = pytest.mark.django_db

DEPTH_LOADABLE = 900  # deep, still within what json can load
DEPTH_UNLOADABLE = 1500  # deeper than Python's json can load (SQLite stores up to 2000): raw SQL only


def nested(depth: int) -> dict:
    value: dict = {"leaf": "x"}
    for _ in range(depth):
        value = {"a": value}
    return value


def hostile_datas() -> dict[str, dict]:
    datas = {"deep": {"email": "deep@example.com", "nested": nested(DEPTH_LOADABLE)}}
    if db.vendor == "sqlite":  # PostgreSQL's jsonb refuses both: such rows cannot exist there
        datas["surrogate"] = {"email": "lone\ud800@example.com", "message": "\udfff"}
        datas["nul"] = {"email": "nul@example.com", "message": "a\x00b"}
    return datas


@pytest.fixture
def hostile(client):
    client.force_login(user_make("admin"))
    connection = webmarketer_connection_make()
    route = route_make(event_type_make(), connection)
    events = {
        name: event_store(route.event_type, data, nonce=f"hostile-{name}", routes=[route])
        for name, data in hostile_datas().items()
    }
    if db.vendor == "sqlite":
        # Deeper than Python's json can read back: only raw SQL can store it (as an old import might have).
        event = event_store(route.event_type, {}, nonce="hostile-unloadable", routes=[route])
        text = '{"a":' * DEPTH_UNLOADABLE + "1" + "}" * DEPTH_UNLOADABLE
        with db.cursor() as cursor:
            cursor.execute("UPDATE tracking_event SET data = %s WHERE id = %s", [text, event.pk])
        events["unloadable"] = event
    return route, events


def test_the_event_log_renders_every_hostile_event(client, hostile):
    response = client.get("/events/")

    assert response.status_code == 200
    for event in hostile[1].values():
        assert str(event.uuid) in response.content.decode()


def test_the_event_detail_renders_every_hostile_event(client, hostile):
    for name, event in hostile[1].items():
        response = client.get(f"/events/{event.uuid}/")

        assert response.status_code == 200, name
        html = response.content.decode()
        if name == "surrogate":
            assert "lone\\ud800@example.com" in html  # shown escaped, not dropped
        if name == "nul":
            assert "a\\u0000b" in html


def test_the_route_preview_renders_every_hostile_event(client, hostile):
    route, events = hostile
    for name, event in events.items():
        query = {
            "event_type": str(route.event_type.pk),
            "connection": str(route.connection.pk),
            "enabled": "on",
            "preview_event": str(event.pk),
        }
        response = client.get("/routes/preview", query, headers={"HX-Request": "true"})

        assert response.status_code == 200, name


def test_the_event_detail_still_pretty_prints_ordinary_data(client, hostile):
    route, _ = hostile
    event = event_store(route.event_type, {"email": "kate@example.com"}, nonce="plain")

    html = client.get(f"/events/{event.uuid}/").content.decode()

    assert json.dumps({"email": "kate@example.com"}, indent=2).replace('"', "&quot;") in html
