"""Shared fixtures: the vendor sandbox and a Celery worker as real processes over loopback."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, what: str, proc: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer at {url}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- emptying the database between transactional tests ---------------------------------------------------------
@pytest.fixture(scope="session", autouse=True)
def flush_tries_again_after_a_deadlock():
    """A transactional test ends with a TRUNCATE of every table; on PostgreSQL it can deadlock with the session's
    Celery worker, whose sweep and runs read those tables meanwhile (the database then aborts one of the two). The
    worker's task retries on its own; the flush is tried again here, as the worker would be. Tests only: nothing
    in the product truncates."""
    from unittest import mock

    from django.db import OperationalError
    from django.db.backends.base.operations import BaseDatabaseOperations

    flush = BaseDatabaseOperations.execute_sql_flush

    def execute_sql_flush(ops, sql_list):
        for attempt in range(5):
            try:
                return flush(ops, sql_list)
            except OperationalError as exc:
                if "deadlock" not in str(exc) or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    with mock.patch.object(BaseDatabaseOperations, "execute_sql_flush", execute_sql_flush):
        yield


# -- egress: the sandbox is on loopback, allowed as `make run` allows it; no DNS in the test environment -----
TEST_EGRESS_ALLOW = "127.0.0.1,localhost,::1"


@pytest.fixture(scope="session", autouse=True)
def egress_allow_loopback():
    from django.test import override_settings

    with override_settings(HUB_EGRESS_ALLOW=TEST_EGRESS_ALLOW.split(",")):
        yield


@pytest.fixture(autouse=True)
def egress_resolver(monkeypatch):
    """Host names resolve to one public address (localhost to loopback) without DNS; egress tests replace it."""
    from tracking.vendors import egress

    def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host == "localhost" else ["93.184.215.14"]

    monkeypatch.setattr(egress, "resolve", resolve)
    egress.send_cache_clear()
    return resolve


@pytest.fixture(autouse=True)
def wake_record_clear():
    """No debounced wake-up remembered from another test (ids are reused after a rollback)."""
    from tracking.services.wake import wake_forget

    wake_forget()
    yield
    wake_forget()


@pytest.fixture
def fresh_sessions(monkeypatch):
    """No pooled vendor session (nor cached token) from another test: respx only sees clients built while
    it is active."""
    from tracking.services import delivery

    monkeypatch.setattr(delivery, "_sessions", {})


# -- the ingest API: a source's token and a routed event type ----------------------------------------------------
@pytest.fixture
def token():
    from tests.factories import source_make

    return source_make()[1]


@pytest.fixture
def contact_form():
    from tests.factories import event_type_make, route_make, webmarketer_connection_make

    event_type = event_type_make()
    route_make(event_type, webmarketer_connection_make())
    return event_type


@pytest.fixture(scope="session")
def sandbox_url(tmp_path_factory) -> str:
    """The vendor sandbox, a real HTTP server in its own process."""
    port = _free_port()
    state = tmp_path_factory.mktemp("sandbox") / "state.json"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_sandbox", "--port", str(port), "--state", str(state)], cwd=ROOT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(f"{url}/__sandbox__/health", "the sandbox", proc)
        yield url
    finally:
        _stop(proc)


@pytest.fixture
def sandbox(sandbox_url):
    """A client of the sandbox, reset (faults off, nothing received) before each test."""
    with httpx.Client(base_url=sandbox_url, timeout=10) as client:
        client.post("/__sandbox__/reset").raise_for_status()
        yield client
        client.post("/__sandbox__/reset")


def _database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real Celery worker (2 processes) and beat, on the test database and the configured broker.

    Beat runs as its own process, as in `make run`: beat embedded in a worker (-B) forks after connecting
    and cannot publish over the SQLAlchemy broker."""
    workdir = tmp_path_factory.mktemp("worker")
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "HUB_SWEEP_SECONDS": "0.5",
        "HUB_STUCK_AFTER_SECONDS": "30",
        "CONN_MAX_AGE": "0",
        "HUB_EGRESS_ALLOW": TEST_EGRESS_ALLOW,
    }
    celery = [sys.executable, "-m", "celery", "-A", "project"]
    log = open(workdir / "worker.log", "w")  # noqa: SIM115 (closed below)
    worker = subprocess.Popen(
        celery + ["worker", "-c", "2", "-l", "warning", "--purge", "-n", f"test-{os.getpid()}@%h"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    beat = subprocess.Popen(
        celery + ["beat", "-l", "warning", "-s", str(workdir / "beat")],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    time.sleep(1)
    for proc in (worker, beat):
        if proc.poll() is not None:
            raise RuntimeError(f"Celery exited: {(workdir / 'worker.log').read_text()}")
    try:
        yield worker
    finally:
        _stop(beat)
        _stop(worker)
        log.close()
        output = (workdir / "worker.log").read_text()
        if "Traceback" in output:
            print("Celery worker log:\n", output[-5000:])


@pytest.fixture
def celery_worker(celery_worker_process, transactional_db):
    """Use with tests whose data the worker must see (committed: transactional_db)."""
    return celery_worker_process


def wait_until(predicate, *, timeout: float = 60, interval: float = 0.2, message: str = "condition"):
    """Poll until predicate() is truthy; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {message}")


# -- the console in a real browser: Playwright driving Debian's Chromium -------------------------------------
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium installed (see .ci/run)")
        pytest.skip("Debian's chromium is not installed: apt-get install chromium")
    from playwright.sync_api import expect, sync_playwright

    # Generous waits: the browser shares 2 cores with the live server, a Celery worker and the sandbox.
    expect.set_options(timeout=15_000)

    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test are still sync.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, live_server):
    """A fresh browser page on the live server; any JavaScript error fails the test."""
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def console_login(page, username: str, password: str) -> None:
    """Log in through the console's own login page."""
    page.goto("/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("form.whoami")


def htmx_idle(page) -> None:
    """Wait until no HTMX request, swap or settle is under way (an element clicked mid-swap may be replaced)."""
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')"
    )
