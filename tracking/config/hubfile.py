"""The hub's configuration as one YAML file: export it, read it back with each node's line, plan and apply it.

`hub_export()` writes event types, connections (secret names only), sources (never tokens), routes and role
groups in a stable order. `hub_file_read()` checks the file's shape (unknown keys, wrong types, inline secrets)
and keeps the line of every node. `hub_apply()` saves each item through tracking/config/saves.py (the console's
forms and services, audited) inside one transaction: an item whose record reads the same afterwards is rolled
back to its savepoint (no audit entry, nothing touched), so applying a file twice changes nothing. The changes
are read from the records before and after, field by field; any refusal, or a dry run, rolls everything back."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from django.db import transaction

from ..connection_forms import SPECS as CONNECTION_SPECS
from ..models import EventType, Route, Source, VendorConnection
from ..services.audit import audit_record
from ..services.connections import connection_update
from ..services.event_types import FIELD_KEYS, event_type_archive_set
from ..services.routes import route_update
from ..services.sources import source_update
from .saves import (
    Refused,
    connection_defaults,
    connection_save,
    event_type_item_save,
    role_save,
    route_save,
    source_item_save,
)
from .schema import SECTIONS, VERSION, Section

Where = tuple[Any, ...]

HEADER = """\
# Event hub configuration: `manage.py hub apply FILE` plans and applies it (`--dry-run`: the plan only).
# Secrets are never written here: each names where apply reads it (secret_from: env:NAME or file:PATH).
# A section left out is left alone; an item left out of a section is archived (types archived, connections,
# sources and routes disabled). Role groups are never archived.
"""


# -- reading a file -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    line: int  # 1-based; 0 when unknown
    where: str
    message: str

    def render(self, filename: str) -> str:
        place = f"{filename}:{self.line}" if self.line else filename
        return f"{place}: {self.where}: {self.message}" if self.where else f"{place}: {self.message}"


class HubFileRefused(Exception):
    """The file cannot be applied: every problem with its line; nothing was applied."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = sorted(problems, key=lambda p: (p.line, p.where))

    def render(self, filename: str) -> str:
        return "\n".join(p.render(filename) for p in self.problems)


@dataclass
class Secret:
    source: str  # env:NAME or file:PATH, as written
    value: str | None  # None: not available (variable not set, file missing)


@dataclass
class HubFile:
    """A checked file: per section present, its items (plain values) with their index; each node's line."""

    sections: dict[str, list[dict[str, Any]]]
    lines: dict[Where, int]
    secrets: dict[tuple[str, str], Secret] = field(default_factory=dict)  # (connection, key) → secret

    def line(self, where: Where) -> int:
        """The line of a node, else of the nearest node holding it (a key the file left out: its item's line)."""
        return _line(self.lines, where)


def _lines(node: yaml.Node, where: Where, out: dict[Where, int], problems: list[Problem]) -> None:
    out.setdefault(where, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key in seen:
                problems.append(Problem(key_node.start_mark.line + 1, _where(where), f"{key!r} is given twice."))
            seen.add(key)
            out[(*where, key)] = key_node.start_mark.line + 1
            _lines(value_node, (*where, key), out, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*where, index), out, problems)


def _where(where: Where) -> str:
    text = ""
    for part in where:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


TYPE_NAMES = {str: "text", bool: "true or false", int: "a whole number", float: "a number", list: "a list",
              dict: "a mapping (key: value)", type(None): "null"}  # fmt: skip


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types  # YAML's true is no number
    return isinstance(value, types)


def _type_name(value: Any) -> str:
    return TYPE_NAMES.get(type(value), type(value).__name__)


def _expected(types: tuple[type, ...]) -> str:
    names = [TYPE_NAMES[t] for t in types if not (t is float and int in types)]
    return " or ".join(dict.fromkeys(names))


