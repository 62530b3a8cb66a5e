"""Registry of vendor modules: kind → class."""

from __future__ import annotations

from .acquia import Acquia
from .algonomy import Algonomy
from .base import Vendor
from .tracardi import Tracardi
from .tracify import Tracify
from .webmarketer import Webmarketer

VENDORS: dict[str, type[Vendor]] = {cls.kind: cls for cls in (Webmarketer, Acquia, Algonomy, Tracardi, Tracify)}


def vendor_class(kind: str) -> type[Vendor]:
    try:
        return VENDORS[kind]
    except KeyError:
        raise LookupError(f"no vendor module for kind {kind!r}") from None
