"""Logging filters."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied


class PermissionDeniedOneLine(logging.Filter):
    """django.request logs a 403 (PermissionDenied) at WARNING with the exception's traceback: a refusal is
    not a bug, so keep its one line ("Forbidden (Permission denied): /path") and the reason, not the stack."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, PermissionDenied):
            if str(exc):
                record.msg = f"{record.msg} ({str(exc).replace('%', '%%')})"
            record.exc_info = None
            record.exc_text = None
        return True
