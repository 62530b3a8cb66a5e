"""Segment ingest against the hub's own batch API: the same 100-event batches of purchases, posted in process
(Django's test client, no network) to /api/v1/events/batch (the baseline) and, as Segment track messages gzipped
like the SDKs send them, to /v1/batch; rounds interleaved so machine noise falls on both.

Run: .venv/bin/python bench/segment.py (embedded SQLite, or DATABASE_URL set). Prints events/s for each and the
ratio segment/baseline (the machines are shared: only the ratio compares)."""

from __future__ import annotations

import base64
import gzip
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HUB_VAR_DIR", str(ROOT / "var" / "bench-segment"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
sys.path.insert(0, str(ROOT))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "10"))
BATCH = 100


def main() -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.test import Client

    from tests.factories import PURCHASE, event_type_make, route_make, source_make, webmarketer_connection_make
    from tracking.models import Delivery, Event, EventType, Route, SegmentSettings, Source, VendorConnection

    call_command("migrate", verbosity=0)
    for model in (Delivery, Event, Route, SegmentSettings, EventType, VendorConnection, Source):
        model.objects.all().delete()
    # A paused connection: deliveries are queued (the outbox rows are part of ingest), nothing is sent.
    route_make(event_type_make(PURCHASE), webmarketer_connection_make(paused=True))
    source, token = source_make()
    SegmentSettings.objects.create(source=source, event_aliases={"Order Completed": "purchase"})
    client = Client(HTTP_HOST="localhost")
    bearer = {"Authorization": f"Bearer {token}"}
    basic = {"Authorization": "Basic " + base64.b64encode(f"{token}:".encode()).decode(), "Content-Encoding": "gzip"}

    def hub_batch(r: int) -> bytes:
        events = [
            {"eventType": "purchase", "nonce": f"h-{r}-{i}", "trackerId": f"u-{i}",
             "data": {"email": f"p{i}@example.com", "amount": i, "currency": "EUR"}}
            for i in range(BATCH)
        ]  # fmt: skip
        return json.dumps({"events": events}).encode()

    def segment_batch(r: int) -> bytes:
        messages = [
            {"type": "track", "event": "Order Completed", "messageId": f"s-{r}-{i}", "userId": f"u-{i}",
             "timestamp": "2026-11-30T10:00:00Z", "context": {"ip": "203.0.113.9", "library": {"name": "bench"}},
             "properties": {"email": f"p{i}@example.com", "amount": i, "currency": "EUR"}}
            for i in range(BATCH)
        ]  # fmt: skip
        return gzip.compress(json.dumps({"batch": messages}).encode())

    times = {"baseline": 0.0, "segment": 0.0}
    for r in range(ROUNDS):
        posts = [
            ("baseline", "/api/v1/events/batch", hub_batch(r), bearer, 202),
            ("segment", "/v1/batch", segment_batch(r), basic, 200),
        ]
        for name, path, body, headers, ok in posts if r % 2 else posts[::-1]:  # each goes first every other round
            started = time.perf_counter()
            response = client.post(path, data=body, content_type="application/json", headers=headers)
            times[name] += time.perf_counter() - started
            assert response.status_code == ok, response.content[:300]
    assert Event.objects.filter(status="ok").count() == 2 * ROUNDS * BATCH
    rates = {name: ROUNDS * BATCH / seconds for name, seconds in times.items()}
    print(f"baseline /api/v1/events/batch: {rates['baseline']:.0f} events/s")
    print(f"segment  /v1/batch (gzip):     {rates['segment']:.0f} events/s")
    print(f"ratio segment/baseline: {rates['segment'] / rates['baseline']:.2f}")


if __name__ == "__main__":
    main()
