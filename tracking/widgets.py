"""Date inputs that read the way the console speaks: ISO dates and a 24-hour clock, in UTC.

Chromium draws <input type="date"> and "datetime-local" in the browser's locale (11/30/2026, 06:05 PM for
en-US) whatever the page's or the input's lang says, so these are text inputs with a pattern instead."""

from __future__ import annotations

from django import forms

DATE_PATTERN = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
DATETIME_PATTERN = "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2})?"


class IsoDateInput(forms.DateInput):
    input_type = "text"

    def __init__(self, attrs: dict | None = None) -> None:
        base = {"pattern": DATE_PATTERN, "placeholder": "YYYY-MM-DD", "size": 10, "inputmode": "numeric"}
        super().__init__({**base, "title": "A date: YYYY-MM-DD (UTC)", **(attrs or {})}, format="%Y-%m-%d")


class IsoDateTimeInput(forms.DateTimeInput):
    input_type = "text"

    def __init__(self, attrs: dict | None = None) -> None:
        base = {"pattern": DATETIME_PATTERN, "placeholder": "YYYY-MM-DD HH:MM:SS", "size": 19}
        title = "A date and a 24-hour time: YYYY-MM-DD HH:MM[:SS], in UTC"
        super().__init__({**base, "title": title, **(attrs or {})}, format="%Y-%m-%d %H:%M:%S")
