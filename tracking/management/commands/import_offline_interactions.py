from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from tracking.models import VendorConnection, VendorKind
from tracking.services.webmarketer import offline_interactions_import_csv


class Command(BaseCommand):
    help = (
        "Send offline interactions from a CSV file to Webmarketer and print one line per row; exits non-zero "
        "if any row was not sent. Header (row 1): date (RFC3339, UTC without offset), wmktId, then email / "
        "phone / user.<key> columns (userData) and any other or node.<key> column, e.g. cid (nodeData)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV file (UTF-8; comma, semicolon or tab separated)")
        parser.add_argument("--connection", required=True, metavar="NAME", help="Webmarketer connection name")
        parser.add_argument(
            "--resend",
            action="store_true",
            help="also send rows this connection already received (by default they are reported and skipped)",
        )

    def handle(self, *args, file: str, connection: str, resend: bool = False, **options):
        conn = VendorConnection.objects.filter(name=connection, kind=VendorKind.WEBMARKETER).first()
        if conn is None:
            raise CommandError(f"no Webmarketer connection named {connection!r}")
        try:
            report = offline_interactions_import_csv(connection=conn, file=Path(file), resend=resend)
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}") from None
        except ValueError as exc:  # a bad header or a misconfigured connection: nothing was sent
            raise CommandError(str(exc)) from None
        for row in report.rows:
            self.stdout.write(str(row))
        already = f", {report.already_sent} already sent before (not sent again)" if report.already_sent else ""
        self.stdout.write(f"{report.sent} sent{already}, {report.failed} not sent, of {len(report.rows)} rows.")
        if report.failed:
            raise CommandError(f"{report.failed} of {len(report.rows)} rows were not sent")
