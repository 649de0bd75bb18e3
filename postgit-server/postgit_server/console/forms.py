"""The start form: fields built from a workflow's input schema, and the input read back from a submitted form."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from postgit.errors import InvalidInput

RAW_FIELD = "input_json"
"""The one field of a form for a workflow whose input schema names no properties: the input as JSON text."""


@dataclass(frozen=True)
class Field:
    """One input of the start form.

    Attributes:
        name: the form field's name, ``input.<property>``.
        prop: the input property it sets.
        widget: ``text``, ``number``, ``checkbox``, ``select`` or ``json`` (a textarea of JSON text).
        required: whether the schema requires it.
        choices: the values of an ``enum``, for ``select``.
        description: the schema's description or title.
        default: the schema's default, as the field shows it.
    """

    name: str
    prop: str
    widget: str
    required: bool
    choices: tuple[str, ...] = ()
    description: str = ""
    default: str = ""
    integer: bool = False


def input_schema(definition: Any) -> Mapping[str, Any] | None:
    """A stored definition's input schema (``inputSchema`` of a definition with settings), or None."""
    if isinstance(definition, dict) and "root" in definition and "type" not in definition:
        schema = definition.get("inputSchema")
        return schema if isinstance(schema, Mapping) else None
    return None


def form_fields(schema: Mapping[str, Any] | None) -> list[Field]:
    """The fields for an input schema's top-level properties; empty when it has none (one JSON field instead)."""
    if not isinstance(schema, Mapping) or not isinstance(schema.get("properties"), Mapping):
        return []
    required = set(schema.get("required") or [])
    fields = []
    for prop, spec in schema["properties"].items():
        spec = spec if isinstance(spec, Mapping) else {}
        kind = spec.get("type")
        default = spec.get("default")
        shown = "" if default is None else (default if isinstance(default, str) else json.dumps(default))
        description = str(spec.get("description") or spec.get("title") or "")
        if isinstance(spec.get("enum"), list) and all(isinstance(v, str) for v in spec["enum"]):
            field = Field(f"input.{prop}", prop, "select", prop in required, tuple(spec["enum"]), description, shown)
        elif kind == "string":
            field = Field(f"input.{prop}", prop, "text", prop in required, (), description, shown)
        elif kind in ("integer", "number"):
            field = Field(f"input.{prop}", prop, "number", prop in required, (), description, shown, kind == "integer")
        elif kind == "boolean":
            field = Field(f"input.{prop}", prop, "checkbox", prop in required, (), description, "1" if default else "")
        else:
            field = Field(f"input.{prop}", prop, "json", prop in required, (), description, shown)
        fields.append(field)
    return fields


def read_input(fields: list[Field], form: Mapping[str, Any]) -> Any:
    """The input a submitted start form describes; InvalidInput naming the field when a value cannot be read.

    An empty optional field is left out of the input; the workflow's schema then judges what remains.
    """
    if not fields:
        raw = str(form.get(RAW_FIELD) or "").strip()
        return _json(raw, "input") if raw else None
    value: dict[str, Any] = {}
    for field in fields:
        raw = form.get(field.name)
        if field.widget == "checkbox":
            value[field.prop] = raw is not None
            continue
        text = str(raw or "").strip()
        if text == "":
            continue
        if field.widget == "number":
            value[field.prop] = _number(text, field)
        elif field.widget == "json":
            value[field.prop] = _json(text, field.prop)
        else:
            value[field.prop] = text
    return value


def _number(text: str, field: Field) -> int | float:
    kind = "a whole number" if field.integer else "a number"
    try:
        number = int(text) if field.integer else float(text)
    except ValueError:
        raise InvalidInput(f"input field '{field.prop}': {text!r} is not {kind}") from None
    if not math.isfinite(number):
        raise InvalidInput(f"input field '{field.prop}': {text!r} is not {kind}")
    return number


def _json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        where_in_text = f"line {exc.lineno} column {exc.colno}"
        raise InvalidInput(f"input field '{where}': not JSON ({exc.msg} at {where_in_text})") from None
