"""The console's navigation: the pages the signed-in user may open."""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import reverse

# (label, URL name, permission needed to open it); home opens the first one allowed (Sales: the lead board).
NAV = [
    ("Dashboard", "console:dashboard", "tracking.view_dashboard"),
    ("Events", "console:event-list", "tracking.view_event"),
    ("Leads", "console:lead-list", "tracking.view_leads"),
    ("Routes", "console:route-list", "tracking.view_route"),
    ("Connections", "console:connection-list", "tracking.view_vendorconnection"),
    ("Event types", "console:event-type-list", "tracking.view_eventtype"),
    ("Trash", "console:trash-list", "tracking.view_trashedevent"),
    ("Offline", "console:offline", "tracking.view_offlineinteraction"),
    ("Live", "console:live", "tracking.view_event"),
    ("Sent", "console:audit-sent", "tracking.view_attempt"),
    ("Audit", "console:audit-log", "tracking.view_auditentry"),
    ("Insights", "console:insights", "tracking.view_insights"),
    ("Sources", "console:source-list", "tracking.view_source"),
    ("Privacy", "console:privacy", "tracking.change_consent"),
]


def console_nav(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"console_nav": []}
    path = request.path
    items = []
    for label, name, perm in NAV:
        if user.has_perm(perm):
            url = reverse(name)
            items.append({"label": label, "url": url, "active": path.startswith(url)})
    return {"console_nav": items}
