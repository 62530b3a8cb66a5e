"""The audit trail: who did what in the console."""

from __future__ import annotations

from typing import Any

from ..models import AuditEntry


def audit_record(*, user, action: str, target: Any = None, details: dict | None = None) -> AuditEntry:
    return AuditEntry.objects.create(
        user=user if getattr(user, "is_authenticated", False) else None,
        action=action,
        target=str(target)[:300] if target is not None else "",
        details=details or {},
    )
