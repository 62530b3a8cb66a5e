"""The lead board in a real browser, without a worker: a change clicked while the table reloads is never lost or
misreported."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import console_login, htmx_idle, wait_until
from tests.factories import event_store, event_type_make, user_make
from tracking.models import LeadChange

pytestmark = pytest.mark.browser


@pytest.fixture
def leads(transactional_db):
    event_type = event_type_make()
    data = {"last_name": "Race", "message": "Call me"}
    return [
        event_store(event_type, {**data, "first_name": f"Lead{i}", "email": f"lead{i}@example.com"}, nonce=f"race-{i}")
        for i in range(6)
    ]


def test_a_change_clicked_right_after_typing_a_search_is_saved_and_shown(page, leads):
    user_make("Sales", password="pw-sales")
    console_login(page, "sales", "pw-sales")
    for lead in leads:
        page.goto("/leads/")
        row = page.locator(f"#lead-{lead.uuid}")
        expect(row).to_contain_text("not qualified")
        # The search box is left by the click itself: its change and the change clicked start together.
        page.locator("input[name=q]").fill("example.com")
        row.get_by_role("button", name="Mark qualified").click()

        wait_until(
            lambda lead=lead: LeadChange.objects.filter(event=lead, storage_key="qualified", value=1).exists(),
            timeout=20,
            message="the change to be stored",
        )
        htmx_idle(page)
        # Whatever reloaded meanwhile, the row shows what is stored.
        expect(row.locator("[data-state=qualified] .badge.ok")).to_have_text("qualified")
        expect(row.get_by_role("button", name="Undo qualified")).to_be_visible()
        assert row.get_by_role("button", name="Mark qualified").count() == 0


def test_the_search_and_the_filters_still_reload_the_table(page, leads):
    user_make("Sales", password="pw-sales")
    console_login(page, "sales", "pw-sales")
    rows = page.locator("tbody.lead")
    expect(rows).to_have_count(6)

    page.locator("input[name=q]").press_sequentially("lead3@")
    expect(rows).to_have_count(1)
    expect(page).to_have_url("/leads/?event_type=&state=&since=&until=&q=lead3%40")
    page.locator("input[name=q]").fill("")
    expect(rows).to_have_count(6)

    page.locator(f"#lead-{leads[2].uuid}").get_by_role("button", name="Mark qualified").click()
    expect(page.locator(f"#lead-{leads[2].uuid} [role=status]")).to_contain_text("Saved: qualified")
    page.select_option("select[name=state]", "qualified")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("Lead2")
    page.locator("input[name=since]").fill("2099-01-01")
    page.locator("input[name=since]").press("Tab")  # a typed date applies when the box is left
    expect(rows).to_have_count(0)
    expect(page.locator("#lead-table")).to_contain_text("No lead matches these filters.")


def test_the_board_shows_no_template_comment(page, leads):
    user_make("Sales", password="pw-sales")
    console_login(page, "sales", "pw-sales")
    expect(page.locator("main")).not_to_contain_text("hx-sync")


def test_a_search_typed_on_while_the_previous_one_loads_is_the_one_applied(page, leads):
    user_make("Sales", password="pw-sales")
    console_login(page, "sales", "pw-sales")
    rows = page.locator("tbody.lead")
    expect(rows).to_have_count(6)
    # A slow phone network: every request takes seconds, so the first search is still loading when the
    # second one is asked for.
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    network.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 3000, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    search = page.locator("input[name=q]")

    with page.expect_request(lambda request: "q=lead&" in request.url or request.url.endswith("q=lead")):
        search.press_sequentially("lead")
    search.press_sequentially("3@")

    expect(page).to_have_url("/leads/?event_type=&state=&since=&until=&q=lead3%40")
    expect(rows).to_have_count(1)
    expect(rows).to_contain_text("Lead3")
