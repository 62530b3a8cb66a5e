"""The ingest API's reference page (Swagger UI over the OpenAPI document): public, like the document.

It runs under the console's Content-Security-Policy unchanged: Swagger UI's standalone bundle needs no inline
script, no eval and no inline <style> (checked in a real browser by tests/test_api_docs_browser.py)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def api_docs(request: HttpRequest) -> HttpResponse:
    return render(request, "api_docs.html")
