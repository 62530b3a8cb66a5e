"""The measured phases of bench/chaos.py after its chaos run, on the same stack (sandbox, two workers, beat):
isolation (bench/isolation.py's scenarios), back-pressure (one vendor down with a bulk-loaded backlog of due
deliveries) and replay after the outage (the backlog drains at the vendor's max_rate). Each prints its lines and
returns its figures; every figure is a ratio against a baseline measured in the same run."""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

FAULTY = os.environ.get("BENCH_FAULTY_VENDOR", "tracify")
M = int(os.environ.get("CHAOS_MEASURE_EVENTS", "400"))  # events per rate measurement
DOWN = {"error_rate": 1.0, "error_statuses": [503]}  # the vendor "down": 503 to everything
CHUNK = 5000
# The vendor replayed after its outage: one request per event (Webmarketer), so its requests/s is its deliveries/s.
REPLAY_VENDOR = os.environ.get("CHAOS_REPLAY_VENDOR", "webmarketer")
REPLAY_PATH = "/webmarketer/api/v1/events"


def say(text: str) -> None:
    print(text, flush=True)


def _faults(url: str, faults: dict | None) -> None:
    import httpx

    httpx.post(f"{url}/__sandbox__/faults", json=faults or {}, timeout=5).raise_for_status()


def _empty() -> None:
    """No events, deliveries or attempts; every circuit closed. The connections are paused meanwhile, so that no run
    records into rows being deleted (on PostgreSQL that deadlocked with a run still recording)."""
    from django.db import OperationalError, transaction

    from tracking.models import Attempt, Delivery, Event, VendorConnection

    VendorConnection.objects.update(paused=True)
    end = time.monotonic() + 60
    while time.monotonic() < end and Delivery.objects.filter(status="sending").exists():
        time.sleep(0.5)
    for _ in range(5):
        try:
            with transaction.atomic():
                Attempt.objects.all().delete()
                Delivery.objects.all().delete()
                Event.objects.all().delete()
            break
        except OperationalError:
            time.sleep(1)
    VendorConnection.objects.update(
        paused=False,
        circuit_failures=0,
        circuit_open_until=None,
        timeout_seconds=5,
        retry_base_seconds=1,
        retry_max_seconds=10,
    )


# -- isolation -------------------------------------------------------------------------------------------------
def isolation(url: str, source, connections: dict[str, int]) -> dict:
    """bench/isolation.py's three scenarios on this stack: the healthy vendors' rate against all up."""
    os.environ["BENCH_SANDBOX_PORT"] = url.rsplit(":", 1)[1]
    os.environ.setdefault("BENCH_EVENTS", str(M))
    import isolation as iso

    _empty()
    results = {name: iso._scenario(name, faults, url, source, connections) for name, faults in iso.SCENARIOS.items()}
    base = results["all_up"]["rates"]
    out = {}
    for name, result in results.items():
        if name == "all_up":
            continue
        ratios = {k: round(v / base[k], 2) for k, v in result["rates"].items() if base.get(k)}
        out[name] = {"min_ratio": min(ratios.values()), "ratios": ratios, "seconds": result["seconds"]}
    line = ", ".join(f"{name} min {r['min_ratio']} ({r['ratios']})" for name, r in out.items())
    say(f"isolation: {iso.N} purchases, faulty {FAULTY}; healthy vendors' rate vs all up: {line}")
    out["all_up_rates"] = base
    return out


