from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from urllib.request import urlopen

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.test import override_settings

from tracking.demo import sandbox_egress_allow


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Start the vendor sandbox, seed the demo, then web + Celery worker + beat; Ctrl-C stops them all."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--sandbox-port", type=int, default=8765)
        parser.add_argument("--no-seed", action="store_true")

    def handle(self, *args, host: str, port: int, sandbox_port: int, no_seed: bool, **options):
        python = sys.executable
        bindir = os.path.dirname(python)
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        # The sandbox is on loopback: web, worker and beat (and the seed below) may send to it, nowhere else inside.
        allow = sandbox_egress_allow(sandbox_url, settings.HUB_EGRESS_ALLOW)
        env = {**os.environ, "SANDBOX_URL": sandbox_url, "PYTHONUNBUFFERED": "1", "HUB_EGRESS_ALLOW": ",".join(allow)}
        self.procs: list[tuple[str, subprocess.Popen]] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _interrupt)
        try:
            self.start("sandbox", [python, "manage.py", "run_sandbox", "--port", str(sandbox_port)], env)
            self.wait_for(f"{sandbox_url}/__sandbox__/health", "the vendor sandbox")
            if not no_seed:
                with override_settings(HUB_EGRESS_ALLOW=allow):
                    call_command("seed_demo", sandbox_url=sandbox_url)
            self.start(
                "web",
                [
                    os.path.join(bindir, "gunicorn"),
                    "project.wsgi",
                    "-b",
                    f"{host}:{port}",
                    "-w",
                    "2",
                    "--threads",
                    "4",
                    "--access-logfile",
                    "-",
                ],
                env,
            )
            self.start(
                "worker", [os.path.join(bindir, "celery"), "-A", "project", "worker", "-l", "info", "-c", "2"], env
            )
            self.start(
                "beat",
                [
                    os.path.join(bindir, "celery"),
                    "-A",
                    "project",
                    "beat",
                    "-l",
                    "info",
                    "-s",
                    str(settings.VAR_DIR / "celerybeat-schedule"),
                ],
                env,
            )
            self.wait_for(f"http://{host}:{port}/api/v1/openapi.json", "the web server")
            self.stdout.write(
                self.style.SUCCESS(
                    f"\nEvent hub running: console http://{host}:{port}/ (Django admin: /admin/)"
                    f"\nIngest API: http://{host}:{port}/api/v1/events (reference: http://{host}:{port}/api/v1/docs)"
                    f"\nVendor sandbox: {sandbox_url}/  (what it received: {sandbox_url}/__sandbox__/received)"
                    "\nCtrl-C stops everything.\n"
                )
            )
            while all(p.poll() is None for _, p in self.procs):
                time.sleep(0.5)
            dead = [name for name, p in self.procs if p.poll() is not None]
            raise CommandError(f"stopped because {', '.join(dead)} exited")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
        finally:
            self.stop()

    def start(self, name: str, cmd: list[str], env: dict) -> None:
        # Own session: a terminal Ctrl-C reaches this runner only, which stops the children in order.
        self.procs.append((name, subprocess.Popen(cmd, env=env, cwd=settings.BASE_DIR, start_new_session=True)))

    def wait_for(self, url: str, what: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                with urlopen(url, timeout=2):  # noqa: S310 (loopback URL we built)
                    return
            except OSError:
                time.sleep(0.3)
        raise CommandError(f"{what} did not answer at {url} within {seconds:.0f} s")

    def stop(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10
        for _, proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
