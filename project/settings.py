"""Settings, read from the environment (django-environ) with safe defaults for the embedded run.

The embedded default needs no server: SQLite under var/ and Celery over kombu's SQLAlchemy transport.
Production points DATABASE_URL at PostgreSQL and CELERY_BROKER_URL at Redis and uses
project.settings_production.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("HUB_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _var_secret(name: str, make) -> str:
    """Read a generated secret from var/, creating it on first use (never committed)."""
    path = VAR_DIR / name
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="") or _var_secret("secret_key", lambda: secrets.token_urlsafe(50))
# Comma-separated Fernet keys: the first encrypts, all decrypt (rotation).
FIELD_ENCRYPTION_KEY = env.str("FIELD_ENCRYPTION_KEY", default="") or _var_secret("field_encryption.key", _fernet_key)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "tracking",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "project.middleware.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lock-out page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tracking.context_processors.console_nav",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'hub.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat share one file: WAL lets readers run beside the writer, IMMEDIATE takes the
    # write lock at BEGIN (no upgrade deadlocks), and the timeout waits for it instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file, not :memory:, so the Celery worker of the integration tests can share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_hub.sqlite3")}
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve from the app directories too, so the embedded run needs no collectstatic.
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "login"
# Both login pages (the console's and the admin's) go through django-axes: after AXES_FAILURE_LIMIT wrong
# passwords for one username from one address, that pair is locked out for AXES_COOLOFF_MINUTES.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=15.0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
# Sessions end after SESSION_COOKIE_AGE_HOURS (12 h by default), not Django's two weeks.
SESSION_COOKIE_AGE = int(env.float("SESSION_COOKIE_AGE_HOURS", default=12.0) * 3600)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# The console loads only its own static files (project/middleware.py sends the header).
CONTENT_SECURITY_POLICY = env.str(
    "CONTENT_SECURITY_POLICY",
    default=(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'self'; form-action 'self'; object-src 'none'"
    ),
)
LOGIN_REDIRECT_URL = "console:home"
LOGOUT_REDIRECT_URL = "login"

# The ingest API reads bodies itself and answers 413 past this size (1 MiB).
INGEST_MAX_BODY_BYTES = env.int("INGEST_MAX_BODY_BYTES", default=1024 * 1024)
INGEST_MAX_BATCH = env.int("INGEST_MAX_BATCH", default=500)
DATA_UPLOAD_MAX_MEMORY_SIZE = INGEST_MAX_BODY_BYTES + 1024

# Celery: no result backend (tasks write their outcome to the database), late acks so a task whose
# worker died is delivered again, one message prefetched so a slow vendor holds one slot at most.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=f"sqla+sqlite:///{VAR_DIR / 'broker.sqlite3'}")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "hub"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# How often an idle worker polls a polling broker (the embedded SQLAlchemy one); see project/broker.py.
CELERY_POLLING_INTERVAL = env.float("CELERY_POLLING_INTERVAL", default=0.2)
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Beat: how often to sweep for due, retrying and stuck deliveries.
HUB_SWEEP_SECONDS = env.float("HUB_SWEEP_SECONDS", default=5.0)
# A connection's dispatcher is woken at most about once per this interval per process (tracking/services/wake.py):
# one broker message per request and connection cost ingest half its time. 0: every wake is sent.
HUB_WAKE_DEBOUNCE_SECONDS = env.float("HUB_WAKE_DEBOUNCE_SECONDS", default=0.5)
# One-event ingest requests served at once by a process share one transaction (services/ingest_group.py): at most
# this many per transaction (1: each request commits alone).
HUB_INGEST_GROUP_MAX = env.int("HUB_INGEST_GROUP_MAX", default=64)
# Beat: how often to mirror Webmarketer event types, and to pull Webmarketer's trashed events.
HUB_EVENT_TYPES_SYNC_SECONDS = env.float("HUB_EVENT_TYPES_SYNC_SECONDS", default=600.0)
HUB_TRASH_PULL_SECONDS = env.float("HUB_TRASH_PULL_SECONDS", default=300.0)
# Retention: an event's personal data is redacted this many days after receipt, unless its event type's
# expirationPolicy (Webmarketer's, from "event-type") says otherwise; 0: kept until erased on request. Beat runs
# the redaction every HUB_RETENTION_SECONDS, in batches.
HUB_RETENTION_DAYS = env.int("HUB_RETENTION_DAYS", default=0)
HUB_RETENTION_SECONDS = env.float("HUB_RETENTION_SECONDS", default=3600.0)
# Webmarketer insights answers are kept this long (per query) in the cache below.
HUB_INSIGHTS_CACHE_SECONDS = env.float("HUB_INSIGHTS_CACHE_SECONDS", default=120.0)
# Short-lived answers (Webmarketer insights): per process by default; CACHE_URL (e.g. redis://…) shares them.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}
# A delivery claimed longer ago than this is taken back from a worker that died.
HUB_STUCK_AFTER_SECONDS = env.float("HUB_STUCK_AFTER_SECONDS", default=300.0)
# A delivery (or lead delivery) taken back from `sending` this many times fails instead of looping.
HUB_MAX_TAKE_BACKS = env.int("HUB_MAX_TAKE_BACKS", default=3)
# Share of HUB_STUCK_AFTER_SECONDS a dispatch run may use before it starts no new request (less the time a
# request may still take); what it had no time to send goes back to due. A slow run never looks stuck.
HUB_RUN_SHARE = env.float("HUB_RUN_SHARE", default=0.5)
# Deliveries claimed per dispatch run (a connection's batch size lowers it for that connection, never
# raises it), and requests in flight at once per connection.
HUB_DISPATCH_BATCH = env.int("HUB_DISPATCH_BATCH", default=50)
HUB_DISPATCH_CONCURRENCY = env.int("HUB_DISPATCH_CONCURRENCY", default=8)
# A healthy connection's run goes on with its next batch (claimed and recorded while the current one is being
# sent) for this many seconds, then queues again behind the other connections' runs; 0: one batch per run.
HUB_RUN_SLICE_SECONDS = env.float("HUB_RUN_SLICE_SECONDS", default=1.0)
# Concurrent runs a healthy connection may have while HUB_BACKLOG_BATCHES batches or more of it are due (claims
# are row-level, so two runs never take the same row); a failing connection, or a short queue, has one.
HUB_RUNS_PER_CONNECTION = env.int("HUB_RUNS_PER_CONNECTION", default=1)
HUB_BACKLOG_BATCHES = env.int("HUB_BACKLOG_BATCHES", default=4)

SANDBOX_URL = env.str("SANDBOX_URL", default="http://127.0.0.1:8765")

# Egress: vendor URLs must be http(s) to public addresses (checked at save, at "Test connection" and before
# sending). Exceptions, comma-separated: hosts, host:port or networks, e.g. a self-hosted Tracardi:
# HUB_EGRESS_ALLOW=tracardi.internal:8686 (or 10.20.0.0/16). `make run` allows its sandbox on loopback.
HUB_EGRESS_ALLOW = env.list("HUB_EGRESS_ALLOW", default=[])
HUB_EGRESS_HTTPS_ONLY = env.bool("HUB_EGRESS_HTTPS_ONLY", default=False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"permission_denied_one_line": {"()": "project.logfilters.PermissionDeniedOneLine"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # httpx logs every request URL at INFO; some vendors (Acquia) carry a key in the URL.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # A 403 is one line, without its traceback.
        "django.request": {"filters": ["permission_denied_one_line"]},
    },
}
