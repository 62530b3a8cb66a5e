"""Connection values for the sandbox, with credentials from its credential-issuing admin endpoints (as a
vendor's onboarding hands them out). Used by the demo and the tests; a client of the sandbox, no ORM.

Given the credentials a connection already has, it registers those again instead of making new ones, so
the demo seeds the same state however often it runs, even against a sandbox that lost its state file."""

from __future__ import annotations

from typing import Any

import httpx

# The path of each vendor in the sandbox (see the sandbox modules' docstrings).
KINDS = ("acquia", "algonomy", "tracardi", "tracify")


def _issue(client: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    response.raise_for_status()
    return response.json()


def sandbox_connection_values(
    sandbox_url: str,
    kind: str,
    *,
    settings: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
    timeout: float = 10,
) -> dict[str, Any]:
    """base_url, auth_url, settings and secrets of a `kind` connection to the sandbox at `sandbox_url`.

    `settings`/`secrets`: a connection's current values, registered again as they are. Raises httpx.HTTPError
    when the sandbox does not answer."""
    url = sandbox_url.rstrip("/")
    settings, secrets = dict(settings or {}), dict(secrets or {})
    with httpx.Client(base_url=url, timeout=timeout) as client:
        if kind == "acquia":
            user = _issue(
                client,
                "/__sandbox__/acquia/users",
                {"username": secrets.get("username"), "password": secrets.get("password")},
            )
            return {
                "base_url": f"{url}/acquia/",
                "auth_url": f"{url}/acquia/token",
                "settings": {"tenant_id": "999", **settings},
                "secrets": {"username": user["username"], "password": user["password"]},
            }
        if kind == "algonomy":
            client_ = _issue(
                client,
                "/__sandbox__/algonomy/clients",
                {
                    "client_id": secrets.get("client_id"),
                    "client_secret": secrets.get("client_secret"),
                    "tenant_hash": settings.get("tenant_hash"),
                },
            )
            return {
                "base_url": f"{url}/algonomy/",
                "auth_url": f"{url}/algonomy",
                "settings": {
                    "src_id": "WBSTR",
                    "src_type": "Website",
                    **settings,
                    "tenant_hash": client_["tenant_hash"],
                },
                "secrets": {"client_id": client_["client_id"], "client_secret": client_["client_secret"]},
            }
        if kind == "tracardi":
            source = _issue(client, "/__sandbox__/tracardi/sources", {"source_id": settings.get("source_id")})
            return {
                "base_url": f"{url}/tracardi/",
                "auth_url": "",
                "settings": {**settings, "source_id": source["source_id"]},
                "secrets": {},
            }
        if kind == "tracify":
            key = _issue(
                client,
                "/__sandbox__/tracify/api-keys",
                {"api_key": secrets.get("api_key"), "customer_site_id": settings.get("customer_site_id")},
            )
            return {
                "base_url": f"{url}/tracify/",
                "auth_url": "",
                "settings": {**settings, "customer_site_id": key["customer_site_id"]},
                "secrets": {"api_key": key["api_key"]},
            }
    raise LookupError(f"no sandbox credentials for kind {kind!r} (known: {', '.join(KINDS)})")
