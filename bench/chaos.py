"""Chaos run: does the hub lose, duplicate or forget anything when its processes, broker, database and vendors fail?

The sandbox (with its request log: every vendor call it answered, kept across its restart), two separate `celery
worker` processes and beat, the demo's five connections with purchase routed to all five, retry delays short
(the connections' fields). CHAOS_EVENTS purchases (default 10,000) are ingested while the sandbox injects faults
into 30 % of the vendor calls (10 % 5xx, 10 % 429 with Retry-After, 10 % hanging past the connection's timeout).
As the deliveries progress: SIGKILL a worker (and start it again), restart Redis, restart the sandbox (refused
for a few seconds), SIGKILL the other worker, restart PostgreSQL. Then it checks, from the database and the
sandbox's request log:

- every delivery `delivered` (lost: any other status), none left `sending` / `retrying`;
- Webmarketer (nonce dedup) holds each event once;
- the vendors without dedup received an event more than once (answered 2xx) only for deliveries that were in
  flight (`sending`) at a SIGKILL: duplicates beyond that bound count as a failure;
- every event request the sandbox received is recorded as an Attempt (unrecorded sends: per delivery, requests
  received beyond its Attempt rows), beyond those in flight at a SIGKILL.

It prints ONE line with the counts and exits non-zero on any loss (or duplicates beyond the bound, or stuck rows).

Stacks (CHAOS_STACK):
- `pg` (make chaos): its own PostgreSQL cluster (CHAOS_PG_PORT, default 5441, data in the bench's var folder,
  run as the `postgres` user when started as root) and its own redis-server (CHAOS_REDIS_PORT, default 6391),
  both restarted during the run. Nothing shared is touched.
- `embedded`: SQLite + the SQLAlchemy broker (no Redis or PostgreSQL restarts).

After the chaos run, the same stack measures (CHAOS_PHASES, default `chaos,isolation,backpressure,replay`):
- isolation: bench/isolation.py's scenarios (all up, one hanging, one answering 500): the healthy vendors' ratio;
- back-pressure: one vendor down with CHAOS_BACKLOG (default 100,000) due deliveries bulk-loaded: ingest rate,
  the other vendors' rate and the console's event log / connection pages against the same without the backlog,
  and the give-up window ending the backlog as `failed` with the reason;
- replay: the vendor back up drains CHAOS_REPLAY (default 3,000) due deliveries at its max_rate while the others
  keep their rate.
Only loopback traffic. Not part of `make test`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACK = os.environ.get("CHAOS_STACK", "embedded")
os.environ.setdefault("HUB_VAR_DIR", str(ROOT / "var" / f"chaos-{STACK}"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
VAR = Path(os.environ["HUB_VAR_DIR"])
N = int(os.environ.get("CHAOS_EVENTS", "10000"))
PORT = int(os.environ.get("CHAOS_SANDBOX_PORT", "8841"))
PG_PORT = int(os.environ.get("CHAOS_PG_PORT", "5441"))
REDIS_PORT = int(os.environ.get("CHAOS_REDIS_PORT", "6391"))
# The faults stop after this (then the run waits for what is left while it progresses).
LIMIT = float(os.environ.get("CHAOS_SECONDS", "2400"))
PHASES = os.environ.get("CHAOS_PHASES", "chaos,isolation,backpressure,replay").split(",")
BACKLOG = int(os.environ.get("CHAOS_BACKLOG", "100000"))
REPLAY = int(os.environ.get("CHAOS_REPLAY", "3000"))
URL = f"http://127.0.0.1:{PORT}"
os.environ.setdefault("HUB_EGRESS_ALLOW", f"127.0.0.1:{PORT}")
# Short for the run: a worker's rows stuck in `sending` are taken back after this (the default is 5 minutes).
os.environ.setdefault("HUB_STUCK_AFTER_SECONDS", "30")
os.environ.setdefault("HUB_SWEEP_SECONDS", "2")
os.environ.setdefault("CELERY_POLLING_INTERVAL", "0.1")
# The faults: 30 % of the vendor calls. Timeouts hang past the connections' timeout (TIMEOUT).
TIMEOUT = 1.0
# hang_seconds past the timeout: the hub gives up on the call first (the sandbox then answers 504, never 2xx).
FAULTS = {
    "error_rate": 0.10,
    "error_statuses": [500, 502, 503],
    "rate_429": 0.10,
    "retry_after": 1,
    "timeout_rate": 0.10,
    "hang_seconds": TIMEOUT + 0.5,
}
TOKEN = re.compile(r"Zq(\d+)q")  # an event's mark in what a vendor received (last name, order id)
EVENT_PATHS = ("/webmarketer/api/v1/events", "/acquia/v2/", "/algonomy/callback/", "/tracardi/collect/", "/tracify/")
PG_BIN = Path("/usr/lib/postgresql/15/bin")
if STACK == "pg":
    os.environ["DATABASE_URL"] = f"postgres://hub:hub@127.0.0.1:{PG_PORT}/hub_chaos"
    os.environ["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{REDIS_PORT}/0"


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# -- the processes ---------------------------------------------------------------------------------------------
class Proc:
    """A process of the stack, in its own process group (a SIGKILL takes its children with it)."""

    def __init__(self, name: str, cmd: list[str], env: dict | None = None) -> None:
        self.name, self.cmd, self.env = name, cmd, env
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(VAR / f"{self.name}.log", "a")  # noqa: SIM115 (the child keeps it)
        self.proc = subprocess.Popen(
            self.cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to the process alone (a worker's warm shutdown: its pool finishes the task at hand; a SIGTERM to
        the group killed the pool's child mid-run, an unrecorded send of the harness's own making)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # whatever of its group is left


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


class Postgres:
    """The run's own PostgreSQL cluster (never the shared one): initdb once, start, restart, stop."""

    def __init__(self) -> None:
        home = VAR
        if os.geteuid() == 0 and subprocess.run(_as_postgres(["test", "-x", str(VAR)])).returncode != 0:
            # The checkout is not reachable by the postgres user (e.g. under /root): the cluster lives in /tmp.
            home = Path(tempfile.gettempdir()) / f"hub-chaos-pg-{PG_PORT}"
            home.mkdir(exist_ok=True)
            shutil.chown(home, "postgres", "postgres")
        self.data = home / "pg"
        self.logfile = home / "postgres.log"

    def _ctl(self, *args: str) -> None:
        opts = f"-p {PG_PORT} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100"
        cmd = [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile), "-o", opts, "-w", *args]
        subprocess.run(_as_postgres(cmd), check=True, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            self.data.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(self.data, "postgres", "postgres")
        if os.geteuid() == 0:
            self.logfile.touch()
            shutil.chown(self.logfile, "postgres", "postgres")
        if not (self.data / "PG_VERSION").exists():
            subprocess.run(
                _as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]),
                check=True,
                stdout=subprocess.DEVNULL,
            )
        self._ctl("start")
        psql = [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres", "-qtAc"]
        role = subprocess.run(psql + ["select 1 from pg_roles where rolname='hub'"], capture_output=True, text=True)
        if "1" not in role.stdout:
            subprocess.run(psql + ["create user hub password 'hub' createdb"], check=True)
        subprocess.run(psql + ["drop database if exists hub_chaos"], check=True)
        subprocess.run(psql + ["create database hub_chaos owner hub"], check=True)

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")


class Stack:
    def __init__(self) -> None:
        py = sys.executable
        celery = [py, "-m", "celery", "-A", "project"]
        env = {**os.environ}
        self.sandbox = Proc(
            "sandbox",
            [
                py,
                "manage.py",
                "run_sandbox",
                "--port",
                str(PORT),
                "--state",
                str(VAR / "sandbox.json"),
                "--log",
                str(VAR / "sandbox-requests.jsonl"),
            ],
            env,
        )
        self.workers = [
            Proc(f"worker{i}", celery + ["worker", "-c", "1", "-l", "warning", "-n", f"chaos{i}-{os.getpid()}@%h"], env)
            for i in (1, 2)
        ]
        self.beat = Proc("beat", celery + ["beat", "-l", "warning", "-s", str(VAR / "celerybeat-chaos")], env)
        self.redis = (
            Proc("redis", ["redis-server", "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no"])
            if STACK == "pg"
            else None
        )
        self.pg = Postgres() if STACK == "pg" else None

    def all(self) -> list[Proc]:
        return [p for p in (self.redis, self.sandbox, *self.workers, self.beat) if p]


def wait_http(url: str, seconds: float = 30) -> None:
    import httpx

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def wait_redis() -> None:
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", str(REDIS_PORT), "ping"], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise SystemExit("redis did not start")


def faults_set(faults: dict) -> None:
    import httpx

    httpx.post(f"{URL}/__sandbox__/faults", json=faults, timeout=5).raise_for_status()


# -- the chaos run -------------------------------------------------------------------------------------------
def purchase(i: int) -> dict:
    from tracking.demo import purchase_data

    data = purchase_data("Ada", f"Zq{i}q", i)
    data["order_id"] = f"ORD-Zq{i}q"
    return {"eventType": "purchase", "nonce": f"chaos-{i}", "data": data}


def db_retry(fn, *args, **kwargs):
    """fn, tried again while the database restarts."""
    from django.db import InterfaceError, OperationalError, connection

    for _ in range(120):
        try:
            return fn(*args, **kwargs)
        except (OperationalError, InterfaceError):
            connection.close()
            time.sleep(0.5)
    return fn(*args, **kwargs)


def progress() -> tuple[int, int]:
    from tracking.models import Delivery

    return Delivery.objects.count(), Delivery.objects.filter(status="delivered").count()


def in_flight_ids() -> set[int]:
    from tracking.models import Delivery

    return set(Delivery.objects.filter(status="sending").values_list("pk", flat=True))


def chaos(stack: Stack, source, connections: dict[str, int]) -> dict:
    from tracking.models import Attempt, Delivery, VendorConnection
    from tracking.services.ingest import events_ingest

    VendorConnection.objects.update(
        timeout_seconds=TIMEOUT, retry_base_seconds=1, retry_max_seconds=5, give_up_after_seconds=86400
    )
    faults_set(FAULTS)
    total = N * len(connections)
    # The faults, in order, at these shares of the deliveries delivered.
    plan = [
        (0.10, "SIGKILL worker 1"),
        (0.25, "restart Redis"),
        (0.40, "restart the sandbox"),
        (0.55, "SIGKILL worker 2"),
        (0.70, "restart PostgreSQL"),
    ]
    if STACK != "pg":
        plan = [p for p in plan if "Redis" not in p[1] and "PostgreSQL" not in p[1]]
    killed_in_flight: set[int] = set()
    done_faults: list[str] = []
    t0 = time.monotonic()
    ingested = 0
    last_say = 0.0
    while True:
        if ingested < N:  # ingest in batches while the faults go on (a steady flow, as a shop posts)
            batch = [purchase(i) for i in range(ingested, min(N, ingested + 200))]
            db_retry(events_ingest, source=source, items=batch)
            ingested += len(batch)
        else:
            time.sleep(0.5)
        made, delivered = db_retry(progress)
        if plan and delivered >= plan[0][0] * total:
            share, what = plan.pop(0)
            say(f"{what} at {delivered}/{total} delivered")
            if what.startswith("SIGKILL"):
                worker = stack.workers[0 if what.endswith("1") else 1]
                in_flight = db_retry(in_flight_ids)
                worker.kill()
                killed_in_flight |= in_flight
                say(f"  {len(in_flight)} deliveries in flight (sending)")
                time.sleep(1)
                worker.start()
            elif what == "restart Redis":
                stack.redis.stop()
                stack.redis.start()
                wait_redis()
            elif what == "restart the sandbox":
                stack.sandbox.stop()
                time.sleep(3)  # refused meanwhile
                stack.sandbox.start()
                wait_http(f"{URL}/__sandbox__/health")
                faults_set(FAULTS)
            elif what == "restart PostgreSQL":
                stack.pg.restart()
            done_faults.append(what)
        if time.monotonic() - last_say > 15:
            last_say = time.monotonic()
            say(f"  {ingested} events ingested, {delivered}/{made} delivered")
        if ingested >= N and not plan and delivered >= total:
            break
        if time.monotonic() - t0 > LIMIT:
            say("time limit reached")
            break
    # Quiet: no faults; let whatever is retrying finish, then the workers stop (what the sandbox got is final).
    faults_set({})
    seconds = time.monotonic() - t0
    # Until every delivery is delivered, or a minute passes without one more (what is left then is lost).
    last, end = -1, time.monotonic() + 60
    while time.monotonic() < end and (left := Delivery.objects.exclude(status="delivered").count()):
        if left != last:
            last, end = left, time.monotonic() + 60
        time.sleep(1)
    for worker in stack.workers:
        worker.stop()
    stack.beat.stop()
    time.sleep(1)

    statuses = Counter(Delivery.objects.values_list("status", flat=True))
    deliveries = sum(statuses.values())
    delivered = statuses.get("delivered", 0)
    by_pk = {pk: kind for kind, pk in connections.items()}
    # Per (vendor, event): the event requests the sandbox received, and those it accepted (2xx).
    received: Counter = Counter()
    accepted: Counter = Counter()
    with open(VAR / "sandbox-requests.jsonl") as lines:
        for line in lines:
            if not line.endswith("\n"):
                continue
            item = json.loads(line)
            if not item["path"].startswith(EVENT_PATHS):
                continue
            for i in {int(m) for m in TOKEN.findall(json.dumps(item["body"]))}:
                received[item["vendor"], i] += 1
                if 200 <= item["status"] < 300:
                    accepted[item["vendor"], i] += 1
    rows = Delivery.objects.values_list("pk", "connection_id", "event__nonce")
    delivery_of = {(by_pk[c], int(nonce.split("-")[1])): pk for pk, c, nonce in rows}
    attempts = Counter(Attempt.objects.values_list("delivery_id", flat=True))
    duplicates = {key: n - 1 for key, n in accepted.items() if n > 1}
    # A call the hub gave up on (its timeout) that the vendor still accepted, slowly: the attempt says "timeout",
    # the delivery is retried, the vendor gets it twice. At-least-once cannot tell these apart; they are counted
    # apart from the SIGKILL bound (the hub recorded every one of them), and the nonce dedups them at Webmarketer.
    timed_out = set(
        Attempt.objects.filter(response_status__isnull=True, error__startswith="timeout").values_list(
            "delivery_id", flat=True
        )
    )
    after_timeout = {key for key in duplicates if delivery_of.get(key) not in killed_in_flight} & {
        key for key in duplicates if delivery_of.get(key) in timed_out
    }
    beyond = {key for key in duplicates if delivery_of.get(key) not in killed_in_flight} - after_timeout
    unrecorded = {key: received[key] - attempts[delivery_of.get(key)] for key in received}
    unrecorded = {key: n for key, n in unrecorded.items() if n > 0}
    unrecorded_beyond = {key for key in unrecorded if delivery_of.get(key) not in killed_in_flight}
    vendors_seen = {kind for kind, _ in accepted}
    import httpx

    wm = httpx.get(f"{URL}/__sandbox__/webmarketer/events", timeout=30).json()["data"]
    # The events Webmarketer holds, per chaos event (its mark in the data; the nonce it dedups on is
    # "<source id>:chaos-<i>"): each once, none missing.
    wm_events = Counter(i for e in wm for i in {int(m) for m in TOKEN.findall(json.dumps(e.get("data")))})
    wm_dupes = sum(n - 1 for n in wm_events.values() if n > 1)
    wm_missing = N - len(wm_events)
    return {
        "stack": STACK,
        "seconds": round(seconds, 1),
        "faults": done_faults,
        "events": ingested,
        "deliveries": deliveries,
        "delivered": delivered,
        "lost": deliveries - delivered + max(0, total - deliveries),
        "statuses": dict(statuses),
        "stuck": statuses.get("sending", 0) + statuses.get("retrying", 0),
        "in_flight_at_kills": len(killed_in_flight),
        "duplicates": sum(duplicates.values()),
        "duplicates_after_timeout": len(after_timeout),
        "duplicates_beyond_bound": len(beyond),
        "duplicates_by_vendor": dict(Counter(k for k, _ in duplicates)),
        "webmarketer_duplicates": wm_dupes,
        "webmarketer_missing": wm_missing,
        "unrecorded": sum(unrecorded.values()),
        "unrecorded_beyond_bound": len(unrecorded_beyond),
        "vendors_seen": sorted(vendors_seen),
        "attempts": sum(attempts.values()),
        "requests": sum(received.values()),
    }


def chaos_line(r: dict) -> str:
    return (
        f"chaos [{r['stack']}]: events {r['events']}, deliveries {r['deliveries']}, delivered {r['delivered']}, "
        f"lost {r['lost']}, stuck {r['stuck']}, duplicates seen by sandbox {r['duplicates']} "
        f"(bound: {r['in_flight_at_kills']} in flight at SIGKILL; {r['duplicates_after_timeout']} deliveries after a "
        f"timeout the vendor had accepted; beyond {r['duplicates_beyond_bound']}), "
        f"webmarketer duplicates {r['webmarketer_duplicates']}, unrecorded sends {r['unrecorded']} "
        f"(beyond bound {r['unrecorded_beyond_bound']}), requests {r['requests']}, attempts {r['attempts']}, "
        f"{r['seconds']} s"
    )


# -- main ------------------------------------------------------------------------------------------------------
def main() -> int:
    # A SIGTERM (CI's timeout, Ctrl-C's cousin) still stops the stack it started: the `finally` below runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    VAR.mkdir(parents=True, exist_ok=True)
    for name in ("sandbox-requests.jsonl", "sandbox.json", "celerybeat-chaos"):
        (VAR / name).unlink(missing_ok=True)
    stack = Stack()
    results: dict = {}
    failed = False
    try:
        if stack.redis:
            stack.redis.start()
            wait_redis()
        if stack.pg:
            stack.pg.start()
        import django

        django.setup()
        from django.core.management import call_command

        from tracking.models import EventType, Source, VendorConnection

        call_command("migrate", verbosity=0)
        from tracking.models import Attempt, Delivery, Event, Route

        for model in (Attempt, Delivery, Event, Route, EventType, VendorConnection, Source):
            model.objects.all().delete()
        stack.sandbox.start()
        wait_http(f"{URL}/__sandbox__/health")
        call_command("seed_demo", sandbox_url=URL, events=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
        purchase_type = EventType.objects.get(reference="purchase")
        connections = {c.kind: c.pk for c in VendorConnection.objects.filter(routes__event_type=purchase_type)}
        if len(connections) != 5:
            raise SystemExit(f"expected the five vendors routed for purchase, got {sorted(connections)}")
        source = Source.objects.get(name="demo-website")
        for p in (*stack.workers, stack.beat):
            p.start()
        time.sleep(2)
        if "chaos" in PHASES:
            r = chaos(stack, source, connections)
            results["chaos"] = r
            print(chaos_line(r), flush=True)
            failed |= bool(r["lost"] or r["stuck"] or r["duplicates_beyond_bound"] or r["webmarketer_duplicates"])
            failed |= bool(r["webmarketer_missing"] or r["unrecorded_beyond_bound"])
            for p in (*stack.workers, stack.beat):
                p.start()
            time.sleep(2)
        if "isolation" in PHASES:
            from chaos_phases import isolation

            results["isolation"] = isolation(URL, source, connections)
        if "backpressure" in PHASES:
            from chaos_phases import backpressure

            results["backpressure"] = backpressure(URL, source, connections, BACKLOG)
        if "replay" in PHASES:
            from chaos_phases import replay

            results["replay"] = replay(URL, source, connections, REPLAY)
    finally:
        for p in reversed(stack.all()):
            p.stop()
        if stack.pg:
            stack.pg.stop()
        (VAR / "chaos.json").write_text(json.dumps(results, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
