"""Registry of vendor modules: kind → class."""

from __future__ import annotations

from .base import Vendor
from .webmarketer import Webmarketer

VENDORS: dict[str, type[Vendor]] = {cls.kind: cls for cls in (Webmarketer,)}


def vendor_class(kind: str) -> type[Vendor]:
    try:
        return VENDORS[kind]
    except KeyError:
        raise LookupError(f"no vendor module for kind {kind!r}") from None