def hub_file_read(text: str, *, base_dir: Path | None = None, environ: Mapping[str, str] | None = None) -> HubFile:
    """The file checked for shape (HubFileRefused with every problem and its line), secrets read from the
    environment or files (never from the file itself; relative paths start at `base_dir`)."""
    environ = os.environ if environ is None else environ
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        reason = getattr(exc, "problem", None) or str(exc)
        raise HubFileRefused([Problem(mark.line + 1 if mark else 0, "", f"not valid YAML: {reason}")]) from None
    lines: dict[Where, int] = {}
    problems: list[Problem] = []
    if node is not None:
        _lines(node, (), lines, problems)

    def refuse(where: Where, message: str) -> None:
        problems.append(Problem(_line(lines, where), _where(where), message))

    if not isinstance(data, dict):
        raise HubFileRefused([Problem(1, "", "the file must be a mapping of sections (event_types:, connections: …)")])
    known = {s.name: s for s in SECTIONS}
    for key in data:
        if key != "version" and key not in known:
            refuse((key,), f"unknown section (sections: version, {', '.join(known)}).")
    if "version" in data and data["version"] != VERSION:
        refuse(("version",), f"this hub reads version {VERSION} files.")
    hub_file = HubFile(sections={}, lines=lines)
    for section in SECTIONS:
        if section.name not in data:
            continue
        items = data[section.name] if data[section.name] is not None else []
        if not isinstance(items, list):
            refuse((section.name,), f"give a list of {section.singular}s (- {section.keys[0]}: …).")
            continue
        checked = []
        seen: dict[tuple, int] = {}
        for index, item in enumerate(items):
            where = (section.name, index)
            item_ok = _item_check(section, item, where, refuse)
            if not item_ok:
                continue
            ident = tuple(item[k] for k in section.keys)
            if ident in seen:
                refuse(
                    where, f"{' → '.join(ident)} is already given at line {_line(lines, (section.name, seen[ident]))}."
                )
                continue
            seen[ident] = index
            if section.name == "connections":
                for key, spec in (item.get("secrets") or {}).items():
                    hub_file.secrets[(item["name"], key)] = _secret_read(spec["secret_from"], base_dir, environ)
            checked.append({**item, "_index": index})
        hub_file.sections[section.name] = checked
    if problems:
        raise HubFileRefused(problems)
    return hub_file


def _line(lines: dict[Where, int], where: Where) -> int:
    while where:
        if where in lines:
            return lines[where]
        where = where[:-1]
    return lines.get((), 0)


def _item_check(section: Section, item: Any, where: Where, refuse) -> bool:
    if not isinstance(item, dict):
        refuse(where, f"a {section.singular} is a mapping ({section.keys[0]}: …).")
        return False
    ok = True
    allowed = {*section.keys, *(a.key for a in section.attrs)}
    for key in item:
        if key not in allowed:
            refuse(
                (*where, key),
                f"unknown key {key!r} for a {section.singular} (keys: {', '.join(_keys_of(section))}).",
            )
            ok = False
    for key in section.keys:
        if not isinstance(item.get(key), str) or not item[key].strip():
            refuse((*where, key) if key in item else where, f"a {section.singular} needs its {key} (text).")
            ok = False
    for attr in section.attrs:
        if attr.key in item and not _type_ok(item[attr.key], attr.types):
            refuse((*where, attr.key), f"give {_expected(attr.types)} (got {_type_name(item[attr.key])}).")
            ok = False
    if section.name == "connections":
        ok = _connection_check(item, where, refuse) and ok
    if ok and section.name == "roles":
        for index, perm in enumerate(item.get("permissions") or []):
            if not isinstance(perm, str):
                refuse((*where, "permissions", index), f"a permission is text (got {_type_name(perm)}).")
                ok = False
    return ok


def _keys_of(section: Section) -> list[str]:
    return [*section.keys, *(a.key for a in section.attrs)]


def _connection_check(item: dict, where: Where, refuse) -> bool:
    ok = True
    settings, secrets = item.get("settings"), item.get("secrets")
    for key, value in (settings if isinstance(settings, dict) else {}).items():
        if not isinstance(value, str | int | float | bool) or value is None:
            refuse((*where, "settings", key), f"a setting is text or a number (got {_type_name(value)}).")
            ok = False
    for key, spec in (secrets if isinstance(secrets, dict) else {}).items():
        source = spec.get("secret_from") if isinstance(spec, dict) else None
        if not isinstance(spec, dict) or set(spec) != {"secret_from"} or not isinstance(source, str):
            refuse(
                (*where, "secrets", key),
                "a secret is never written in the file: give where to read it, {secret_from: env:NAME} or "
                "{secret_from: file:PATH}.",
            )
            ok = False
        elif not (source.startswith("env:") and source[4:]) and not (source.startswith("file:") and source[5:]):
            refuse((*where, "secrets", key, "secret_from"), f"{source!r}: write env:NAME or file:PATH.")
            ok = False
    return ok


