"""Delivery throughput of the hub against a bare httpx baseline, both posting to the same sandbox.

Run: make bench (embedded: SQLite + SQLAlchemy broker) or with DATABASE_URL / CELERY_BROKER_URL set.
Prints events/s for each and the ratio hub/baseline (the machines are shared: only ratios compare); then Tracify
delivered one event per request against batched (target >= 5x), and the worker's memory (RSS of its processes)
before and after BENCH_MEMORY_EVENTS more deliveries (target: growth < 20 MB; 100000 for the issue's figure).
BENCH_EVENTS, BENCH_TRACIFY_EVENTS, BENCH_MEMORY_EVENTS (0 leaves that part out), BENCH_SANDBOX_PORT.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HUB_VAR_DIR", str(ROOT / "var" / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
sys.path.insert(0, str(ROOT))
N = int(os.environ.get("BENCH_EVENTS", "2000"))
N_TRACIFY = int(os.environ.get("BENCH_TRACIFY_EVENTS", "6000"))
N_MEMORY = int(os.environ.get("BENCH_MEMORY_EVENTS", "5000"))
# The sandbox's port: BENCH_SANDBOX_PORT, so that benches of several checkouts on one machine do not collide.
PORT = int(os.environ.get("BENCH_SANDBOX_PORT", "8799"))
# The sandbox is on loopback, which the hub refuses to send to unless the egress allow-list names it.
os.environ.setdefault("HUB_EGRESS_ALLOW", f"127.0.0.1:{PORT}")


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (the worker's pool), in MB, from /proc."""
    pids, total = [pid], 0
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        pids += [int(child) for child in children]
    return total / 1024


def deliver(connection, n: int, ingest) -> float:
    """Ingest n events while the connection is paused, then resume it and time until all n are delivered: events/s."""
    from tracking.models import Delivery, VendorConnection
    from tracking.tasks import dispatch_connection

    VendorConnection.objects.filter(pk=connection.pk).update(paused=True)
    ingest(n)
    VendorConnection.objects.filter(pk=connection.pk).update(paused=False)
    done = Delivery.objects.filter(connection=connection, status="delivered")
    before = done.count()
    t0 = time.perf_counter()
    dispatch_connection.delay(connection.pk)
    while done.count() - before < n:
        if time.perf_counter() - t0 > 3600:
            raise SystemExit("timed out")
        time.sleep(0.05)
    return n / (time.perf_counter() - t0)


