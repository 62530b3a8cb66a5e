"""Isolation of the vendors: does one failing vendor slow the others down?

The sandbox, a real worker (-c 2) and beat, the demo's five connections with purchase routed to all five. Per
scenario N purchases (BENCH_EVENTS, default 400) are posted; each healthy vendor's rate is its N deliveries over
the time they took. Scenarios: every vendor up; one vendor hanging (timeout_rate 1.0, its connection's timeout
5 s); one vendor answering 500 to everything. Prints the healthy vendors' rates and their ratio to the all-up
rate (the design's target: >= 0.9), and writes JSON (BENCH_JSON, default <HUB_VAR_DIR>/isolation.json).

Run: make bench-isolation (embedded: SQLite + SQLAlchemy broker) or with DATABASE_URL / CELERY_BROKER_URL set.
Each scenario stops by itself after BENCH_SCENARIO_SECONDS (default 120). Only loopback traffic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HUB_VAR_DIR", str(ROOT / "var" / "bench-isolation"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
sys.path.insert(0, str(ROOT))
N = int(os.environ.get("BENCH_EVENTS", "400"))
LIMIT = float(os.environ.get("BENCH_SCENARIO_SECONDS", "120"))
PORT = int(os.environ.get("BENCH_SANDBOX_PORT", "8899"))
FAULTY = os.environ.get("BENCH_FAULTY_VENDOR", "tracify")
RUN = f"{int(time.time()):x}"  # nonces unique per run: the sandbox keeps what it received
HANG_TIMEOUT = 5  # the hanging vendor's connection timeout (s): a realistic value
# The sandbox is on loopback, which the hub refuses to send to unless the egress allow-list names it.
os.environ.setdefault("HUB_EGRESS_ALLOW", f"127.0.0.1:{PORT}")

SCENARIOS = {
    "all_up": None,
    "one_hanging": {"timeout_rate": 1.0, "hang_seconds": 60.0},
    "one_500": {"error_rate": 1.0, "error_statuses": [500]},
}


def _wait_http(url: str) -> None:
    import httpx

    for _ in range(200):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def _reset(faulty_pk: int, timeout: int) -> None:
    """No events, no deliveries, every circuit closed, the faulty connection's timeout as given."""
    from tracking.models import Delivery, Event, VendorConnection

    Delivery.objects.all().delete()
    Event.objects.all().delete()
    VendorConnection.objects.update(circuit_failures=0, circuit_open_until=None)
    connection = VendorConnection.objects.get(pk=faulty_pk)
    if connection.timeout_seconds != timeout:
        connection.timeout_seconds = timeout
        connection.save()  # updated_at moves: the workers rebuild their session with this timeout


def _scenario(name: str, faults: dict | None, url: str, source, connections: dict[str, int]) -> dict:
    import httpx

    from tracking.demo import purchase_data
    from tracking.models import Delivery
    from tracking.services.ingest import events_ingest

    faulty_pk = connections[FAULTY]
    _reset(faulty_pk, HANG_TIMEOUT if faults and "timeout_rate" in faults else 10)
    httpx.post(f"{url}/__sandbox__/reset")
    if faults:
        httpx.post(f"{url}/__sandbox__/faults", json={**faults, "vendors": [FAULTY]}).raise_for_status()
    healthy = {kind: pk for kind, pk in connections.items() if faults is None or kind != FAULTY}
    t0 = time.perf_counter()
    for start in range(0, N, 100):
        items = [
            {"eventType": "purchase", "nonce": f"{RUN}-{name}-{i}", "data": purchase_data("Ada", f"Iso{i}", i)}
            for i in range(start, min(N, start + 100))
        ]
        events_ingest(source=source, items=items)
    done: dict[str, float] = {}
    while len(done) < len(healthy) and time.perf_counter() - t0 < LIMIT:
        for kind, pk in healthy.items():
            if kind not in done and Delivery.objects.filter(connection_id=pk, status="delivered").count() >= N:
                done[kind] = time.perf_counter() - t0
        time.sleep(0.1)
    elapsed = time.perf_counter() - t0
    rates = {}
    for kind, pk in healthy.items():
        if kind in done:
            rates[kind] = N / done[kind]
        else:  # not finished within the limit: what it delivered over the whole scenario
            rates[kind] = Delivery.objects.filter(connection_id=pk, status="delivered").count() / elapsed
    faulty = Delivery.objects.filter(connection_id=faulty_pk)
    result = {
        "seconds": round(elapsed, 2),
        "finished": sorted(done),
        "rates": {k: round(v, 1) for k, v in rates.items()},
        "faulty_delivered": faulty.filter(status="delivered").count(),
        "faulty_attempted": sum(faulty.values_list("attempts", flat=True)),
    }
    httpx.post(f"{url}/__sandbox__/reset")
    # Runs of the faulty vendor still waiting on a hanging request end within its timeout.
    time.sleep(HANG_TIMEOUT + 1 if faults else 1)
    return result


