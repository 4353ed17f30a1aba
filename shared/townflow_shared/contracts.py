"""Event-contract compatibility: a published event version may gain optional fields, nothing else.

Removing a field, changing its type or making a new field required breaks a subscriber (a county
department reading the topic): such a change needs a new major version on a new topic."""

from __future__ import annotations

from typing import Any

from .events import EVENT_TYPES


def schema_of(event_type: type) -> dict[str, Any]:
    return event_type.model_json_schema(mode="serialization")  # type: ignore[attr-defined, no-any-return]


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _shape(schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """A comparable description of a field's type, with references followed."""
    schema = _resolve(schema, root)
    if "anyOf" in schema:
        return ("anyOf", sorted(map(repr, (_shape(s, root) for s in schema["anyOf"]))))
    kind = schema.get("type")
    if kind == "array":
        return ("array", _shape(schema.get("items", {}), root))
    if kind == "object" and "properties" in schema:
        return ("object", sorted(schema["properties"]))
    if "const" in schema or "enum" in schema:
        return ("enum", sorted(map(str, schema.get("enum", [schema.get("const")]))))
    return (kind, schema.get("format"))


def breaking_changes(old: dict[str, Any], new: dict[str, Any], path: str = "") -> list[str]:
    """What `new` breaks for a reader of `old`, field by field, recursively."""
    return _compare(old, old, new, new, path)


def _compare(old: dict[str, Any], old_root: dict[str, Any], new: dict[str, Any], new_root: dict[str, Any],
             path: str) -> list[str]:
    old, new = _resolve(old, old_root), _resolve(new, new_root)
    problems: list[str] = []
    old_props, new_props = old.get("properties", {}), new.get("properties", {})
    for name, old_field in old_props.items():
        where = f"{path}{name}"
        if name not in new_props:
            problems.append(f"{where}: removed")
            continue
        new_field = new_props[name]
        old_shape, new_shape = _shape(old_field, old_root), _shape(new_field, new_root)
        if old_shape[0] != new_shape[0] or (old_shape[0] not in ("object",) and old_shape != new_shape
                                            and not _widened(old_shape, new_shape)):
            problems.append(f"{where}: type changed from {old_shape} to {new_shape}")
        elif old_shape[0] == "object":
            problems += _compare(old_field, old_root, new_field, new_root, f"{where}.")
        elif old_shape[0] == "array":
            old_items, new_items = _resolve(old_field, old_root).get("items", {}), _resolve(new_field, new_root).get("items", {})
            if "properties" in _resolve(old_items, old_root):
                problems += _compare(old_items, old_root, new_items, new_root, f"{where}[].")
    newly_required = set(new.get("required", [])) - set(old.get("required", []))
    for name in sorted(newly_required):
        problems.append(f"{path}{name}: now required")
    return problems


def _widened(old: Any, new: Any) -> bool:
    """An enum that only gained values still reads every old message."""
    return old[0] == new[0] == "enum" and set(old[1]) <= set(new[1])


def current_schemas() -> dict[str, dict[str, Any]]:
    return {event_type.topic: schema_of(event_type) for event_type in EVENT_TYPES}
