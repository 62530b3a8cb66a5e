"""Sources (the company systems allowed to post events): created with a token shown once, changed and disabled,
each audited. The token itself is made by services.ingest (only its hash is kept)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from ..consent import consent_parse
from ..models import Source
from .audit import audit_record
from .ingest import source_create, source_rotate_token


def source_fields() -> tuple[str, ...]:
    """The fields staff set on a source (the model's editable ones): its name, enabled, and whatever is added
    to the model later (read from the model, so a new field needs no change here)."""
    return tuple(f.name for f in Source._meta.concrete_fields if f.editable and not f.primary_key)


@transaction.atomic
def source_add(*, name: str, user=None, **fields: Any) -> tuple[Source, str]:
    """A new source with its token (shown once), its default consent (none given: deny-all; ConsentError for an
    unknown purpose) and any other fields; model checks first, audited."""
    unknown = set(fields) - set(source_fields())
    if unknown:
        raise TypeError(f"source_add() got unknown fields: {', '.join(sorted(unknown))}")
    default_consent = fields.pop("default_consent", None)
    probe = Source(name=name, **fields)
    probe.full_clean(exclude=["token_hash", "token_prefix", "default_consent"])
    source, token = source_create(name=name, default_consent=default_consent, user=user)  # audited there
    if fields:
        for key, value in fields.items():
            setattr(source, key, value)
        source.save()
    return source, token


@transaction.atomic
def source_update(*, source: Source, user=None, **changes: Any) -> Source:
    """Change a source's fields (model checks first: ValidationError, nothing saved); audited with the names of
    the fields that changed."""
    unknown = set(changes) - set(source_fields())
    if unknown:
        raise TypeError(f"source_update() got unknown fields: {', '.join(sorted(unknown))}")
    if "default_consent" in changes:
        changes["default_consent"] = consent_parse(changes["default_consent"])
    changed = sorted(name for name, value in changes.items() if getattr(source, name) != value)
    for name, value in changes.items():
        setattr(source, name, value)
    source.full_clean()
    source.save()
    if changed:
        audit_record(user=user, action="source.update", target=source, details={"fields": changed})
    return source


@transaction.atomic
def source_rotate(*, source: Source, user=None) -> str:
    """A new token for the source (shown once); the old one stops working at once. Audited."""
    token = source_rotate_token(source=source)
    audit_record(user=user, action="source.rotate", target=source, details={"token_prefix": source.token_prefix})
    return token
