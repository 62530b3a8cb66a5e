"""What every console view shares: the typed HTMX request and the permission gate."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps

from django import forms
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.utils.dateparse import parse_date
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
    user: AbstractBaseUser | AnonymousUser


def permission_required(*perms: str) -> Callable:
    """Log in first (redirect to the login page), then 403 without every permission named."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.has_perms(perms):
                raise PermissionDenied(f"needs {', '.join(perms)}")
            return view(request, *args, **kwargs)

        return login_required(wrapped)

    return decorator


def day_bound(value: str, *, end: bool = False) -> datetime | None:
    """A date filter ("2026-11-25") as a UTC bound: that day's start, or with end=True the next day's start."""
    try:
        day = parse_date(value or "")
    except ValueError:  # well formed but no such day (2026-02-30): no bound, like an empty field
        day = None
    if day is None:
        return None
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start + timedelta(days=1) if end else start


def form_errors_add(form: forms.Form, error: ValidationError) -> None:
    """A service's ValidationError shown on the form: under its field when the form has one, else on top."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for name, messages in error.message_dict.items():
        for message in messages:
            form.add_error(name if name in form.fields else None, message)


def list_template(request: HtmxHttpRequest, *, page: str, rows: str, table: str, table_id: str) -> str:
    """The template of a keyset-paged list: its rows alone for "Load more" (an `after` cursor), its table when the
    filters (aimed at the element `table_id`) change, else the whole page."""
    if request.htmx and request.GET.get("after"):
        return rows
    if request.htmx and request.htmx.target == table_id:
        return table
    return page
