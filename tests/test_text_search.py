"""The console's reads at a large log: the data's text search answered by its index (an FTS5 trigram table on
SQLite, a pg_trgm GIN index on PostgreSQL) with the results a LIKE scan gives, and the lead board's page read per
lead type in index order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from tests.factories import CONTACT_FORM, PURCHASE, event_store, event_type_make
from tracking.models import Event
from tracking.selectors import data_contains, events_filter, leads_filter, leads_page

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 20, tzinfo=UTC)


@pytest.fixture
def log():
    contact, purchase = event_type_make(), event_type_make(PURCHASE)
    kate = event_store(contact, {"email": "Kate.Austen@Example.com", "first_name": "Kate"}, nonce="n-kate")
    jack = event_store(contact, {"email": "jack@example.com", "message": "100% sure_thing"}, nonce="n-jack")
    sun = event_store(purchase, {"email": "sun@x.org", "first_name": "José"}, nonce="n-sun", tracker_id="trk-42")
    return {"kate": kate, "jack": jack, "sun": sun}


def nonces(queryset) -> list[str]:
    return sorted(queryset.values_list("nonce", flat=True))


def plan(queryset, *, sort: bool = True, bitmap: bool = False) -> str:
    """The database's plan for the query, as text (PostgreSQL told to avoid what a tiny table makes cheaper than
    the index a large one uses: a sequential scan; a sort unless `sort`; a whole-index scan when `bitmap`)."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            if not sort:
                cursor.execute("SET LOCAL enable_sort = off")
            if bitmap:
                cursor.execute("SET LOCAL enable_indexscan = off")
            cursor.execute(f"EXPLAIN {sql}", params)
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return "\n".join(str(row) for row in cursor.fetchall())


@pytest.mark.parametrize(
    "q",
    ["kate.austen@example.com", "EXAMPLE.COM", "example", "100% sure", "sure_thing", "Jos", "x.", "kwon", "email"],
)
def test_it_finds_in_the_data_what_a_like_scan_finds(log, q):
    assert nonces(Event.objects.filter(data_contains(q))) == nonces(Event.objects.filter(data__icontains=q))


def test_the_log_search_finds_an_email_a_word_a_nonce_and_a_tracker_id(log):
    assert nonces(events_filter(q="kate.austen@example.com")) == ["n-kate"]
    assert nonces(events_filter(q="sure")) == ["n-jack"]
    assert nonces(events_filter(q="n-sun")) == ["n-sun"]
    assert nonces(events_filter(q="trk-42")) == ["n-sun"]
    assert nonces(events_filter(q=str(log["jack"].uuid))) == ["n-jack"]
    assert nonces(events_filter(q="nobody@example.com")) == []


def test_the_log_search_reads_the_text_index(log):
    events = events_filter(q="kate.austen@example.com")
    if connection.vendor == "sqlite":
        assert "tracking_event_text" in plan(events)
        assert "LIKE" not in str(events.query)
    else:
        # On a table of three rows the planner prefers other indexes: the search's terms alone, unordered.
        assert "event_data_trgm" in plan(events.order_by(), bitmap=True)


def test_the_text_index_follows_updates_and_deletes(log):
    kate = log["kate"]
    kate.data = {"email": "kate@island.example"}
    kate.save(update_fields=["data"])
    assert nonces(events_filter(q="island")) == ["n-kate"]
    assert nonces(events_filter(q="Kate.Austen")) == []
    kate.delete()
    assert nonces(events_filter(q="island")) == []
    assert nonces(events_filter(q="example.com")) == ["n-jack"]


def test_the_board_search_narrows_by_the_text_index_and_keeps_contact_fields(log):
    assert nonces(leads_filter(q="kate example")) == ["n-kate"]
    assert nonces(leads_filter(q="sure")) == []  # a word of the message, not of a contact field
    assert nonces(leads_filter(q="kwon")) == []
    leads = leads_filter(q="kate")
    if connection.vendor == "sqlite":
        assert "tracking_event_text" in plan(leads)
    else:
        # The word of the data, which the pg_trgm index answers (the lead type's own index wins at three rows).
        assert 'UPPER("tracking_event"."data"::text) LIKE' in str(leads.query)
        assert "event_data_trgm" in plan(Event.objects.filter(data_contains("kate")).order_by(), bitmap=True)


def test_the_board_search_finds_a_word_the_data_stores_escaped():
    contact = event_type_make()
    event_store(contact, {"email": "jose@example.com", "first_name": "José"}, nonce="n-jose")
    assert nonces(leads_filter(q="José")) == ["n-jose"]


def test_the_board_pages_merge_the_lead_types_newest_first_without_gaps():
    contact = event_type_make()
    callback = event_type_make({**CONTACT_FORM, "reference": "call-me-back"}, name="Call me back")
    leads = []
    for i in range(7):
        event = event_store(contact if i % 3 else callback, {"email": f"p{i}@example.com"}, nonce=f"lead-{i}")
        leads.append(event)
    # Two at the same instant: the id breaks the tie.
    for i, event in enumerate(leads):
        Event.objects.filter(pk=event.pk).update(received_at=T0 + timedelta(minutes=min(i, 5)))
    event_store(event_type_make(PURCHASE), {"email": "buyer@example.com"}, nonce="not-a-lead")
    seen, cursor = [], ""
    while True:
        page = leads_page(cursor=cursor, limit=3)
        seen += [e.nonce for e in page.items]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == [f"lead-{i}" for i in (6, 5, 4, 3, 2, 1, 0)]


def test_the_board_reads_each_lead_type_in_index_order():
    contact = event_type_make()
    page = leads_filter().filter(event_type=contact.pk).order_by("-received_at", "-pk")[:51]
    text = plan(page, sort=False)
    assert "event_type_id_log" in text
    assert "TEMP B-TREE" not in text