def main() -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from tracking.models import Delivery, Event, EventType, Route, Source, VendorConnection

    var = Path(os.environ["HUB_VAR_DIR"])
    var.mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    for model in (Delivery, Event, Route, EventType, VendorConnection, Source):
        model.objects.all().delete()
    url = f"http://127.0.0.1:{PORT}"
    log = open(var / "isolation-processes.log", "w")  # noqa: SIM115 (closed below)
    run = {"cwd": ROOT, "stdout": log, "stderr": subprocess.STDOUT}
    sandbox_cmd = [sys.executable, "manage.py", "run_sandbox", "--port", str(PORT)]
    procs = [subprocess.Popen(sandbox_cmd + ["--state", str(var / "sandbox.json")], **run)]
    try:
        _wait_http(f"{url}/__sandbox__/health")
        call_command("seed_demo", sandbox_url=url, events=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
        purchase = EventType.objects.get(reference="purchase")
        connections = {c.kind: c.pk for c in VendorConnection.objects.filter(routes__event_type=purchase)}
        if FAULTY not in connections or len(connections) != 5:
            raise SystemExit(f"expected the five vendors routed for purchase, got {sorted(connections)}")
        source = Source.objects.get(name="demo-website")
        env = {**os.environ, "CELERY_POLLING_INTERVAL": "0.1"}
        celery = [sys.executable, "-m", "celery", "-A", "project"]
        queues = os.environ.get("BENCH_WORKER_QUEUES", "")
        worker = celery + ["worker", "-c", "2", "-l", "warning", "--purge", "-n", f"bench-iso-{os.getpid()}@%h"]
        procs.append(subprocess.Popen(worker + (["-Q", queues] if queues else []), env=env, **run))
        beat = celery + ["beat", "-l", "warning", "-s", str(var / "celerybeat-isolation")]
        procs.append(subprocess.Popen(beat, env=env, **run))
        time.sleep(2)
        results = {}
        for name, faults in SCENARIOS.items():
            results[name] = _scenario(name, faults, url, source, connections)
        base = results["all_up"]["rates"]
        db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
        broker = settings.CELERY_BROKER_URL.split(":", 1)[0]
        print(f"isolation: {N} purchases to five vendors, worker -c 2, {db} + {broker}; faulty vendor: {FAULTY}")
        for name, result in results.items():
            ratios = {k: round(v / base[k], 2) if base.get(k) else None for k, v in result["rates"].items()}
            result["ratios"] = ratios
            healthy = [r for r in ratios.values() if r is not None]
            result["min_ratio"] = min(healthy) if healthy else None
            rates = ", ".join(f"{k} {v:.0f}/s ({ratios[k]}x)" for k, v in result["rates"].items())
            verdict = "" if name == "all_up" else ("  OK" if (result["min_ratio"] or 0) >= 0.9 else "  BELOW 0.9")
            print(f"  {name:12s} {result['seconds']:6.1f} s  {rates}  min {result['min_ratio']}{verdict}")
        out = Path(os.environ.get("BENCH_JSON", var / "isolation.json"))
        out.write_text(json.dumps({"events": N, "database": db, "broker": broker, "scenarios": results}, indent=2))
        print(f"written: {out}")
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.close()


if __name__ == "__main__":
    main()