def main() -> dict:
    """Run the bench, print it, and return its figures (further rows in `rows`, one dict per table line)."""
    import django

    django.setup()
    import httpx
    from django.core.management import call_command

    from tests.factories import (
        event_type_make,
        route_make,
        sandbox_connection_make,
        sandbox_vendor_connection_make,
        source_make,
    )
    from tracking.models import Delivery, Event, EventType, Route, Source, VendorConnection
    from tracking.services.delivery import session_for
    from tracking.services.ingest import events_ingest

    call_command("migrate", verbosity=0)
    for model in (Delivery, Event, Route, EventType, VendorConnection, Source):
        model.objects.all().delete()
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "run_sandbox",
            "--port",
            str(PORT),
            "--state",
            os.environ["HUB_VAR_DIR"] + "/sandbox.json",
        ],
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{PORT}"
    procs = [sandbox]
    try:
        for _ in range(100):
            try:
                httpx.get(f"{url}/__sandbox__/health")
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        connection = sandbox_connection_make(url)
        route_make(event_type_make(), connection)
        source, _ = source_make("bench")

        def body(i: int) -> dict:
            return {
                "eventType": "contact-form",
                "nonce": f"b-{i}",
                "data": {"email": f"p{i}@example.com", "first_name": "John", "message": "x" * 200},
            }

        # Baseline: one keep-alive client, the same body shape, straight to the sandbox.
        token = session_for(connection).token()
        with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client:
            t0 = time.perf_counter()
            for i in range(N):
                client.post(
                    f"{connection.base_url}events",
                    json={"projectId": "my-project", "eventType": "contact-form", **body(N + i)},
                )
            baseline = N / (time.perf_counter() - t0)

        # Hub: ingest N events (outbox rows), then a real worker delivers them.
        VendorConnection.objects.filter(pk=connection.pk).update(paused=True)  # until the worker is up
        t0 = time.perf_counter()
        for start in range(0, N, 500):
            events_ingest(source=source, items=[body(i) for i in range(start, min(N, start + 500))])
        ingest = N / (time.perf_counter() - t0)
        serial = iter(range(10 * N, 10**9))

        def ingest_more(n: int) -> None:
            for start in range(0, n, 500):
                items = [body(next(serial)) for _ in range(min(500, n - start))]
                events_ingest(source=source, items=items)

        env = {**os.environ, "CELERY_POLLING_INTERVAL": "0.1"}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "project", "worker", "-c", "2", "-l", "warning"],
                cwd=ROOT,
                env=env,
            )
        )
        # The worker's start (imports, pool, first broker poll) is not delivery time: it first delivers a few
        # events of another connection (the measured one's route off meanwhile, so they are not its).
        main_route = Route.objects.get(connection=connection)
        Route.objects.filter(pk=main_route.pk).update(enabled=False)
        warm = sandbox_connection_make(url, name="warm-up")
        warm_route = route_make(EventType.objects.get(), warm)
        deliver(warm, 100, ingest_more)
        Route.objects.filter(pk=warm_route.pk).update(enabled=False)
        Route.objects.filter(pk=main_route.pk).update(enabled=True)
        VendorConnection.objects.filter(pk=connection.pk).update(paused=False)
        t0 = time.perf_counter()
        from tracking.tasks import dispatch_connection

        dispatch_connection.delay(connection.pk)
        while Delivery.objects.filter(connection=connection, status="delivered").count() < N:
            if time.perf_counter() - t0 > 600:
                raise SystemExit("timed out")
            time.sleep(0.2)
        hub = N / (time.perf_counter() - t0)
        print(f"events: {N}")
        print(f"baseline (bare httpx keep-alive): {baseline:8.0f} req/s")
        print(f"hub ingest (service, batches of 500): {ingest:8.0f} events/s")
        print(f"hub delivery (worker -c 2, incl. attempts): {hub:8.0f} events/s")
        print(f"ratio delivery/baseline: {hub / baseline:.2f}", flush=True)

        webmarketer_route = main_route
        rows: list[dict] = []
        if N_TRACIFY:
            # Tracify, the same events one per request and then batched (a hundred per request), one route at a time.
            webmarketer_route.enabled = False
            webmarketer_route.save()
            rates = {}
            for label, extra in (("one per request", {"events_per_request": "1"}), ("batched", {})):
                tracify = sandbox_vendor_connection_make(url, "tracify", name=f"tracify {label}")
                tracify.settings.update(extra)
                # The same claim for both (a hundred events for each of the 8 sending threads): only the
                # events per request differ.
                tracify.batch_size = 800
                tracify.save()
                route = route_make(
                    EventType.objects.get(),
                    tracify,
                    vendor_event_name="pageview",
                    mapping={"ip": "=203.0.113.7", "user_agent": "=Mozilla/5.0", "url": "=https://shop.example.com/"},
                )
                rates[label] = deliver(tracify, N_TRACIFY, ingest_more)
                route.enabled = False
                route.save()
            one, batched = rates["one per request"], rates["batched"]
            print(f"tracify events: {N_TRACIFY}")
            print(f"tracify one event per request (hub): {one:8.0f} events/s")
            print(f"tracify batched, up to 100 per request (hub): {batched:8.0f} events/s")
            print(f"ratio tracify batched/one per request: {batched / one:.1f} (target >= 5)", flush=True)
            rows.append(
                {
                    "scenario": f"Tracify delivery, {N_TRACIFY:,} events, batched (up to 100 per request)",
                    "hub": round(batched, 2),
                    "unit": "events/s",
                    "baseline": round(one, 2),
                    "baseline_name": "the same, one event per request",
                    "ratio": round(batched / one, 3),
                    "target": ">= 5x",
                    "met": batched / one >= 5,
                    "note": "",
                }
            )
            webmarketer_route.enabled = True
            webmarketer_route.save()
        if N_MEMORY:
            # The worker has delivered everything above: its imports, pools and caches are warm.
            worker = procs[-1].pid
            before = rss_mb(worker)
            rate = deliver(connection, N_MEMORY, ingest_more)
            after = rss_mb(worker)
            print(f"memory: worker RSS (all processes) {before:.1f} MB before, {after:.1f} MB after {N_MEMORY} more")
            print(
                f"worker RSS growth over {N_MEMORY} deliveries: {after - before:.1f} MB (target < 20; at {rate:.0f}/s)"
            )
            rows.append(
                {
                    "scenario": f"worker memory over {N_MEMORY:,} deliveries (RSS of all its processes)",
                    "hub": round(after, 1),
                    "unit": "MB",
                    "baseline": round(before, 1),
                    "baseline_name": "RSS before",
                    "ratio": round(after / before, 3),
                    "target": "growth < 20 MB",
                    "met": after - before < 20,
                    "note": f"growth {after - before:.1f} MB",
                }
            )
        return {"events": N, "baseline_rps": baseline, "ingest_eps": ingest, "delivery_eps": hub, "rows": rows}
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