def _secret_read(source: str, base_dir: Path | None, environ: Mapping[str, str]) -> Secret:
    if source.startswith("env:"):
        return Secret(source, environ.get(source[4:]) or None)
    path = Path(source[5:]).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        return Secret(source, path.read_text())
    except OSError:
        return Secret(source, None)


# -- export -------------------------------------------------------------------------------------------------
def stable(value: Any) -> Any:
    """Mappings sorted by key at every depth (PostgreSQL's jsonb and SQLite keep keys in different orders)."""
    if isinstance(value, dict):
        keys = sorted(value, key=str)
        if "storageKey" in value:  # an event type's field reads best in the editor's order
            keys = [k for k in FIELD_KEYS if k in value] + [k for k in keys if k not in FIELD_KEYS]
        return {str(k): stable(value[k]) for k in keys}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def _read(section: Section, record: Any) -> dict[str, Any]:
    return {key: stable(value) for key, value in section.read(record).items()}


def hub_export() -> str:
    """The whole configuration as YAML: stable order (sections, then items by key, then mapping keys)."""
    document: dict[str, Any] = {"version": VERSION}
    for section in SECTIONS:
        document[section.name] = [_read(section, record) for record in section.records()]
    body = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, default_flow_style=False, width=110)
    return HEADER + body


# -- plan and apply ---------------------------------------------------------------------------------------
@dataclass
class Change:
    action: str  # create | change | archive
    what: str  # e.g. "connection acquia-eu"
    fields: list[str]


@dataclass
class Outcome:
    changes: list[Change] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # sources created: their token, shown once
    applied: bool = False

    def counts(self) -> dict[str, int]:
        return {a: sum(c.action == a for c in self.changes) for a in ("create", "change", "archive")}


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 100 else text[:99] + "…"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _snapshot(section: Section, record: Any) -> dict[str, Any]:
    values = _read(section, record)
    if isinstance(record, VendorConnection):
        # Compared, never shown: a digest per secret tells a changed value from the same one.
        values["_secrets"] = {k: _digest(v) for k, v in record.secrets.items()}
    return values


def _fields_by_key(value: list) -> dict[str, Any] | None:
    if all(isinstance(f, dict) and isinstance(f.get("storageKey"), str) for f in value):
        keys = [f["storageKey"] for f in value]
        if len(set(keys)) == len(keys):
            return {k: f for k, f in zip(keys, value, strict=True)}
    return None


def _diff(name: str, before: Any, after: Any, out: list[str]) -> None:
    if before == after:
        return
    if isinstance(before, dict) and isinstance(after, dict):
        for key in sorted({*before, *after}, key=str):
            if key not in before:
                out.append(f"{name}.{key}: (none) → {_show(after[key])}")
            elif key not in after:
                out.append(f"{name}.{key}: {_show(before[key])} → (none)")
            else:
                _diff(f"{name}.{key}", before[key], after[key], out)
        return
    if isinstance(before, list) and isinstance(after, list):
        old, new = _fields_by_key(before), _fields_by_key(after)
        if old is not None and new is not None:
            _diff(name, old, new, out)
            if list(old) != list(new) and set(old) == set(new):
                out.append(f"{name}: order {_show(list(old))} → {_show(list(new))}")
            return
        if all(isinstance(v, str) for v in [*before, *after]):
            out += [f"{name}: + {v}" for v in after if v not in before]
            out += [f"{name}: - {v}" for v in before if v not in after]
            if set(before) == set(after):
                out.append(f"{name}: order {_show(before)} → {_show(after)}")
            return
    out.append(f"{name}: {_show(before)} → {_show(after)}")


