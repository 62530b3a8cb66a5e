"""Shared set-up of the vendor module tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from tracking.vendors import base


@pytest.fixture
def utc_now_set(monkeypatch) -> Callable[[datetime], None]:
    """Sets the time the vendor modules read (base.utc_now) for the rest of the test: utc_now_set(when)."""

    def utc_now_set(when: datetime) -> None:
        monkeypatch.setattr(base, "utc_now", lambda: when)

    return utc_now_set
