"""The bench's WSGI application: the product's URLs plus one bench-only view, /bench/bare/, that parses the JSON
body and answers 202 (no database, no broker). bench/table.py serves it with gunicorn and compares the ingest API
against that view on the same server, through the same middleware. Never part of the product's URLs.

gunicorn --pythonpath .,bench ingest_wsgi:application
"""

from __future__ import annotations

import json
import os

import django
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")


@csrf_exempt
def bare(request: HttpRequest) -> JsonResponse:
    """A bare ingest: read the JSON, answer 202."""
    body = json.loads(request.body)
    count = len(body["events"]) if isinstance(body, dict) and isinstance(body.get("events"), list) else 1
    return JsonResponse({"accepted": count}, status=202)


django.setup(set_prefix=False)
urlpatterns = [path("bench/bare/", bare), path("", include("project.urls"))]
settings.ROOT_URLCONF = __name__
application = WSGIHandler()
