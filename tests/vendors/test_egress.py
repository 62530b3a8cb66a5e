"""Egress rules: public http(s) only, unless HUB_EGRESS_ALLOW names the host, port or network."""

from __future__ import annotations

import pytest

from tracking.vendors import egress
from tracking.vendors.egress import EgressRefused, allow_list_parse, send_refusal, url_check


def public(host, port):
    return ["93.184.215.14"]


@pytest.fixture(autouse=True)
def nothing_allowed(settings):
    settings.HUB_EGRESS_ALLOW = []
    settings.HUB_EGRESS_HTTPS_ONLY = False


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://127.8.9.10:8765/", "loopback"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.0.1/", "private"),
        ("http://169.254.169.254/", "link-local"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://100.64.0.1/", "non-public"),
        ("http://[::1]/", "loopback"),
        ("http://[fd00::1]/", "private"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("ftp://example.com/", "Only http and https"),
        ("file:///etc/passwd", "Only http and https"),
    ],
)
def test_internal_addresses_and_other_schemes_are_refused(url, said):
    with pytest.raises(EgressRefused, match=said):
        url_check(url, resolver=public)


def test_a_name_is_checked_by_every_address_it_resolves_to():
    url_check("https://api.example.com/", resolver=public)
    with pytest.raises(EgressRefused, match="api.example.com resolves to 10.0.0.9, which is a private address"):
        url_check("https://api.example.com/", resolver=lambda h, p: ["93.184.215.14", "10.0.0.9"])


def test_the_refusal_names_the_setting_with_the_entry_to_add():
    with pytest.raises(EgressRefused, match=r"HUB_EGRESS_ALLOW=tracardi.internal:8686"):
        url_check("http://tracardi.internal:8686/", resolver=lambda h, p: ["10.0.0.9"])


@pytest.mark.parametrize(
    ("allow", "url", "ok"),
    [
        ("tracardi.internal", "http://tracardi.internal:8686/", True),
        ("tracardi.internal:8686", "http://tracardi.internal:8686/", True),
        ("tracardi.internal:8686", "http://tracardi.internal:9000/", False),
        ("tracardi.internal:8686", "http://other.internal:8686/", False),
        ("10.0.0.0/8", "http://tracardi.internal:8686/", True),
        ("10.0.0.9", "http://10.0.0.9/", True),
        ("127.0.0.1:8765", "http://127.0.0.1:8765/x", True),
        ("127.0.0.1:8765", "http://127.0.0.1:6379/", False),
        ("[::1]:8765", "http://[::1]:8765/", True),
        ("::1", "http://[::1]:8765/", True),
        (" 192.168.0.0/16 , tracardi.internal ", "http://tracardi.internal/", True),
    ],
)
def test_the_allow_list_takes_hosts_host_ports_and_networks(settings, allow, url, ok):
    settings.HUB_EGRESS_ALLOW = allow.split(",")
    try:
        url_check(url, resolver=lambda h, p: ["10.0.0.9"])
    except EgressRefused:
        assert not ok
    else:
        assert ok


def test_a_malformed_allow_list_entry_is_named():
    with pytest.raises(ValueError, match="'host:port:x'"):
        allow_list_parse("host:port:x,ok")
    with pytest.raises(ValueError, match="no valid port"):
        allow_list_parse("host:99999")


def test_https_only_refuses_plain_http_except_to_allowed_hosts(settings):
    settings.HUB_EGRESS_HTTPS_ONLY = True
    settings.HUB_EGRESS_ALLOW = ["tracardi.internal:8686"]

    url_check("https://api.example.com/", resolver=public)
    with pytest.raises(EgressRefused, match="Only https URLs are allowed"):
        url_check("http://api.example.com/", resolver=public)
    url_check("http://tracardi.internal:8686/", resolver=public)


def test_at_save_a_name_that_does_not_resolve_is_refused_at_send_it_passes(monkeypatch):
    def nowhere(host, port):
        raise OSError("Name or service not known")

    monkeypatch.setattr(egress, "resolve", nowhere)

    with pytest.raises(egress.EgressUnresolved, match="Cannot resolve host api.example.com"):
        url_check("https://api.example.com/")
    assert send_refusal("https://api.example.com/") == ""


def test_send_time_checks_again_so_a_name_turned_internal_is_refused(monkeypatch):
    addresses = ["93.184.215.14"]
    monkeypatch.setattr(egress, "resolve", lambda h, p: list(addresses))
    egress.send_cache_clear()

    assert send_refusal("https://api.example.com/events") == ""
    addresses[:] = ["127.0.0.1"]  # DNS rebinding: the same name now points at loopback
    egress.send_cache_clear()  # (the verdict is kept a few seconds per host)
    assert "refused: api.example.com resolves to 127.0.0.1" in send_refusal("https://api.example.com/events")


def test_a_session_sends_nothing_to_an_address_it_may_not_reach(monkeypatch):
    from tracking.vendors.base import VendorRequest
    from tracking.vendors.http import VendorSession
    from tracking.vendors.tracardi import Tracardi

    monkeypatch.setattr(egress, "resolve", lambda h, p: ["169.254.169.254"])
    egress.send_cache_clear()
    session = VendorSession(
        Tracardi(base_url="http://tracardi.example:8686/", settings={"source_id": "s"}),
        timeout=1,
        max_rate=None,
        max_connections=1,
    )
    try:
        exchange = session.send(VendorRequest("POST", "http://tracardi.example:8686/collect/x/s", json={}))
    finally:
        session.close()

    assert exchange.response is None and exchange.unsendable
    assert "refused: tracardi.example resolves to 169.254.169.254, which is a link-local address" in exchange.error
