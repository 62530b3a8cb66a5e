"""Screenshots of the console as each role sees it, from the demo's own data (`seed_demo` against the sandbox).

Written to a temporary folder unless HUB_SCREENSHOTS names one (`make screenshots` writes docs/screenshots/), so
`make test` never changes the checkout."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.conftest import ROOT, console_login, htmx_idle
from tracking.models import Event

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# A long page is cut here: the top says what the page is, and the files stay small.
MAX_HEIGHT = 2000
ROLES = {
    "Marketing": ("marketing", "marketing-demo"),
    "Sales": ("sales", "sales-demo"),
    "Auditor": ("auditor", "auditor-demo"),
}


@pytest.fixture
def shots_dir(tmp_path) -> Path:
    target = os.environ.get("HUB_SCREENSHOTS")
    folder = (ROOT / target) if target and not os.path.isabs(target) else Path(target) if target else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def demo(sandbox, sandbox_url, transactional_db):
    """What `make run` seeds: users per role, five vendors, delivered traffic, trash, a failure, leads."""
    call_command("seed_demo", sandbox_url=sandbox_url, events=12, stdout=io.StringIO())
    assert Event.objects.exists()


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def shoot(page, path: Path) -> None:
    height = page.evaluate("document.documentElement.scrollHeight")
    width = page.viewport_size["width"]
    clip = {"x": 0, "y": 0, "width": width, "height": min(height, MAX_HEIGHT)}
    page.screenshot(path=str(path), full_page=True, clip=clip, animations="disabled", caret="hide")
    assert path.exists() and path.stat().st_size > 0, path


def visit(page, url: str) -> None:
    response = page.goto(url)
    assert response is not None and response.status == 200, url
    page.wait_for_load_state("networkidle")
    htmx_idle(page)
    if page.locator("canvas[data-chart]").count():  # the dashboard and insights: wait for Chart.js to draw
        page.wait_for_function(
            "() => window.Chart && [...document.querySelectorAll('canvas[data-chart]')].every(c => Chart.getChart(c))"
        )
        page.wait_for_timeout(600)  # the charts' entry animation


@pytest.mark.parametrize("role", list(ROLES))
def test_screenshots_of_every_console_page_per_role(page, demo, shots_dir, role):
    username, password = ROLES[role]
    page.set_viewport_size(DESKTOP)
    console_login(page, username, password)
    nav = page.locator(".mainnav a").evaluate_all(
        "links => links.map(a => [a.textContent.trim(), a.getAttribute('href')])"
    )
    pages = [(slug(label), href) for label, href in nav if not href.startswith("/admin")]
    assert pages, role
    if any(href == "/events/" for _, href in pages):  # an event's detail, behind the event log
        event = Event.objects.filter(event_type_ref="purchase").order_by("-received_at").first()
        pages.append(("event-detail", f"/events/{event.uuid}/"))
    written = []
    for name, url in pages:
        visit(page, url)
        path = shots_dir / f"{role.lower()}-{name}.png"
        shoot(page, path)
        written.append(path.name)
    assert len(written) == len(pages)

    if role == "Sales":  # the lead board with the thumb
        page.set_viewport_size(PHONE)
        visit(page, "/leads/")
        shoot(page, shots_dir / "sales-leads-phone.png")
