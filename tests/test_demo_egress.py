"""The demo's sandbox listens on loopback: the demo allows exactly its host and port, nothing else inside."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from tracking.demo import sandbox_egress_allow

pytestmark = pytest.mark.django_db


def test_the_demo_allows_its_sandbox_host_and_port_only():
    assert sandbox_egress_allow("http://127.0.0.1:8765", "") == ["127.0.0.1:8765"]
    assert sandbox_egress_allow("http://127.0.0.1:8765/", ["tracardi.internal"]) == [
        "tracardi.internal",
        "127.0.0.1:8765",
    ]
    assert sandbox_egress_allow("http://[::1]:9000", "[::1]:9000") == ["[::1]:9000"]


def test_seeding_without_the_allow_list_says_which_setting_to_set(settings):
    settings.HUB_EGRESS_ALLOW = []

    with pytest.raises(CommandError, match=r"HUB_EGRESS_ALLOW=127.0.0.1:8765") as error:
        call_command("seed_demo", sandbox_url="http://127.0.0.1:8765", stdout=io.StringIO())

    assert "loopback" in str(error.value)


def test_the_demo_reseeds_on_another_port_with_fresh_secrets(sandbox, sandbox_url, settings):
    from tracking.models import VendorConnection

    settings.HUB_EGRESS_ALLOW = sandbox_egress_allow(sandbox_url)
    call_command("seed_demo", sandbox_url=sandbox_url, events=0, stdout=io.StringIO())
    # As if the sandbox had run elsewhere before: every connection moves back to this one on the next seed.
    for connection in VendorConnection.objects.all():
        connection.base_url = connection.base_url.replace("127.0.0.1", "localhost")
        connection.auth_url = connection.auth_url.replace("127.0.0.1", "localhost")
        connection.save()

    call_command("seed_demo", sandbox_url=sandbox_url, events=0, stdout=io.StringIO())

    assert all(c.base_url.startswith(sandbox_url) for c in VendorConnection.objects.all())
