"""`make bench`: issue 12's table in one run. Every row against a baseline measured in the same run (the machine is
shared: only ratios compare), its target, and whether it is met; printed as Markdown and written as JSON.

Run: .venv/bin/python bench/table.py [--compare old.json] [--only delivery,http,batch,console]
Embedded (SQLite + SQLAlchemy broker in var/bench) by default; PostgreSQL + Redis when DATABASE_URL and
CELERY_BROKER_URL are set. Rows:

- delivery to the sandbox (bench/delivery.py: BENCH_EVENTS events, default 2,000, worker -c 2) against a bare
  keep-alive httpx loop to the same sandbox: target >= 1.0x;
- one event per request over HTTP (gunicorn -w 2 --threads 4, BENCH_CLIENTS=16 keep-alive clients for
  BENCH_HTTP_SECONDS=10 s after 2 s of warm-up) against a bare Django view on the same server (bench/ingest_wsgi.py:
  parse the JSON, answer 202): target >= 0.5x;
- batch ingest over HTTP (500 events per request, 4 clients): target >= 5,000 events/s (on PostgreSQL); the bare
  view's rate on the same batches is shown for scale;
- the console at BENCH_CONSOLE_EVENTS events (default 100,000; 1,000,000 is `make bench-console`'s size and takes
  minutes to load) against 1,000 (bench/console.py): target <= 2x.

Ports: BENCH_SANDBOX_PORT (default 8820) and BENCH_HTTP_PORT (default 8821). Output: BENCH_OUT (default
var/bench/bench.json, or bench-postgresql.json on PostgreSQL) and the same name with .md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import itertools
import json
import os
import re
import subprocess
import sys
import time
import traceback
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
os.environ.setdefault("HUB_VAR_DIR", str(ROOT / "var" / "bench"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
os.environ.setdefault("BENCH_SANDBOX_PORT", "8820")
# bench/delivery.py's sandbox is on loopback, which the hub refuses to send to unless the allow-list names it (read
# when Django starts, before that module is imported).
os.environ.setdefault("HUB_EGRESS_ALLOW", f"127.0.0.1:{os.environ['BENCH_SANDBOX_PORT']}")
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))
HTTP_PORT = int(os.environ.get("BENCH_HTTP_PORT", "8821"))
HTTP_SECONDS = float(os.environ.get("BENCH_HTTP_SECONDS", "10"))
WARMUP_SECONDS = 2.0
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "16"))
BATCH = 500
BATCH_CLIENTS = 4
CONSOLE_EVENTS = int(os.environ.get("BENCH_CONSOLE_EVENTS", "100000"))
PARTS = ("delivery", "http", "batch", "console")


def row(scenario, hub, unit, baseline, baseline_name, target, *, higher=True, absolute=None, note=""):
    """One line of the table. `target` is a ratio (hub/baseline, at least it when `higher`, at most it otherwise),
    or, with `absolute`, a rate the hub itself must reach (the baseline is then shown for scale only)."""
    ratio = hub / baseline if baseline else None
    if absolute is not None:
        met = hub >= absolute
        target_text = f">= {absolute:,.0f} {unit}"
    else:
        met = ratio is not None and (ratio >= target if higher else ratio <= target)
        target_text = f"{'>=' if higher else '<='} {target:g}x"
    return {
        "scenario": scenario,
        "hub": round(hub, 2),
        "unit": unit,
        "baseline": round(baseline, 2) if baseline else None,
        "baseline_name": baseline_name,
        "ratio": round(ratio, 3) if ratio is not None else None,
        "target": target_text,
        "met": met,
        "note": note,
    }


# -- HTTP load: a small keep-alive client (asyncio, raw HTTP/1.1) so the load generator costs little CPU on the
# same two cores as the server.


def _request(path: str, token: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{HTTP_PORT}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _client(requests, deadline: float, counted_from: float, stats: Counter, latencies: list) -> None:
    reader = writer = None
    while time.perf_counter() < deadline:
        if writer is None:
            reader, writer = await asyncio.open_connection("127.0.0.1", HTTP_PORT)
        t0 = time.perf_counter()
        writer.write(next(requests))
        status_line = await reader.readline()
        if not status_line:
            writer.close()
            reader = writer = None
            stats["disconnected"] += 1
            continue
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        await reader.readexactly(length)
        if t0 >= counted_from:
            stats[int(status_line.split()[1])] += 1
            latencies.append(time.perf_counter() - t0)
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def http_load(requests, clients: int, seconds: float) -> dict:
    """`clients` keep-alive connections posting `requests` (an iterator of raw requests) back to back for
    WARMUP_SECONDS (not counted) and then `seconds`: answers per second by status, and latency percentiles."""
    stats: Counter = Counter()
    latencies: list[float] = []

    async def run() -> None:
        start = time.perf_counter()
        counted_from = start + WARMUP_SECONDS
        deadline = counted_from + seconds
        await asyncio.gather(*(_client(requests, deadline, counted_from, stats, latencies) for _ in range(clients)))

    asyncio.run(run())
    latencies.sort()
    ok = sum(n for status, n in stats.items() if status in (200, 202))
    return {
        "per_s": ok / seconds,
        "answers": dict(stats),
        "errors": sum(stats.values()) - ok,
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 1) if latencies else None,
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 1) if latencies else None,
    }


def _contact(nonce: str) -> dict:
    return {
        "eventType": "contact-form",
        "nonce": nonce,
        "data": {"email": f"{nonce}@example.com", "first_name": "John", "message": "please call me back"},
    }


def ingest_setup():
    """An emptied hub (bench/dashboard.py's bench_start) with contact-form routed to its three connections and a
    source: the token."""
    from dashboard import bench_start
    from django.test.utils import teardown_test_environment

    from tests.factories import route_make, source_make
    from tracking.models import EventType, Source, VendorConnection

    bench_start()
    teardown_test_environment()  # bench/console.py's bench_start() sets it up again
    Source.objects.all().delete()
    contact_form = EventType.objects.get(reference="contact-form")
    for connection in VendorConnection.objects.all():
        route_make(contact_form, connection)
    _, token = source_make("bench")
    return token


def gunicorn_start() -> subprocess.Popen:
    import httpx

    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            os.environ.get("BENCH_WORKERS", "2"),
            "--threads",
            "4",
            "-b",
            f"127.0.0.1:{HTTP_PORT}",
            "--pythonpath",
            f"{ROOT},{BENCH}",
            "--log-level",
            "warning",
            "ingest_wsgi:application",
        ],
        cwd=ROOT,
    )
    for _ in range(150):
        try:
            httpx.get(f"http://127.0.0.1:{HTTP_PORT}/api/v1/openapi.json", timeout=2)
            return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("gunicorn did not start")


def http_rows(parts: set[str]) -> list[dict]:
    from django.db import connection

    from tracking.models import Event

    token = ingest_setup()
    connection.close()  # no lock held by this process while the server writes
    server = gunicorn_start()
    rows, details = [], {}
    try:
        run = itertools.count()
        if "http" in parts:
            single = (
                _request("/api/v1/events", token, json.dumps(_contact(f"s-{next(run)}")).encode()) for _ in iter(int, 1)
            )
            bare_single = (
                _request("/bench/bare/", token, json.dumps(_contact(f"b-{next(run)}")).encode()) for _ in iter(int, 1)
            )
            details["bare"] = bare = http_load(bare_single, CLIENTS, HTTP_SECONDS)
            details["hub"] = hub = http_load(single, CLIENTS, HTTP_SECONDS)
            stored = Event.objects.filter(nonce__startswith="s-").count()
            connection.close()
            rows.append(
                row(
                    f"one event per request over HTTP (gunicorn -w 2 --threads 4, {CLIENTS} clients)",
                    hub["per_s"],
                    "req/s",
                    bare["per_s"],
                    "bare Django view on the same server (parse JSON, 202)",
                    0.5,
                    note=f"p50 {hub['p50_ms']} ms, p99 {hub['p99_ms']} ms (bare {bare['p50_ms']} / {bare['p99_ms']}); "
                    f"{hub['errors']} errors; {stored:,} events stored",
                )
            )
        if "batch" in parts:

            def batches(path: str, prefix: str):
                while True:
                    base = next(run)
                    body = {"events": [_contact(f"{prefix}{base}-{i}") for i in range(BATCH)]}
                    yield _request(path, token, json.dumps(body).encode())

            details["bare_batch"] = bare = http_load(batches("/bench/bare/", "bb-"), BATCH_CLIENTS, HTTP_SECONDS)
            details["hub_batch"] = hub = http_load(batches("/api/v1/events/batch", "hb-"), BATCH_CLIENTS, HTTP_SECONDS)
            rows.append(
                row(
                    f"batch ingest over HTTP ({BATCH} per request, {BATCH_CLIENTS} clients)",
                    hub["per_s"] * BATCH,
                    "events/s",
                    bare["per_s"] * BATCH,
                    "bare view on the same batches (for scale)",
                    None,
                    absolute=5000,
                    note=f"p50 {hub['p50_ms']} ms per batch; {hub['errors']} errors",
                )
            )
    finally:
        server.terminate()
        server.wait(20)
    print(json.dumps(details, indent=1), flush=True)
    return rows


class _Tee(io.TextIOBase):
    """Writes through to `out` and keeps a copy."""

    def __init__(self, out) -> None:
        self.out, self.parts = out, []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return self.out.write(text)

    def flush(self) -> None:
        self.out.flush()

    @property
    def text(self) -> str:
        return "".join(self.parts)


def delivery_rows() -> list[dict]:
    import delivery

    printed = _Tee(sys.stdout)
    try:
        with contextlib.redirect_stdout(printed):
            figures = delivery.main()
    except Exception:
        # It printed its figures and then failed (stopping its worker, on a loaded machine): read them back.
        found = dict(re.findall(r"^(baseline|hub delivery)[^:]*:\s*([\d.]+)", printed.text, re.MULTILINE))
        if len(found) < 2:
            raise
        traceback.print_exc()
        figures = {
            "events": delivery.N,
            "baseline_rps": float(found["baseline"]),
            "delivery_eps": float(found["hub delivery"]),
        }
    rows = [
        row(
            f"delivery to the sandbox, {figures['events']:,} events, worker -c 2",
            figures["delivery_eps"],
            "events/s",
            figures["baseline_rps"],
            "bare keep-alive httpx loop",
            1.0,
        )
    ]
    # Further delivery rows (Tracify batching, worker memory) when bench/delivery.py measures them.
    rows += figures.get("rows", [])
    return rows


def console_rows() -> list[dict]:
    import console

    console.LARGE = CONSOLE_EVENTS
    out = Path(os.environ["HUB_VAR_DIR"]) / "console-table.json"
    os.environ["BENCH_JSON"] = str(out)
    console.main()
    report = json.loads(out.read_text())
    return [
        row(
            f"console at {report['large']:,} events: {page['page']}",
            page["large_ms"],
            "ms",
            page["small_ms"],
            f"the same page at {report['small']:,} events",
            report["target_ratio"],
            higher=False,
            note=f"fastest {page['large_fastest_ms']} vs {page['small_fastest_ms']} ms ({page['ratio_fastest']}x)",
        )
        for page in report["pages"]
    ]


def markdown(report: dict, old: dict | None = None) -> str:
    lines = [
        f"{report['database']} + {report['broker']}, {report['at']}, {report['cpus']} CPUs",
        "",
        "| scenario | hub | baseline in the same run | ratio | target | met |" + (" previous ratio |" if old else ""),
        "|---|---|---|---|---|---|" + ("---|" if old else ""),
    ]
    before = {r["scenario"]: r for r in (old or {}).get("rows", [])}
    for r in report["rows"]:
        baseline = f"{r['baseline']:,.1f} {r['unit']} ({r['baseline_name']})" if r["baseline"] else "-"
        ratio = f"{r['ratio']:.2f}x" if r["ratio"] is not None else "-"
        hub = f"{r['hub']:,.1f} {r['unit']}" if r["unit"] else "-"
        line = f"| {r['scenario']} | {hub} | {baseline} | {ratio} | {r['target']} | {'yes' if r['met'] else '**no**'} |"
        if old:
            prev = before.get(r["scenario"])
            line += f" {prev['ratio']:.2f}x |" if prev and prev.get("ratio") is not None else " - |"
        lines.append(line)
    notes = [f"- {r['scenario']}: {r['note']}" for r in report["rows"] if r["note"]]
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", type=Path, help="an earlier bench.json: its ratios beside this run's")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated among {', '.join(PARTS)}")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    if unknown := parts - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")

    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    rows: list[dict] = []
    for part, measure in (
        ("delivery", delivery_rows),
        ("ingest", lambda: http_rows(parts)),
        ("console", console_rows),
    ):
        if part not in parts and not (part == "ingest" and parts & {"http", "batch"}):
            continue
        try:
            rows += measure()
        except Exception as exc:  # one part failing still leaves the others' rows
            traceback.print_exc()
            rows.append(
                {
                    "scenario": f"{part}: not measured",
                    "hub": 0,
                    "unit": "",
                    "baseline": None,
                    "baseline_name": "",
                    "ratio": None,
                    "target": "-",
                    "met": False,
                    "note": f"the bench failed: {type(exc).__name__}: {exc}"[:300],
                }
            )

    report = {
        "database": connection.vendor,
        "broker": settings.CELERY_BROKER_URL.split(":", 1)[0],
        "at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    default = "bench.json" if connection.vendor == "sqlite" else f"bench-{connection.vendor}.json"
    out = Path(os.environ.get("BENCH_OUT", Path(os.environ["HUB_VAR_DIR"]) / default))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    old = json.loads(args.compare.read_text()) if args.compare else None
    text = markdown(report, old)
    out.with_suffix(".md").write_text(text)
    print("\n" + text)
    print(f"written: {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
