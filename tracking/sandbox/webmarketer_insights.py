"""Webmarketer's event insights, as the sandbox answers them from the events it holds (pure: no I/O).

Reference: webmarketer-api-1.0.0.txt "Event insights (without attribution)": since, until, metrics (event-count,
state keys, statistic keys; an unknown key gives 0), groupBy project | event-type (with an optional filter of
event-type references), interval day | week | month | quarter | semester | year (linear) or dayOfWeek |
dayOfMonth | dayOfYear | weekOfYear | monthOfYear | quarterOfYear | semesterOfYear (non-linear, for
seasonality). The answer is a list of {identifier, interval, values}, one per interval (and event type) that
has events, not paginated. The seed shows a day as "2023-08-21"; for the others, the sandbox answers the first
day of the period for linear intervals and the period's number for non-linear ones (Monday = 1).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

LINEAR = ("day", "week", "month", "quarter", "semester", "year")
NON_LINEAR = ("dayOfWeek", "dayOfMonth", "dayOfYear", "weekOfYear", "monthOfYear", "quarterOfYear", "semesterOfYear")
GROUPS = ("project", "event-type")
MAX_METRICS = 20


class InsightsError(ValueError):
    """A query the endpoint refuses with 400; the message says why."""


def _date(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise InsightsError(f"{name} must be a date-time string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InsightsError(f"{name} must be an RFC3339 date-time, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def query_parse(body: Any) -> dict[str, Any]:
    """The query of a request body; InsightsError (a 400) when it is not one."""
    if not isinstance(body, dict):
        raise InsightsError("body must be an object")
    since, until = _date(body.get("since"), "since"), _date(body.get("until"), "until")
    if until < since:
        raise InsightsError("until must be after since")
    metrics = body.get("metrics")
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) and m for m in metrics):
        raise InsightsError("metrics must be a non-empty array of strings")
    if len(metrics) > MAX_METRICS:
        raise InsightsError(f"metrics accepts at most {MAX_METRICS} keys")
    group_by = body.get("groupBy")
    if group_by not in GROUPS:
        raise InsightsError(f"groupBy must be one of: {', '.join(GROUPS)}")
    interval = body.get("interval")
    if interval not in LINEAR + NON_LINEAR:
        raise InsightsError(f"interval must be one of: {', '.join(LINEAR + NON_LINEAR)}")
    wanted = body.get("filter")
    if isinstance(wanted, str):
        wanted = [wanted]
    if wanted is not None and not (isinstance(wanted, list) and all(isinstance(r, str) for r in wanted)):
        raise InsightsError("filter must be an event-type reference or an array of them")
    return {"since": since, "until": until, "metrics": metrics, "group_by": group_by, "interval": interval,
            "filter": wanted}  # fmt: skip


def interval_of(day: date, interval: str) -> str | int:
    """The interval a day falls in."""
    quarter, semester = (day.month - 1) // 3 + 1, (day.month - 1) // 6 + 1
    match interval:
        case "day":
            return day.isoformat()
        case "week":
            return date.fromordinal(day.toordinal() - day.weekday()).isoformat()
        case "month":
            return f"{day:%Y-%m}-01"
        case "quarter":
            return f"{day.year}-{3 * quarter - 2:02d}-01"
        case "semester":
            return f"{day.year}-{6 * semester - 5:02d}-01"
        case "year":
            return f"{day.year}-01-01"
        case "dayOfWeek":
            return day.isoweekday()
        case "dayOfMonth":
            return day.day
        case "dayOfYear":
            return day.timetuple().tm_yday
        case "weekOfYear":
            return day.isocalendar().week
        case "monthOfYear":
            return day.month
        case "quarterOfYear":
            return quarter
        case "semesterOfYear":
            return semester
    raise InsightsError(f"unknown interval {interval!r}")


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def insights_compute(
    project: str, query: dict[str, Any], events: Iterable[dict[str, Any]], lead_values: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Counts and sums per interval (and event type) of the project's events dated in [since, until]: event-count
    counts events, a state key counts events whose state is 1, a statistic key sums its values, others are 0."""
    buckets: dict[tuple[str | int, str], dict[str, float]] = {}
    for event in events:
        if event.get("projectId") != project:
            continue
        try:
            when = _date(event.get("eventDate") or event.get("createdAt"), "eventDate")
        except InsightsError:
            continue
        if not query["since"] <= when <= query["until"]:
            continue
        ref = str(event.get("eventType", ""))
        if query["group_by"] == "event-type" and query["filter"] is not None and ref not in query["filter"]:
            continue
        identifier = ref if query["group_by"] == "event-type" else project
        values = buckets.setdefault(
            (interval_of(when.astimezone(UTC).date(), query["interval"]), identifier),
            dict.fromkeys(query["metrics"], 0.0),
        )
        lead = lead_values.get(event.get("_id", ""), {})
        for metric in query["metrics"]:
            if metric == "event-count":
                values[metric] += 1
            elif metric in lead.get("state", {}):
                values[metric] += 1 if _number(lead["state"][metric].get("value")) == 1 else 0
            elif metric in lead.get("statistic", {}):
                values[metric] += _number(lead["statistic"][metric].get("value"))
    ordered = sorted(buckets.items(), key=lambda kv: (str(kv[0][0]).zfill(10), kv[0][1]))
    return [
        {"identifier": identifier, "interval": interval, "values": {k: _int_if_whole(v) for k, v in values.items()}}
        for (interval, identifier), values in ordered
    ]


def _int_if_whole(value: float) -> int | float:
    return int(value) if value == int(value) else round(value, 2)
