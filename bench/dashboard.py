"""The dashboard's time at a small and at a large event log: it reads rollups, so it must stay within twice its
time at a thousand events when the log holds a million.

Run: .venv/bin/python bench/dashboard.py (embedded SQLite in var/bench-dashboard, or with DATABASE_URL set).
BENCH_SMALL (default 1,000) and BENCH_LARGE (default 1,000,000) events are loaded with bulk SQL (one delivery
each, over the last 30 days, some invalid, some failed), the rollups rebuilt from them, then the dashboard is
timed (median and fastest of BENCH_ROUNDS requests, default 15, after warm-ups) for 24 h, 7 d and 30 d. Lead
changes are people's clicks, not traffic: the same 200 at both sizes. Prints the times and the ratio
large/small. Not part of `make test`.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HUB_VAR_DIR", str(ROOT / "var" / "bench-dashboard"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
sys.path.insert(0, str(ROOT))
SMALL = int(os.environ.get("BENCH_SMALL", "1000"))
LARGE = int(os.environ.get("BENCH_LARGE", "1000000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))
CHUNK = 5000
RANGES = ("24h", "7d", "30d")


def load(n: int) -> None:
    """n events (5 % invalid) spread over the last 30 days, and one delivery per valid event (90 % delivered a
    few seconds later, the rest failed), written with executemany in one transaction."""
    from django.db import connection, transaction

    from tracking.models import Delivery, Event, EventType, VendorConnection

    ops = connection.ops
    types = list(EventType.objects.values_list("pk", "reference"))
    connections = list(VendorConnection.objects.values_list("pk", flat=True))
    now = datetime.now(UTC)
    rng = random.Random(n)
    data = json.dumps({"email": "p@example.com", "message": "hello"})
    uuid_field = Event._meta.get_field("uuid")
    event_sql = (
        "INSERT INTO tracking_event (uuid, nonce, vendor_nonce, event_type_id, event_type_ref, data, event_date, "
        "tracker_id, source_id, received_at, status, errors) VALUES (%s, %s, %s, %s, %s, %s, %s, '', NULL, %s, %s, %s)"
    )
    delivery_sql = (
        "INSERT INTO tracking_delivery (event_id, connection_id, route_id, generation, nonce, status, attempts, "
        "take_backs, next_attempt_at, claimed_at, last_error, vendor_ref, delivered_at, created_at, updated_at) "
        "SELECT id, %s, NULL, 0, vendor_nonce, %s, 1, 0, %s, NULL, '', '', %s, %s, %s FROM tracking_event "
        "WHERE vendor_nonce = %s"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        start = Event.objects.count()
        for base in range(start, start + n, CHUNK):
            events, deliveries = [], []
            for i in range(base, min(base + CHUNK, start + n)):
                type_id, ref = types[i % len(types)]
                received = now - timedelta(seconds=rng.uniform(0, 30 * 86400))
                at = ops.adapt_datetimefield_value(received)
                invalid = i % 20 == 0
                nonce = f"bench-{i}"
                events.append(
                    (
                        uuid_field.get_db_prep_value(uuid.uuid4(), connection),
                        nonce,
                        f"0:{nonce}",
                        type_id,
                        ref,
                        data,
                        at,
                        at,
                        "invalid" if invalid else "ok",
                        '[{"field": "email", "message": "is not an email"}]' if invalid else "[]",
                    )
                )
                if not invalid:
                    failed = i % 10 == 1
                    done = ops.adapt_datetimefield_value(received + timedelta(seconds=rng.expovariate(1 / 3)))
                    status = "failed" if failed else "delivered"
                    deliveries.append(
                        (
                            connections[i % len(connections)],
                            status,
                            at,
                            None if failed else done,
                            at,
                            done,
                            f"0:{nonce}",
                        )
                    )
            cursor.executemany(event_sql, events)
            # One INSERT … SELECT per delivery would be slow: insert them by joining on the chunk's nonces.
            cursor.executemany(delivery_sql, deliveries)
    assert Delivery.objects.count() >= n * 0.9
    if connection.vendor == "sqlite":
        # One transaction of a million rows leaves them all in the write-ahead log (SQLite checkpoints only
        # between transactions): fold it back as a running hub's later writes would, or every read pays for it.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def timed(client, path: str) -> tuple[float, float]:
    """Median and fastest seconds of ROUNDS GETs (after three warm-ups); the fastest is the least disturbed
    by other work on a shared machine."""
    for _ in range(3):
        assert client.get(path).status_code == 200
    times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - t0)
        assert response.status_code == 200
    return statistics.median(times), min(times)


def bench_start():
    """Migrated and emptied of earlier runs, with the demo's contact-form and purchase types, three connections
    and a test client logged in as Marketing: (contact-form type, client). bench/console.py starts the same way."""
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    from tests.factories import PURCHASE, event_type_make, user_make, webmarketer_connection_make
    from tracking.models import (
        Attempt,
        Delivery,
        Event,
        EventType,
        HourlyCount,
        LatencyCount,
        LeadChange,
        LeadDelivery,
        Route,
        TrashedEvent,
        VendorConnection,
    )

    setup_test_environment()  # the test client's host, no real e-mail
    call_command("migrate", verbosity=0)
    emptied = (
        LeadDelivery,
        LeadChange,
        Attempt,
        Delivery,
        TrashedEvent,
        Event,
        Route,
        EventType,
        VendorConnection,
        HourlyCount,
        LatencyCount,
    )
    # Without the ORM's cascade collection, which reads every row of a million-event log into memory first.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"TRUNCATE {', '.join(m._meta.db_table for m in emptied)} CASCADE")
    else:
        for model in emptied:  # children first
            model.objects.all()._raw_delete(connection.alias)
    User.objects.filter(username="bench-marketing").delete()
    contact_form, _ = event_type_make(), event_type_make(PURCHASE)
    for name in ("Webmarketer", "Webmarketer EU", "Tracify"):
        webmarketer_connection_make(name=name)
    client = Client()
    client.force_login(user_make("Marketing", username="bench-marketing"))
    return contact_form, client


def main() -> None:
    import django

    django.setup()
    from tracking.models import Event, HourlyCount, LatencyCount, LeadChange
    from tracking.services.rollups import rollups_rebuild

    contact_form, client = bench_start()

    results: dict[int, dict[str, tuple[float, float]]] = {}
    loaded = 0
    for size in (SMALL, LARGE):
        t0 = time.perf_counter()
        load(size - loaded)
        loaded = size
        load_s = time.perf_counter() - t0
        if not LeadChange.objects.exists():
            leads = Event.objects.filter(event_type=contact_form, status="ok").order_by("-id")[:200]
            LeadChange.objects.bulk_create(
                LeadChange(event=e, kind="state", storage_key="qualified", value=1, date=e.received_at) for e in leads
            )
        t0 = time.perf_counter()
        rollups_rebuild()
        rebuild_s = time.perf_counter() - t0
        results[size] = {r: timed(client, f"/dashboard/?range={r}") for r in RANGES}
        rows = HourlyCount.objects.count() + LatencyCount.objects.count()
        print(
            f"{size:>9,} events: loaded in {load_s:.1f} s, rollups rebuilt in {rebuild_s:.1f} s ({rows:,} rows); "
            + ", ".join(
                f"{r} {results[size][r][0] * 1000:.1f} ms (fastest {results[size][r][1] * 1000:.1f})" for r in RANGES
            ),
            flush=True,
        )
    for r in RANGES:
        (small, small_min), (large, large_min) = results[SMALL][r], results[LARGE][r]
        ratio = large / small
        verdict = "within" if ratio <= 2 else "NOT within"
        print(f"dashboard {r}: median {small * 1000:.1f} ms at {SMALL:,}, {large * 1000:.1f} ms at {LARGE:,}: "
              f"ratio {ratio:.2f} ({verdict} 2x); fastest {large_min / small_min:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
