from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the vendor sandbox: a local HTTP server speaking the vendors' APIs, with fault injection."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument(
            "--state",
            default=str(Path(settings.VAR_DIR) / "sandbox-state.json"),
            help="File keeping the sandbox's service accounts across restarts.",
        )
        parser.add_argument(
            "--log",
            default="",
            help="Request log (JSON lines): every vendor call received, read back at start, so that what was "
            "received (and Webmarketer's nonce dedup) survives a restart.",
        )

    def handle(self, *args, host: str, port: int, state: str, log: str, **options):
        import uvicorn

        from tracking.sandbox import create_app

        self.stdout.write(f"Vendor sandbox on http://{host}:{port}/ (faults: POST /__sandbox__/faults)")
        uvicorn.run(
            create_app(Path(state), Path(log) if log else None),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
        )
