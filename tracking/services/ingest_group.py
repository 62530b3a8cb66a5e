"""Group commit for one-event requests: concurrent requests of a process share one transaction.

A web process serves several requests at once (gunicorn threads). Committed one by one, each single-event request
pays a transaction of its own (on SQLite: the database's one write lock, taken and released per request; on
PostgreSQL: a commit's WAL flush). Here the first request that finds no transaction under way leads: it takes
every request waiting in this process (at most HUB_INGEST_GROUP_MAX), stores them in one transaction (one
events_ingest() per source, so one insert of events and one of deliveries for all of them) and commits; each
request is answered only after that commit (a 202 still means stored). Requests arriving meanwhile wait, and the
next leader is the oldest of them: no timer, so a lone request waits for nobody.

On SQLite the leaders of all web processes also take turns through a lock file (see _writer_lock).

An error never spreads: a source's requests whose ingest raises are rolled back to a savepoint and stored one by
one (each in its own savepoint), and if the commit itself fails (a constraint checked at commit) every request of
the group is stored again in a transaction of its own; whatever fails then fails only its own request. Nonces keep
any retry one event. Inside a transaction already open (a test, a caller's atomic block) there is no grouping.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from ..models import Source
from .ingest import IngestResult, events_ingest

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: SQLite's own lock polling only
    fcntl = None

logger = logging.getLogger(__name__)


@dataclass
class _Request:
    source: Source | None
    item: Any
    result: IngestResult | None = None
    error: BaseException | None = None
    lead: bool = False  # handed the lead by the previous leader
    done: threading.Event = field(default_factory=threading.Event)


_lock = threading.Lock()
_waiting: list[_Request] = []
_leading = False


def event_ingest(*, source: Source | None, item: Any) -> IngestResult:
    """Store one posted event (as events_ingest() would) in a transaction shared with this process's concurrent
    requests; returns once it is committed, or raises what failed for this request."""
    if connection.in_atomic_block or settings.HUB_INGEST_GROUP_MAX <= 1:
        (result,) = events_ingest(source=source, items=[item])
        return result
    global _leading
    request = _Request(source, item)
    with _lock:
        _waiting.append(request)
        lead = not _leading
        _leading = True
    if lead:
        _lead()
    request.done.wait()
    while request.lead:
        request.lead = False
        request.done.clear()
        _lead()
        request.done.wait()
    if request.error is not None:
        raise request.error
    if request.result is None:
        raise RuntimeError("the group this request was in stopped before storing it")
    return request.result


def _lead() -> None:
    """Store the waiting requests (this thread's among them) as one group; as soon as it is committed, answer them
    and hand the lead to the oldest request that arrived meanwhile (or give it up): neither the answers nor the
    next group wait for this one's wake-ups, which this thread publishes after that."""
    with _lock:
        group = _waiting[: settings.HUB_INGEST_GROUP_MAX]
        del _waiting[: len(group)]
    handed = []
    _writer_lock(True)

    def hand_off() -> None:
        global _leading
        if handed:
            return
        handed.append(True)
        _writer_lock(False)
        for request in group:
            request.done.set()
        with _lock:
            following = _waiting[0] if _waiting else None
            if following is None:
                _leading = False
            else:
                following.lead = True
        if following is not None:
            following.done.set()

    try:
        grouped_ingest(group, committed=hand_off)
    finally:
        hand_off()
        for request in group:
            request.done.set()


_lock_file: int | None = None


def _writer_lock(take: bool) -> None:
    """On SQLite, take (or release) an exclusive lock on a file beside the database, held by one leader of all
    the web processes at a time. SQLite lets one writer in and has the others poll for its lock, sleeping up to
    100 ms between tries: a leader waiting here wakes as soon as the other releases it instead."""
    global _lock_file
    if connection.vendor != "sqlite" or fcntl is None:
        return
    if _lock_file is None:
        _lock_file = os.open(f"{settings.DATABASES['default']['NAME']}.ingest-lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(_lock_file, fcntl.LOCK_EX if take else fcntl.LOCK_UN)


def grouped_ingest(group: list[_Request], committed: Callable[[], None] = lambda: None) -> None:
    """Store the group's requests in one transaction, setting each one's result or error (never raises).
    `committed` is called right after the commit, before the transaction's other on-commit hooks (the wake-ups).
    A wake-up that fails after the commit (the broker down) fails no request: they are stored, and the sweep
    (HUB_SWEEP_SECONDS) wakes every connection with due work."""
    done = []

    def on_commit() -> None:
        done.append(True)
        committed()

    try:
        with transaction.atomic():
            transaction.on_commit(on_commit)  # first: runs before the wake-ups
            _store(group)
    except Exception as exc:
        if done:
            logger.warning("a hook after an ingest group's commit failed (%s): the sweep wakes", type(exc).__name__)
            return
        if len(group) == 1:
            group[0].result, group[0].error = None, exc
            return
        # The transaction failed (at the commit: a constraint checked there): nothing of it is stored. Each request
        # again, in a transaction of its own, so that only what fails fails.
        for request in group:
            request.result = request.error = None
            try:
                with transaction.atomic():
                    _store([request])
            except Exception as exc:
                request.result, request.error = None, exc


def _store(group: list[_Request]) -> None:
    """Within the open transaction: one events_ingest() per source; for a source whose requests together raise,
    one per request. Each in a savepoint, so what raises takes only itself back and is that request's error."""
    by_source: dict[int | None, list[_Request]] = {}
    for request in group:
        by_source.setdefault(request.source.pk if request.source else None, []).append(request)
    for requests in by_source.values():
        if len(requests) > 1:
            try:
                with transaction.atomic():
                    results = events_ingest(source=requests[0].source, items=[r.item for r in requests])
            except Exception as exc:
                # By type only (an exception's message may quote posted data): then one request at a time.
                logger.warning(
                    "grouped ingest of %d requests failed (%s): one by one", len(requests), type(exc).__name__
                )
            else:
                for request, result in zip(requests, results, strict=True):
                    request.result = result
                continue
        for request in requests:
            try:
                with transaction.atomic():
                    (request.result,) = events_ingest(source=request.source, items=[request.item])
            except Exception as exc:
                request.error = exc
