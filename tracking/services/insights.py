"""Webmarketer event insights: one query sent through the connection's session, its answer cached for a short
time, and every refusal (400, 401, 403, 429, …) turned into words for the page."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from django.conf import settings
from django.core.cache import cache

from ..models import EventType, VendorConnection
from ..vendors.base import ConfigurationError, vendor_message
from ..vendors.webmarketer import INSIGHT_INTERVALS, AnswerError, UnexpectedAnswer, Webmarketer, answer_body
from .webmarketer import _call, _session

EVENT_COUNT = "event-count"
# Intervals whose values repeat every period (seasonality): drawn as bars, the others as lines.
NON_LINEAR = tuple(i for i in INSIGHT_INTERVALS if "Of" in i)


@dataclass
class Insights:
    """An insights answer (rows of {identifier, interval, values}) or why there is none, in words."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    status: int | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return not self.error


def insight_metrics() -> list[tuple[str, str]]:
    """(key, label) of every metric one can ask for: event-count, then each state and statistic storage key of
    the mirrored event types (once each, in the order the types declare them)."""
    metrics = {EVENT_COUNT: "Event count"}
    for event_type in EventType.objects.order_by("reference"):
        for f in event_type.states + event_type.statistics:
            key = f.get("storageKey")
            if key:
                metrics.setdefault(key, f"{f.get('label') or key} ({f.get('entity')})")
    return list(metrics.items())


def refusal_explain(status: int, message: str, retry_after: str = "") -> str:
    """What a Webmarketer refusal of an insights query means, in words (its own message quoted)."""
    said = f" Webmarketer said: “{message}”" if message else ""
    if status == 400:
        return f"Webmarketer refused the query as invalid (400).{said}"
    if status == 401:
        return (
            "Webmarketer did not accept the hub's sign-in (401), even with a fresh token: check the connection's "
            f"service account.{said}"
        )
    if status == 403:
        return (
            "The connection's service account may not read this project's insights (403): check its project id "
            f"and its rights in Webmarketer.{said}"
        )
    if status == 429:
        wait = f" Try again in {retry_after} seconds." if retry_after.isdigit() else " Try again in a minute."
        return f"Webmarketer is limiting how often the hub may ask (429).{wait}{said}"
    if status >= 500:
        return f"Webmarketer failed to answer (HTTP {status}); try again later.{said}"
    return f"Webmarketer answered HTTP {status}.{said}"


def _rows(response: httpx.Response) -> list[dict[str, Any]]:
    body = answer_body(response, "insights")
    if not isinstance(body, list) or not all(
        isinstance(r, dict) and "interval" in r and isinstance(r.get("values"), dict) for r in body
    ):
        raise UnexpectedAnswer("the insights answer is not a list of {identifier, interval, values}")
    return body


def _cache_key(connection: VendorConnection, query: dict[str, Any]) -> str:
    text = json.dumps(query, sort_keys=True, default=str)
    digest = hashlib.sha256(f"{connection.pk}|{connection.updated_at.isoformat()}|{text}".encode()).hexdigest()
    return f"insights:{digest}"


def insights_query(
    *,
    connection: VendorConnection,
    since: datetime,
    until: datetime,
    metrics: list[str],
    group_by: str = "project",
    interval: str = "day",
    event_types: list[str] | None = None,
) -> Insights:
    """Ask Webmarketer for insights (cached for HUB_INSIGHTS_CACHE_SECONDS per connection and query). Never
    raises for what Webmarketer or the connection does: the answer carries the problem in words."""
    # Reference: webmarketer-api-1.0.0.txt "Event insights (without attribution)": filter only with event-type.
    wanted = list(event_types or []) if group_by == "event-type" and event_types else None
    query = {"since": since, "until": until, "metrics": metrics, "group_by": group_by, "interval": interval}
    query["filter"] = wanted
    key = _cache_key(connection, query)
    if (rows := cache.get(key)) is not None:
        return Insights(rows=rows, cached=True)
    try:
        session = _session(connection)
        vendor: Webmarketer = session.vendor  # type: ignore[assignment]
        vendor.insights_request(None, **query)  # a query the builder refuses never leaves
    except (ConfigurationError, ValueError, LookupError) as exc:
        return Insights(error=f"The query cannot be sent: {exc}")
    try:
        response = _call(session, lambda token: vendor.insights_request(token, **query))
        if not response.is_success:
            message = vendor_message(response)
            retry_after = response.headers.get("retry-after", "").strip()
            return Insights(
                error=refusal_explain(response.status_code, message, retry_after), status=response.status_code
            )
        rows = _rows(response)
    except UnexpectedAnswer as exc:
        return Insights(error=f"Webmarketer's answer was not as documented: {exc}")
    except AnswerError as exc:
        return Insights(error=str(exc), status=exc.status)
    cache.set(key, rows, settings.HUB_INSIGHTS_CACHE_SECONDS)
    return Insights(rows=rows)


def insights_chart(insights: Insights, *, metrics: list[str], interval: str) -> dict[str, Any]:
    """The answer as one Chart.js chart: a line per (identifier, metric) over the intervals for linear ones,
    bars for non-linear ones (seasonality: the periods are not a timeline)."""
    intervals = sorted({r["interval"] for r in insights.rows}, key=lambda i: str(i).zfill(10))
    index = {i: n for n, i in enumerate(intervals)}
    identifiers = sorted({str(r.get("identifier", "")) for r in insights.rows})
    series: dict[tuple[str, str], list[float]] = {}
    for row in insights.rows:
        for metric in metrics:
            data = series.setdefault((str(row.get("identifier", "")), metric), [0] * len(intervals))
            value = row["values"].get(metric, 0)
            data[index[row["interval"]]] += value if isinstance(value, int | float) else 0
    datasets = [
        {"label": metric if len(identifiers) < 2 else f"{identifier} · {metric}", "data": data}
        for (identifier, metric), data in sorted(series.items())
    ]
    return {
        "type": "bar" if interval in NON_LINEAR else "line",
        "labels": [str(i) for i in intervals],
        "datasets": datasets,
    }
