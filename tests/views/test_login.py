"""Both login pages lock a username out after a few wrong passwords from one address, for a cool-off."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.utils import timezone

from tests.factories import user_make

pytestmark = pytest.mark.django_db

PAGES = {"console": "/login/", "admin": "/admin/login/"}


def _post(client, page: str, password: str, username: str = "marketing"):
    return client.post(PAGES[page], {"username": username, "password": password, "next": "/"})


@pytest.mark.parametrize("page", PAGES)
def test_the_right_password_is_refused_after_five_wrong_ones(client, page, settings):
    settings.AXES_FAILURE_LIMIT = 5
    user_make("Marketing", password="right-password-1", is_staff=True)

    first = [_post(client, page, f"wrong-{i}").status_code for i in range(4)]
    fifth = _post(client, page, "wrong-5")
    right = _post(client, page, "right-password-1")

    assert first == [200] * 4
    assert fifth.status_code == 429 and right.status_code == 429
    html = right.content.decode()
    assert "Too many failed logins" in html and "after 5 wrong passwords" in html
    assert "_auth_user_id" not in client.session


def test_the_lock_out_ends_after_the_cool_off(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    user_make("Marketing", password="right-password-1")
    for i in range(3):
        _post(client, "console", f"wrong-{i}")
    assert _post(client, "console", "right-password-1").status_code == 429

    # The cool-off passes (15 minutes by default).
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    response = _post(client, "console", "right-password-1")

    assert response.status_code == 302 and client.session["_auth_user_id"]


def test_the_lock_out_is_per_username_and_a_success_resets_the_count(client, settings):
    settings.AXES_FAILURE_LIMIT = 3
    user_make("Marketing", password="right-password-1")
    user_make("Sales", password="right-password-2")
    for i in range(2):
        _post(client, "console", f"wrong-{i}")
    assert _post(client, "console", "right-password-1").status_code == 302  # under the limit: in, count reset
    client.logout()
    for i in range(2):
        _post(client, "console", f"wrong-{i}")
    assert _post(client, "console", "right-password-1").status_code == 302

    for i in range(3):
        _post(client, "console", f"wrong-{i}", username="sales")
    client.logout()
    assert _post(client, "console", "right-password-1").status_code == 302  # another user is not locked


def test_sessions_last_hours_not_weeks(client, settings):
    from django.conf import settings as live

    assert live.SESSION_COOKIE_AGE <= 24 * 3600 and live.SESSION_COOKIE_HTTPONLY
    user_make("Marketing", password="right-password-1")
    response = _post(client, "console", "right-password-1")
    assert response.cookies["sessionid"]["max-age"] == live.SESSION_COOKIE_AGE


def test_every_page_says_what_it_may_load(client):
    for url in ("/login/", "/admin/login/"):
        policy = client.get(url)["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