# -- helpers for the backlog -----------------------------------------------------------------------------------
def backlog_load(connection_id: int, n: int, *, created: datetime, prefix: str) -> None:
    """n purchases, each with one due (`retrying`) delivery to the connection on its purchase route, created at
    `created`: the backlog of a vendor that was down. Written with executemany (bench/dashboard.py's way)."""
    from django.db import connection, transaction

    from tracking.demo import purchase_data
    from tracking.models import Event, EventType, Route

    ops = connection.ops
    purchase = EventType.objects.get(reference="purchase")
    route = Route.objects.get(event_type=purchase, connection_id=connection_id)
    uuid_field = Event._meta.get_field("uuid")
    at = ops.adapt_datetimefield_value(created)
    due = ops.adapt_datetimefield_value(datetime.now(UTC) - timedelta(seconds=1))
    event_sql = (
        "INSERT INTO tracking_event (uuid, nonce, vendor_nonce, event_type_id, event_type_ref, data, event_date, "
        "tracker_id, source_id, received_at, status, errors) VALUES (%s, %s, %s, %s, %s, %s, %s, '', NULL, %s, 'ok', "
        "'[]')"
    )
    delivery_sql = (
        "INSERT INTO tracking_delivery (event_id, connection_id, route_id, generation, nonce, status, attempts, "
        "take_backs, next_attempt_at, claimed_at, last_error, vendor_ref, delivered_at, created_at, updated_at) "
        "SELECT id, %s, %s, 0, vendor_nonce, 'retrying', 1, 0, %s, NULL, 'vendor down', '', NULL, %s, %s "
        "FROM tracking_event WHERE vendor_nonce = %s"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        for base in range(0, n, CHUNK):
            events, deliveries = [], []
            for i in range(base, min(n, base + CHUNK)):
                nonce = f"{prefix}-{i}"
                data = json.dumps(purchase_data("Bo", f"Back{i}", i))
                events.append(
                    (
                        uuid_field.get_db_prep_value(uuid.uuid4(), connection),
                        nonce,
                        nonce,
                        purchase.pk,
                        "purchase",
                        data,
                        at,
                        at,
                    )
                )
                deliveries.append((connection_id, route.pk, due, at, at, nonce))
            cursor.executemany(event_sql, events)
            cursor.executemany(delivery_sql, deliveries)
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def ingest_rate(source, prefix: str) -> float:
    """Events per second of ingesting M purchases (batches of 100, in process: validation and the outbox rows)."""
    from tracking.demo import purchase_data
    from tracking.services.ingest import events_ingest

    t0 = time.perf_counter()
    for start in range(0, M, 100):
        items = [
            {"eventType": "purchase", "nonce": f"{prefix}-{i}", "data": purchase_data("Cy", f"In{i}", i)}
            for i in range(start, min(M, start + 100))
        ]
        events_ingest(source=source, items=items)
    return M / (time.perf_counter() - t0)


def healthy_rates(healthy: dict[str, int], prefix: str, limit: float = 180) -> dict[str, float]:
    """Each healthy vendor's delivery rate for the events nonce'd `prefix-…` just ingested (M each)."""
    from tracking.models import Delivery

    t0 = time.perf_counter()
    done: dict[str, float] = {}
    while len(done) < len(healthy) and time.perf_counter() - t0 < limit:
        for kind, pk in healthy.items():
            if kind in done:
                continue
            delivered = Delivery.objects.filter(
                connection_id=pk, status="delivered", event__nonce__startswith=f"{prefix}-"
            ).count()
            if delivered >= M:
                done[kind] = time.perf_counter() - t0
        time.sleep(0.1)
    elapsed = time.perf_counter() - t0
    return {k: M / done[k] if k in done else 0.0 for k in healthy} | {"_seconds": elapsed}


def page_times(connection_id: int) -> dict[str, float]:
    """Median seconds of 5 GETs (after a warm-up) of the event log's first page and the connections' pages."""
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    user = User.objects.filter(is_superuser=True).first() or User.objects.create_superuser("chaos", "", "x")
    client.force_login(user)
    out = {}
    for name, path in (
        ("event log", "/events/"),
        ("connections", "/connections/"),
        ("connection page", f"/connections/{connection_id}/"),
    ):
        assert client.get(path).status_code == 200, path
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            client.get(path)
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times)
    return out


def measure(source, healthy: dict[str, int], faulty_pk: int, prefix: str) -> dict:
    ingest = ingest_rate(source, prefix)
    rates = healthy_rates(healthy, prefix)
    seconds = rates.pop("_seconds")
    return {"ingest": ingest, "rates": rates, "pages": page_times(faulty_pk), "seconds": seconds}


