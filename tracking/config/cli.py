"""What the configuration commands share: KEY=VALUE options, and refusals named by the options that gave them."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from .saves import Refused


def pairs(values: list[str], option: str) -> dict[str, str]:
    """KEY=VALUE pairs as written (no @file reading: that is --secret's alone)."""
    result: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"{option} takes KEY=VALUE, got {item!r}")
        if key.strip() in result:
            raise CommandError(f"{option} {key.strip()} is given twice")
        result[key.strip()] = value
    return result


def secret_pairs(values: list[str]) -> dict[str, str]:
    """--secret KEY=VALUE or KEY=@FILE (the file's text, e.g. a service-account JSON or a private key)."""
    result = pairs(values, "--secret")
    for key, value in result.items():
        if value.startswith("@"):
            try:
                result[key] = Path(value[1:]).expanduser().read_text()
            except OSError as exc:
                raise CommandError(f"--secret {key}: cannot read {value[1:]}: {exc.strerror}") from None
    return result


def refusal_text(exc: Refused, options: dict[str, str]) -> str:
    """A Refused's problems named by the command-line options that gave the values."""
    lines = []
    for path, messages in exc.problems.items():
        head = path[0] if path else ""
        if head == "settings" and len(path) > 1:
            where = f"--setting {path[1]}"
        elif head == "secrets" and len(path) > 1:
            where = f"--secret {path[1]}"
        elif head == "mapping" and len(path) > 1:
            where = f"--map {'.'.join(path[1:])}"
        elif head == "options" and len(path) > 1:
            where = f"--option {path[1]}"
        else:
            where = options.get(head) or (f"--{head.replace('_', '-')}" if head else "")
        lines += [f"{where}: {message}" if where else message for message in messages]
    return "\n".join(lines)
