"""Waking dispatchers: after the current transaction commits, queue a dispatch run for a connection, at most
about once per HUB_WAKE_DEBOUNCE_SECONDS per connection and process, and never losing a wake-up.

A wake is left out only when this process has already queued a run for that connection that starts later than
now (one sent with a countdown): that run claims what was committed before it starts, and goes again while it
claims, so it covers the rows the wake was for. Otherwise the first wake of a quiet interval goes out at once (no
added latency) and the next one within the interval goes out with a countdown to the interval's end; the wakes
until then are covered by it. So at most about two messages per connection per interval and process, where
there was one per request. The sweep (HUB_SWEEP_SECONDS) still wakes every connection with due work.

The only service module that names the dispatch tasks (imported when a wake is published): the others call
these functions instead, so delivery, leads and the rest no longer import the tasks that import them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

DISPATCH = "dispatch"
LEAD_CHANGES = "lead_changes"
# A run queued to start less than this after now is not relied on: the worker starts it by its own clock.
MARGIN = 0.05


@dataclass
class _Published:
    sent_at: float = float("-inf")  # when the last run was queued to start (at once, or its countdown's end)
    starts_at: float = float("-inf")  # the start of the latest run queued with a countdown


_published: dict[tuple[str, int], _Published] = {}
_lock = threading.Lock()


def wake_plan(*, kind: str, connection_id: int, now: float, interval: float) -> float | None:
    """The countdown of the run to queue for this wake (0: at once), or None when a run this process already
    queued starts after `now` and so covers it."""
    if interval <= 0:
        return 0.0
    with _lock:
        published = _published.setdefault((kind, connection_id), _Published())
        if published.starts_at - now > MARGIN:
            return None
        if now - published.sent_at >= interval:
            published.sent_at = now
            return 0.0
        start = max(published.sent_at + interval, now + 2 * MARGIN)
        published.sent_at = published.starts_at = start
        return start - now


def wake_forget() -> None:
    """Forget what this process queued (tests)."""
    with _lock:
        _published.clear()


def _task(kind: str):
    from .. import tasks

    return tasks.dispatch_connection if kind == DISPATCH else tasks.dispatch_lead_changes


def _publish(kind: str, connection_id: int) -> None:
    eager = settings.CELERY_TASK_ALWAYS_EAGER  # an eager run happens now, so no later run can cover a wake
    interval = 0.0 if eager else settings.HUB_WAKE_DEBOUNCE_SECONDS
    countdown = wake_plan(kind=kind, connection_id=connection_id, now=time.monotonic(), interval=interval)
    if countdown is None:
        return
    task = _task(kind)
    try:
        if countdown:
            task.apply_async((connection_id,), countdown=countdown)
        else:
            task.delay(connection_id)
    except Exception:
        # Not queued (the broker is down): nothing may count on it, or later wakes would be left out too.
        with _lock:
            _published.pop((kind, connection_id), None)
        raise


def _wake(kind: str, connection_ids: Iterable[int], committed: bool) -> None:
    for connection_id in sorted(set(connection_ids)):
        if committed:
            _publish(kind, connection_id)
        else:
            transaction.on_commit(lambda cid=connection_id: _publish(kind, cid))


def connections_wake(connection_ids: Iterable[int], *, committed: bool = False) -> None:
    """After the current transaction commits, have each connection's delivery dispatcher run (debounced).
    `committed`: the rows are already committed (the sweep), so now."""
    _wake(DISPATCH, connection_ids, committed)


def lead_changes_wake(connection_ids: Iterable[int], *, committed: bool = False) -> None:
    """After the current transaction commits, have each connection's lead dispatcher run (debounced).
    `committed`: the rows are already committed (the sweep), so now."""
    _wake(LEAD_CHANGES, connection_ids, committed)