# -- back-pressure ---------------------------------------------------------------------------------------------
def backpressure(url: str, source, connections: dict[str, int], backlog: int) -> dict:
    """One vendor down: ingest, the others' rate and the console pages with and without `backlog` due deliveries
    of that vendor; then the give-up window ends the backlog as `failed` with the reason."""
    from django.test.utils import setup_test_environment

    from tracking.models import Delivery, VendorConnection

    setup_test_environment()
    _empty()
    faulty_pk = connections[FAULTY]
    healthy = {k: pk for k, pk in connections.items() if k != FAULTY}
    _faults(url, {**DOWN, "vendors": [FAULTY]})
    base = measure(source, healthy, faulty_pk, "bp0")
    # The backlog, as an hour of the vendor down leaves it (created an hour ago); the window is shortened only once
    # the figures are taken, so the give-up does not overlap them.
    VendorConnection.objects.filter(pk=faulty_pk).update(give_up_after_seconds=86400)
    t0 = time.perf_counter()
    backlog_load(faulty_pk, backlog, created=datetime.now(UTC) - timedelta(hours=1), prefix="bp-old")
    load_s = time.perf_counter() - t0
    from django.db import connection as db

    if db.vendor == "postgresql":
        with db.cursor() as cursor:  # what autovacuum does within a minute of such a load
            cursor.execute("ANALYZE tracking_event; ANALYZE tracking_delivery")
    loaded = measure(source, healthy, faulty_pk, "bp1")
    ratios = {
        "ingest": round(loaded["ingest"] / base["ingest"], 2),
        **{
            f"rate {k}": round(v / base["rates"][k], 2) if base["rates"][k] else None
            for k, v in loaded["rates"].items()
        },
        **{f"page {k}": round(v / base["pages"][k], 2) for k, v in loaded["pages"].items()},
    }
    say(
        f"back-pressure: {FAULTY} down, {backlog} due deliveries (loaded in {load_s:.0f} s); with/without backlog: "
        + ", ".join(f"{k} {v}x" for k, v in ratios.items())
    )
    say(
        "  without: ingest {:.0f} ev/s, pages {}; with: ingest {:.0f} ev/s, pages {}".format(
            base["ingest"],
            {k: f"{v * 1000:.0f} ms" for k, v in base["pages"].items()},
            loaded["ingest"],
            {k: f"{v * 1000:.0f} ms" for k, v in loaded["pages"].items()},
        )
    )
    # The window ends (half an hour): the sweep fails the backlog with the reason.
    window = 1800
    VendorConnection.objects.filter(pk=faulty_pk).update(give_up_after_seconds=window)
    old = Delivery.objects.filter(connection_id=faulty_pk, event__nonce__startswith="bp-old-")
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 400 and old.exclude(status="failed").exists():
        time.sleep(2)
    ended = time.perf_counter() - t0
    failed = old.filter(status="failed").count()
    reasons = list(old.filter(status="failed").order_by().values_list("last_error", flat=True).distinct()[:3])
    say(
        f"  give-up window ({window} s): {failed}/{backlog} of the backlog failed {ended:.0f} s after; "
        f"reason: {reasons}"
    )
    _faults(url, None)
    return {"base": base, "loaded": loaded, "ratios": ratios, "failed": failed, "reasons": reasons, "load_s": load_s}


# -- replay after the outage -----------------------------------------------------------------------------------
def replay(url: str, source, connections: dict[str, int], n: int, max_rate: float = 25.0) -> dict:
    """The vendor back up with `n` due deliveries: they drain at its max_rate (requests/s), and the others keep
    their rate (against the same ingest with no backlog)."""
    from tracking.models import Delivery, VendorConnection

    _empty()
    _faults(url, None)
    faulty_pk = connections[REPLAY_VENDOR]
    healthy = {k: pk for k, pk in connections.items() if k != REPLAY_VENDOR}
    VendorConnection.objects.filter(pk=faulty_pk).update(max_rate=max_rate, give_up_after_seconds=86400)
    VendorConnection.objects.get(pk=faulty_pk).save()  # updated_at: the workers' sessions take the new max_rate
    base = healthy_rates_after_ingest(source, healthy, "rp0")
    backlog_load(faulty_pk, n, created=datetime.now(UTC), prefix="rp-old")
    log = open(os.environ["HUB_VAR_DIR"] + "/sandbox-requests.jsonl")  # noqa: SIM115
    log.seek(0, 2)
    t0 = time.perf_counter()
    started = datetime.now(UTC).isoformat()
    loaded = healthy_rates_after_ingest(source, healthy, "rp1")
    old = Delivery.objects.filter(connection_id=faulty_pk, event__nonce__startswith="rp-old-")
    while time.perf_counter() - t0 < 600 and old.exclude(status="delivered").exists():
        time.sleep(0.5)
    drain = time.perf_counter() - t0
    drained = old.filter(status="delivered").count()
    requests = [json.loads(line) for line in log if line.endswith("\n")]
    log.close()
    mine = [r for r in requests if r["vendor"] == REPLAY_VENDOR and r["at"] >= started and r["path"] == REPLAY_PATH]
    span = max(1e-3, (datetime.fromisoformat(mine[-1]["at"]) - datetime.fromisoformat(mine[0]["at"])).total_seconds())
    request_rate = (len(mine) - 1) / span if len(mine) > 1 else 0.0
    ratios = {k: round(v / base[k], 2) if base[k] else None for k, v in loaded.items()}
    say(
        f"replay: {REPLAY_VENDOR} back with {n} due deliveries, max_rate {max_rate}/s: {drained}/{n} delivered in "
        f"{drain:.0f} s ({drained / drain:.0f} deliveries/s, {request_rate:.1f} requests/s); the others' rate "
        f"vs no backlog: {ratios}"
    )
    return {"drained": drained, "seconds": drain, "request_rate": request_rate, "max_rate": max_rate, "ratios": ratios}


def healthy_rates_after_ingest(source, healthy: dict[str, int], prefix: str) -> dict[str, float]:
    ingest_rate(source, prefix)
    rates = healthy_rates(healthy, prefix)
    rates.pop("_seconds")
    return rates
