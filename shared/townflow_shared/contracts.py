"""Event-contract compatibility: a published event version may gain optional fields, nothing else.

Removing a field, changing its type or making a new field required breaks a subscriber (a county
department reading the topic): such a change needs a new major version on a new topic.

Adding a value to an enum breaks too (SPEC §11): every consumer validates with a closed `Literal`,
so during a rolling deploy an older consumer dead-letters the new value. Only a field listed in
`TOLERANT_ENUMS`, whose consumer-side type accepts any value (`tolerates_unknown_value`, tested),
may gain values.

Each version's snapshot (docs/contracts) holds every field the version has ever published: it
grows with every compatible change (`grown_snapshot`) and is never rewritten by a breaking one, so
removing a field added in a later minor version fails like removing an original one.

Why not a third-party diff: set-based JSON Schema diffs (e.g. Atlassian's json-schema-diff) compare
the sets of valid documents, and dropping an optional field from an open schema only widens that
set, so they would pass the very removal this must catch; @asyncapi/diff classifies a change by
where it sits in the document (a JSON pointer), not by what a payload schema change does to a
reader, so neither an enum addition nor a field's removal is judged as our readers need. The rules
here are our contract's own (SPEC §3.1, §11), on the pydantic models' schemas.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Collection
from typing import Any, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError

from .events import EVENT_TYPES, TOPICS

# topic → paths of enum fields (as `breaking_changes` names them, e.g. "data.level") that every
# consumer reads with an open type, so a new value is no breaking change. Each entry is checked
# by the contract test with `tolerates_unknown_value`; none is open today.
TOLERANT_ENUMS: dict[str, frozenset[str]] = {}


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


def breaking_changes(old: dict[str, Any], new: dict[str, Any], path: str = "",
                     tolerant: Collection[str] = ()) -> list[str]:
    """What `new` breaks for a reader of `old`, field by field, recursively. An enum that gained
    values is breaking unless its path is in `tolerant` (its consumers accept unknown values)."""
    return _compare(old, old, new, new, path, frozenset(tolerant))


def _compare(old: dict[str, Any], old_root: dict[str, Any], new: dict[str, Any], new_root: dict[str, Any],
             path: str, tolerant: frozenset[str]) -> list[str]:
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
        if _widened(old_shape, new_shape):
            if where not in tolerant:
                added = sorted(set(new_shape[1]) - set(old_shape[1]))
                problems.append(f"{where}: enum gained {added}, which a consumer validating with the "
                                "old closed set dead-letters")
        elif old_shape[0] != new_shape[0] or (old_shape[0] not in ("object",) and old_shape != new_shape):
            problems.append(f"{where}: type changed from {old_shape} to {new_shape}")
        elif old_shape[0] == "object":
            problems += _compare(old_field, old_root, new_field, new_root, f"{where}.", tolerant)
        elif old_shape[0] == "array":
            old_items, new_items = _resolve(old_field, old_root).get("items", {}), _resolve(new_field, new_root).get("items", {})
            if "properties" in _resolve(old_items, old_root):
                problems += _compare(old_items, old_root, new_items, new_root, f"{where}[].", tolerant)
    newly_required = set(new.get("required", [])) - set(old.get("required", []))
    for name in sorted(newly_required):
        problems.append(f"{path}{name}: now required")
    return problems


def _widened(old: Any, new: Any) -> bool:
    """An enum that gained values (and lost none): new readers read old messages, not the reverse."""
    return bool(old[0] == new[0] == "enum" and set(old[1]) < set(new[1]))


def current_schemas() -> dict[str, dict[str, Any]]:
    return {event_type.topic: schema_of(event_type) for event_type in EVENT_TYPES}


def grown_snapshot(snapshot: dict[str, Any] | None, current: dict[str, Any],
                   tolerant: Collection[str] = ()) -> dict[str, Any] | None:
    """The snapshot to write for a version: the current schema when there is none yet or when the
    current one only adds to it (it then holds every field published so far and more); None when
    nothing is to be written — unchanged, or changed incompatibly (the contract test reports it,
    and the snapshot keeps every field that was published)."""
    if snapshot is None:
        return current
    if current == snapshot or breaking_changes(snapshot, current, tolerant=tolerant):
        return None
    return current


def tolerates_unknown_value(model: type[BaseModel], path: str) -> bool:
    """Whether the consumer-side type of the field at `path` ("data.level", "data.findings[].outcome")
    accepts a value no version has published yet, as a tolerant consumer must."""
    annotation: Any = model
    for part in path.split("."):
        name = part.removesuffix("[]")
        annotation = _model_in(annotation).model_fields[name].annotation
        if part.endswith("[]"):
            annotation = get_args(annotation)[0]
    try:
        TypeAdapter(annotation).validate_python("a-value-never-published-before")
    except ValidationError:
        return False
    return True


def _model_in(annotation: Any) -> type[BaseModel]:
    """The model inside `Model`, `Model | None` or `list[Model]`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (types.UnionType, typing.Union, list):
        return next(_model_in(a) for a in get_args(annotation) if a is not type(None))
    raise TypeError(f"{annotation!r} holds no model")


def tolerant_enums_of(topic: str) -> frozenset[str]:
    """The registered tolerant enum paths of a topic, each one checked against its model."""
    paths = TOLERANT_ENUMS.get(topic, frozenset())
    for path in paths:
        if not tolerates_unknown_value(TOPICS[topic], path):
            raise AssertionError(f"{topic} {path} is listed as tolerant but its consumers' type is closed")
    return paths
