"""Encryption at rest for vendor secrets (Fernet; several keys allow rotation)."""

from __future__ import annotations

import json
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models


@cache
def _fernet(keys: str) -> MultiFernet:
    return MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])


def encrypt(value: str) -> str:
    return _fernet(settings.FIELD_ENCRYPTION_KEY).encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(settings.FIELD_ENCRYPTION_KEY).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        # Never echo the ciphertext: say what to check instead.
        raise ValueError("cannot decrypt a stored secret: is FIELD_ENCRYPTION_KEY the key it was saved with?") from exc


class EncryptedJSONField(models.TextField):
    """A dict stored as Fernet ciphertext; the database never sees the plaintext."""

    description = "Encrypted JSON object"

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return {}
        return json.loads(decrypt(value))

    def to_python(self, value):
        if isinstance(value, dict):
            return value
        if value in (None, ""):
            return {}
        return json.loads(decrypt(value))

    def get_prep_value(self, value):
        return encrypt(json.dumps(value or {}, sort_keys=True))

    def value_to_string(self, obj):
        # Serialisation (dumpdata) keeps the ciphertext, never the plaintext.
        return self.get_prep_value(self.value_from_object(obj))
