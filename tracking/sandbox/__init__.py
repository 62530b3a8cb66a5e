"""The vendor sandbox: a real local HTTP server speaking the vendors' APIs, for demos, tests and benchmarks.

It keeps what it received (in memory; service accounts also in a state file when given), answers like the
vendors do, and injects faults on demand (POST /__sandbox__/faults). One module per vendor, mirroring
tracking/vendors/. It does not use Django's ORM.
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
