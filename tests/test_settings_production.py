"""The production profile hardens what the embedded default leaves open."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_production_sends_to_vendors_over_https_only_and_never_to_loopback(tmp_path):
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.HUB_EGRESS_HTTPS_ONLY, s.HUB_EGRESS_ALLOW, s.SESSION_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, "
        "s.SESSION_COOKIE_AGE <= 86400, 'axes' in s.INSTALLED_APPS, bool(s.CONTENT_SECURITY_POLICY))"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "project.settings_production",
        "SECRET_KEY": "x" * 50,
        "FIELD_ENCRYPTION_KEY": "ZmRjYmFmYjY4ZTk1NGQ3YWJhYjM2ZTQ1ZDM4ZGI2ZjQ=",
        "HUB_VAR_DIR": str(tmp_path),
    }
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)

    assert out.stdout.split() == ["True", "[]", "True", "True", "True", "True", "True"]
