"""Logging an unexpected exception without its message: messages may quote event data (personal data)."""

from __future__ import annotations

import traceback


def where(exc: BaseException) -> str:
    """Where an exception was raised (file:line in function), without its message."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else "?"
