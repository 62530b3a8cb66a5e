"""Delivery throughput of the hub against a bare httpx baseline, both posting to the same sandbox.

Run: make bench (embedded: SQLite + SQLAlchemy broker) or with DATABASE_URL / CELERY_BROKER_URL set.
Prints events/s for each and the ratio hub/baseline (the machines are shared: only ratios compare).
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
# The sandbox's port: BENCH_SANDBOX_PORT, so that benches of several checkouts on one machine do not collide.
PORT = int(os.environ.get("BENCH_SANDBOX_PORT", "8799"))
# The sandbox is on loopback, which the hub refuses to send to unless the egress allow-list names it.
os.environ.setdefault("HUB_EGRESS_ALLOW", f"127.0.0.1:{PORT}")


def main() -> None:
    import django

    django.setup()
    import httpx
    from django.core.management import call_command

    from tests.factories import event_type_make, route_make, sandbox_connection_make, source_make
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
        t0 = time.perf_counter()
        for start in range(0, N, 500):
            events_ingest(source=source, items=[body(i) for i in range(start, min(N, start + 500))])
        ingest = N / (time.perf_counter() - t0)
        env = {**os.environ, "CELERY_POLLING_INTERVAL": "0.1"}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "project", "worker", "-c", "2", "-l", "warning"],
                cwd=ROOT,
                env=env,
            )
        )
        t0 = time.perf_counter()
        from tracking.tasks import dispatch_connection

        dispatch_connection.delay(connection.pk)
        while Delivery.objects.filter(status="delivered").count() < N:
            if time.perf_counter() - t0 > 600:
                raise SystemExit("timed out")
            time.sleep(0.2)
        hub = N / (time.perf_counter() - t0)
        print(f"events: {N}")
        print(f"baseline (bare httpx keep-alive): {baseline:8.0f} req/s")
        print(f"hub ingest (service, batches of 500): {ingest:8.0f} events/s")
        print(f"hub delivery (worker -c 2, incl. attempts): {hub:8.0f} events/s")
        print(f"ratio delivery/baseline: {hub / baseline:.2f}")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
