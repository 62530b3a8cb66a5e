"""Production profile: the same settings, hardened. Requires SECRET_KEY and FIELD_ENCRYPTION_KEY."""

from __future__ import annotations

from .settings import *  # noqa: F403
from .settings import env

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY")
FIELD_ENCRYPTION_KEY = env.str("FIELD_ENCRYPTION_KEY")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Vendors over https only; HUB_EGRESS_ALLOW names the exceptions (e.g. a self-hosted Tracardi on http).
HUB_EGRESS_HTTPS_ONLY = env.bool("HUB_EGRESS_HTTPS_ONLY", default=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
