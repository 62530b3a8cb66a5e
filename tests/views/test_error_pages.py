"""Error pages in the console's style, the favicon, and a 403 that logs one line."""

from __future__ import annotations

import logging

import pytest
from django.test import RequestFactory
from django.views.defaults import server_error

from tests.factories import user_make

pytestmark = pytest.mark.django_db


def test_an_unknown_address_gets_the_consoles_404_page(client):
    client.force_login(user_make("Marketing"))

    response = client.get("/no-such-page/")

    html = response.content.decode()
    assert response.status_code == 404
    assert "console.css" in html and "Nothing here at <code>/no-such-page/</code>" in html
    assert 'class="mainnav"' in html  # the console's own navigation, to go on from


def test_the_500_page_renders_without_a_request_context():
    # Django's server_error renders 500.html with no context processors: base.html's needs are absent.
    response = server_error(RequestFactory().get("/"))

    html = response.content.decode()
    assert response.status_code == 500
    assert "console.css" in html and "Server error · Event hub" in html


def test_every_console_page_links_its_icon_and_favicon_ico_is_served(client):
    assert 'rel="icon" href="/static/favicon.svg"' in client.get("/login/").content.decode()

    response = client.get("/favicon.ico", follow=True)

    assert response.status_code == 200
    assert response.redirect_chain == [("/static/favicon.ico", 301)]
    assert b"".join(response.streaming_content)[:4] == b"\x00\x00\x01\x00"  # an ICO header


def test_a_403_logs_one_line_without_a_traceback(client, caplog):
    client.force_login(user_make("Sales"))

    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get("/event-types/")

    assert response.status_code == 403
    (record,) = [r for r in caplog.records if r.name == "django.request"]
    assert record.exc_info is None and record.exc_text is None
    assert record.getMessage().startswith("Forbidden (Permission denied): /event-types/")
    assert "Traceback" not in caplog.text
