"""Debounced wake-ups: one broker message per connection and interval, never a delivery left without a run."""

from __future__ import annotations

import itertools
import random
from types import SimpleNamespace

import pytest

from tests.factories import event_type_make, route_make, source_make, webmarketer_connection_make
from tracking.services.ingest import events_ingest
from tracking.services.wake import DISPATCH, MARGIN, connections_wake, wake_plan


class Published:
    """Stands in for the dispatch task: records what would reach the broker."""

    def __init__(self) -> None:
        self.now: list[int] = []
        self.later: list[tuple[int, float]] = []

    def delay(self, connection_id: int) -> None:
        self.now.append(connection_id)

    def apply_async(self, args: tuple, countdown: float) -> None:
        self.later.append((args[0], countdown))


@pytest.fixture
def published(monkeypatch, settings):
    settings.HUB_WAKE_DEBOUNCE_SECONDS = 0.5
    settings.CELERY_TASK_ALWAYS_EAGER = False
    record = Published()
    monkeypatch.setattr("tracking.tasks.dispatch_connection.delay", record.delay)
    monkeypatch.setattr("tracking.tasks.dispatch_connection.apply_async", record.apply_async)
    return record


def body(i: int) -> dict:
    return {
        "eventType": "contact-form",
        "nonce": f"w-{i}",
        "data": {"email": f"p{i}@example.com", "first_name": "John", "message": "hi"},
    }


@pytest.mark.django_db
def test_many_ingests_within_the_interval_publish_one_run_now_and_one_at_its_end(
    published, django_capture_on_commit_callbacks, monkeypatch
):
    # The twenty ingests fall within one interval whatever the machine's load: the clock moves 10 ms per ingest.
    clock = itertools.count(1000.0, 0.01)
    monkeypatch.setattr("tracking.services.wake.time", SimpleNamespace(monotonic=lambda: next(clock)))
    event_type = event_type_make()
    first, second = webmarketer_connection_make(name="a"), webmarketer_connection_make(name="b")
    route_make(event_type, first)
    route_make(event_type, second)
    source, _ = source_make()

    for i in range(20):
        with django_capture_on_commit_callbacks(execute=True):
            (result,) = events_ingest(source=source, items=[body(i)])
        assert result.event.status == "ok"

    assert sorted(published.now) == sorted([first.pk, second.pk])
    assert sorted(cid for cid, _ in published.later) == sorted([first.pk, second.pk])
    assert all(0 < countdown <= 0.5 for _, countdown in published.later)


def test_a_wake_goes_out_at_once_after_a_quiet_interval():
    assert wake_plan(kind=DISPATCH, connection_id=1, now=10.0, interval=0.5) == 0.0
    assert wake_plan(kind=DISPATCH, connection_id=1, now=10.6, interval=0.5) == 0.0


def test_a_second_wake_within_the_interval_is_sent_for_the_interval_end_and_later_ones_are_left_out():
    assert wake_plan(kind=DISPATCH, connection_id=1, now=10.0, interval=0.5) == 0.0
    assert wake_plan(kind=DISPATCH, connection_id=1, now=10.1, interval=0.5) == pytest.approx(0.4)
    assert wake_plan(kind=DISPATCH, connection_id=1, now=10.2, interval=0.5) is None
    assert wake_plan(kind=DISPATCH, connection_id=1, now=10.4, interval=0.5) is None
    # Too close to the queued run's start to count on it: another one, at the next interval's end.
    assert wake_plan(kind=DISPATCH, connection_id=1, now=10.5 - MARGIN / 2, interval=0.5) == pytest.approx(
        0.5 + MARGIN / 2
    )


def test_connections_and_kinds_are_debounced_apart():
    assert wake_plan(kind=DISPATCH, connection_id=1, now=10.0, interval=0.5) == 0.0
    assert wake_plan(kind=DISPATCH, connection_id=2, now=10.0, interval=0.5) == 0.0
    assert wake_plan(kind="lead_changes", connection_id=1, now=10.0, interval=0.5) == 0.0


def test_no_debounce_when_the_interval_is_zero():
    assert [wake_plan(kind=DISPATCH, connection_id=1, now=10.0, interval=0) for _ in range(3)] == [0.0] * 3


@pytest.mark.parametrize("seed", range(20))
def test_every_left_out_wake_is_covered_by_a_run_queued_to_start_after_it(seed):
    rng = random.Random(seed)
    now, starts = 100.0, []
    for _ in range(300):
        now += rng.choice([0.0, 0.001, 0.01, 0.05, 0.2, 0.49, 0.5, 0.7, 2.0])
        countdown = wake_plan(kind=DISPATCH, connection_id=seed, now=now, interval=0.5)
        if countdown is None:
            # Left out: some run already queued starts later than now by more than the margin.
            assert any(start - now > MARGIN for start in starts)
        else:
            starts.append(now + countdown)
    assert len(starts) < 300  # and it did leave some out


@pytest.mark.django_db
def test_in_eager_mode_every_wake_runs(monkeypatch, settings, django_capture_on_commit_callbacks):
    settings.HUB_WAKE_DEBOUNCE_SECONDS = 0.5
    settings.CELERY_TASK_ALWAYS_EAGER = True
    record = Published()
    monkeypatch.setattr("tracking.tasks.dispatch_connection.delay", record.delay)
    monkeypatch.setattr("tracking.tasks.dispatch_connection.apply_async", record.apply_async)

    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            connections_wake([7])

    assert (record.now, record.later) == ([7, 7, 7], [])


def test_a_failed_publish_is_not_counted_on(monkeypatch, settings):
    settings.HUB_WAKE_DEBOUNCE_SECONDS = 0.5
    settings.CELERY_TASK_ALWAYS_EAGER = False
    calls = []

    def broken(*args, **kwargs):
        calls.append(args)
        raise ConnectionError("broker down")

    monkeypatch.setattr("tracking.tasks.dispatch_connection.delay", broken)
    monkeypatch.setattr("tracking.tasks.dispatch_connection.apply_async", broken)

    for _ in range(2):
        with pytest.raises(ConnectionError):
            connections_wake([3], committed=True)
        with pytest.raises(ConnectionError):
            connections_wake([3], committed=True)

    assert len(calls) == 4