def _change_lines(before: dict[str, Any] | None, after: dict[str, Any], secrets: dict[str, Secret]) -> list[str]:
    out: list[str] = []
    old_secrets = (before or {}).get("_secrets", {})
    for key, value in after.items():
        if key in ("_secrets", "secrets"):
            continue
        if before is None:
            if isinstance(value, dict) and value:
                out += [f"{key}.{k}: {_show(v)}" for k, v in value.items()]
            elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
                keys = [str(v.get("storageKey", i)) for i, v in enumerate(value)]
                out.append(f"{key}: {len(value)} ({', '.join(keys)})")
            else:
                out.append(f"{key}: {_show(value)}")
        else:
            _diff(key, before.get(key), value, out)
    for key, digest in sorted(after.get("_secrets", {}).items()):
        source = secrets.get(key)
        origin = f" (from {source.source})" if source else ""
        if key not in old_secrets:
            out.append(f"secrets.{key}: set{origin}")
        elif old_secrets[key] != digest:
            out.append(f"secrets.{key}: changed{origin}")
    for key, source in sorted(secrets.items()):
        if source.value is None and key in old_secrets:
            out.append(f"secrets.{key}: kept as stored ({source.source} is not available)")
    return out


def _values(section: Section, item: dict[str, Any]) -> dict[str, Any]:
    """The item's attributes, each one the file leaves out at its default (the file says the whole record)."""
    return {a.key: item.get(a.key, _copy(a.default)) for a in section.attrs if a.stored}


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value)) if isinstance(value, dict | list) else value


def _save(section: Section, item: dict[str, Any], record: Any, hub_file: HubFile, user, outcome: Outcome) -> Any:
    values = _values(section, item)
    if section.name == "event_types":
        return event_type_item_save(reference=item["reference"], values=values, event_type=record, user=user)
    if section.name == "connections":
        kind = values.pop("kind")
        if kind not in CONNECTION_SPECS:
            listed = ", ".join(CONNECTION_SPECS)
            raise Refused.one(f"give the connection's kind, one of {listed}" + (f" (not {kind!r})." if kind else "."),
                              ("kind",))  # fmt: skip
        if record is not None and record.kind != kind:
            raise Refused.one(f"a connection's kind cannot change ({record.kind} → {kind}): give it another name.",
                              ("kind",))  # fmt: skip
        values.pop("secrets")
        for url in ("base_url", "auth_url"):
            if url not in item:  # left out: the vendor's default, as the console's form offers it
                values[url] = connection_defaults(kind)[url]
        secrets = {
            key: source.value
            for (name, key), source in hub_file.secrets.items()
            if name == item["name"] and source.value is not None
        }
        return connection_save(
            kind=kind, values={"name": item["name"], **values}, secrets=secrets, connection=record, user=user
        )
    if section.name == "sources":
        source, token = source_item_save(name=item["name"], values=values, source=record, user=user)
        if token:
            outcome.tokens[source.name] = token
        return source
    if section.name == "routes":
        event_type = EventType.objects.filter(reference=item["event_type"]).first()
        connection = VendorConnection.objects.filter(name=item["connection"]).first()
        missing = {}
        if event_type is None:
            missing[("event_type",)] = [f"no event type {item['event_type']!r} in this file or this hub."]
        if connection is None:
            missing[("connection",)] = [f"no connection {item['connection']!r} in this file or this hub."]
        if missing:
            raise Refused(missing)
        return route_save(
            event_type=event_type,
            connection=connection,
            values=values,
            route=record,
            keep_undeclared_sources=bool(item.get("keep_undeclared_sources")),
            user=user,
        )
    if section.name == "roles":
        return role_save(name=item["name"], permissions=values["permissions"], group=record, user=user)
    raise LookupError(section.name)


def _archive(section: Section, record: Any, user) -> bool:
    """Archive a record the file leaves out; False when it is archived already (or never archived)."""
    if isinstance(record, EventType):
        return event_type_archive_set(event_type=record, archived=True, user=user)
    if isinstance(record, VendorConnection | Route | Source):
        if not record.enabled:
            return False
        update = {VendorConnection: connection_update, Route: route_update, Source: source_update}[type(record)]
        name = {VendorConnection: "connection", Route: "route", Source: "source"}[type(record)]
        update(**{name: record}, enabled=False, user=user)
        return True
    return False


def _reload(record: Any) -> Any:
    return type(record).objects.get(pk=record.pk)


def _problems(section: Section, item: dict[str, Any], exc: Refused, hub_file: HubFile) -> list[Problem]:
    where = (section.name, item["_index"])
    label = f"{section.name}[{' → '.join(item[k] for k in section.keys)}]"
    out = []
    for path, messages in exc.problems.items():
        message = " ".join(messages) if path else ""
        if section.name == "connections" and path[:1] == ("secrets",) and len(path) == 2:
            source = hub_file.secrets.get((item["name"], path[1]))
            if source is not None and source.value is None:
                fix = "set the variable" if source.source.startswith("env:") else "create the file"
                message += f" ({source.source} is not available: {fix}.)"
        line = hub_file.line((*where, *path))
        # The item's own problems (the vendor's checks) one per line; a field's messages together.
        for text in [message] if path else messages:
            out.append(Problem(line, label + "".join(f".{p}" for p in path), text))
    return out


def hub_apply(
    hub_file: HubFile, *, dry_run: bool = False, create_only: bool = False, user=None, name: str = ""
) -> Outcome:
    """Plan and apply a checked file in one transaction (see the module's docstring). `create_only`: create what
    the hub lacks, leave every existing record as it is and archive nothing (the demo's seed). Raises
    HubFileRefused (nothing applied) when any item is refused."""
    outcome = Outcome()
    problems: list[Problem] = []
    with transaction.atomic():
        for section in SECTIONS:
            if section.name not in hub_file.sections:
                continue
            current = {section.ident(r): r for r in section.records()}
            wanted = set()
            for item in hub_file.sections[section.name]:
                ident = tuple(item[k] for k in section.keys)
                wanted.add(ident)
                record = current.get(ident)
                if record is not None and create_only:
                    continue
                before = _snapshot(section, record) if record is not None else None
                savepoint = transaction.savepoint()
                try:
                    saved = _save(section, item, record, hub_file, user, outcome)
                except Refused as exc:
                    transaction.savepoint_rollback(savepoint)
                    problems += _problems(section, item, exc, hub_file)
                    continue
                after = _snapshot(section, _reload(saved))
                if after == before:
                    transaction.savepoint_rollback(savepoint)  # nothing changed: no audit entry, nothing touched
                    continue
                transaction.savepoint_commit(savepoint)
                secrets = {k: s for (n, k), s in hub_file.secrets.items() if n == item.get("name")}
                if section.name != "connections":
                    secrets = {}
                outcome.changes.append(
                    Change(
                        "create" if record is None else "change",
                        f"{section.singular} {' → '.join(ident)}",
                        _change_lines(before, after, secrets),
                    )
                )
            if create_only or not section.archive:
                continue
            for ident, record in current.items():
                if ident in wanted:
                    continue
                before = _snapshot(section, record)
                if _archive(section, record, user):
                    after = _snapshot(section, _reload(record))
                    outcome.changes.append(
                        Change("archive", f"{section.singular} {' → '.join(ident)}", _change_lines(before, after, {}))
                    )
        if problems:
            transaction.set_rollback(True)
            raise HubFileRefused(problems)
        if outcome.changes:
            audit_record(user=user, action="hub.apply", target=name or "configuration file", details=outcome.counts())
        if dry_run:
            transaction.set_rollback(True)
            outcome.tokens = {}
        else:
            outcome.applied = True
    return outcome


def plan_render(outcome: Outcome) -> str:
    """The plan in words: one block per record, a line per field; secrets by name only."""
    marks = {"create": "+", "change": "~", "archive": "-"}
    lines = []
    for change in outcome.changes:
        lines.append(f"{marks[change.action]} {change.action} {change.what}")
        lines += [f"    {line}" for line in change.fields]
    counts = outcome.counts()
    if not outcome.changes:
        lines.append("No changes: the hub already matches the file.")
    else:
        lines.append(
            f"Plan: {counts['create']} to create, {counts['change']} to change, {counts['archive']} to archive."
        )
    return "\n".join(lines)


__all__ = ["HubFileRefused", "hub_apply", "hub_export", "hub_file_read", "plan_render"]
