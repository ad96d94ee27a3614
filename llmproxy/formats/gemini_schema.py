"""JSON Schema <-> Gemini's OpenAPI-subset ``Schema``.

Gemini's ``parameters`` field rejects most JSON Schema keywords with "Unknown name ...
Cannot find field" (litellm#14330, #6459), so :func:`clean` keeps only the fields the
``Schema`` message has, inlines ``$ref``, turns ``anyOf[..., null]`` into ``nullable``,
keeps ``enum`` on strings only and fills in what Gemini requires (array ``items``, object
``type``). :func:`to_json_schema` goes the other way for schemas a Gemini client sent.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_COPY = ("description", "minItems", "maxItems", "minimum", "maximum", "minLength", "maxLength", "pattern",
         "minProperties", "maxProperties")  # fmt: skip
_FORMATS = {"STRING": {"enum", "date-time"}, "INTEGER": {"int32", "int64"}, "NUMBER": {"float", "double"}}
_TYPES = {"string", "number", "integer", "boolean", "array", "object"}
# A recursive $ref is cut here: Gemini schemas cannot be recursive.
_MAX_DEPTH = 32


def clean(schema: Any) -> Schema:
    """A JSON Schema made acceptable to Gemini's ``parameters`` / ``responseSchema``."""
    if not isinstance(schema, dict):
        return {"type": "OBJECT"}
    defs: Schema = {}
    for key in ("definitions", "$defs"):
        if isinstance(schema.get(key), dict):
            defs.update(schema[key])
    return _clean(schema, defs, (), 0)


def _is_null(node: Any) -> bool:
    return isinstance(node, dict) and node.get("type") == "null" and len(node) == 1


def _resolve(node: Schema, defs: Schema, stack: tuple[str, ...]) -> tuple[Schema, tuple[str, ...]] | None:
    """Inline a ``$ref``; None when it is recursive or dangling."""
    name = str(node["$ref"]).rsplit("/", 1)[-1]
    if name in stack or not isinstance(defs.get(name), dict):
        return None
    siblings = {k: v for k, v in node.items() if k != "$ref"}
    return {**defs[name], **siblings}, (*stack, name)


def _merge_all_of(node: Schema) -> Schema:
    merged = {k: v for k, v in node.items() if k != "allOf"}
    for sub in node.get("allOf") or []:
        if not isinstance(sub, dict):
            continue
        for k, v in sub.items():
            if k == "properties" and isinstance(v, dict):
                merged["properties"] = {**merged.get("properties", {}), **v}
            elif k == "required" and isinstance(v, list):
                merged["required"] = [*merged.get("required", []), *v]
            else:
                merged.setdefault(k, v)
    return merged


def _clean(node: Any, defs: Schema, stack: tuple[str, ...], depth: int) -> Schema:
    if not isinstance(node, dict) or depth > _MAX_DEPTH:
        return {}
    if "$ref" in node:
        resolved = _resolve(node, defs, stack)
        if resolved is None:
            return {"type": "OBJECT"}
        node, stack = resolved
    if "allOf" in node:
        node = _merge_all_of(node)
    nullable = node.get("nullable") is True
    variants = node.get("anyOf", node.get("oneOf"))
    out: Schema = {}
    if isinstance(variants, list):
        real = [v for v in variants if not _is_null(v)]
        nullable = nullable or len(real) < len(variants)
        if len(real) == 1:
            out = _clean(real[0], defs, stack, depth + 1)
            out.pop("nullable", None)
        elif real:
            out["anyOf"] = [_clean(v, defs, stack, depth + 1) for v in real]
    kind, type_nullable, alternatives = _type_of(node.get("type"))
    nullable = nullable or type_nullable
    if alternatives:
        out["anyOf"] = [{"type": t} for t in alternatives]
    if "const" in node and "enum" not in node:
        node = {**node, "enum": [node["const"]]}
    kind = _enum(node, out, kind) or kind
    if kind is None:
        kind = "OBJECT" if isinstance(node.get("properties"), dict) else "ARRAY" if "items" in node else None
    if kind is None:
        kind = out.pop("type", None)
    if kind is not None:
        out["type"] = kind
    _structure(node, out, kind, defs, stack, depth)
    for key in _COPY:
        if key in node:
            out[key] = node[key]
    fmt = node.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS.get(kind or "", ()):
        out["format"] = fmt
    if nullable:
        out["nullable"] = True
    return out


def _type_of(value: Any) -> tuple[str | None, bool, list[str]]:
    """(Gemini type, nullable, alternatives when several non-null types were listed)."""
    if isinstance(value, str):
        low = value.lower()
        if low == "null":
            return None, True, []
        return (low.upper() if low in _TYPES else None), False, []
    if isinstance(value, list):
        names = [str(v).lower() for v in value]
        real = [n.upper() for n in names if n in _TYPES]
        nullable = "null" in names
        if len(real) == 1:
            return real[0], nullable, []
        return None, nullable, real
    return None, False, []


def _enum(node: Schema, out: Schema, kind: str | None) -> str | None:
    values = node.get("enum")
    if not isinstance(values, list):
        return None
    present = [v for v in values if v is not None]
    if None in values:
        out["nullable"] = True
    if present and all(isinstance(v, str) for v in present) and kind in (None, "STRING"):
        out["enum"] = present
        return "STRING"
    return None


def _structure(node: Schema, out: Schema, kind: str | None, defs: Schema, stack: tuple[str, ...], depth: int) -> None:
    props = node.get("properties")
    if isinstance(props, dict) and props:
        out["properties"] = {str(k): _clean(v, defs, stack, depth + 1) for k, v in props.items()}
        required = [r for r in node.get("required") or [] if r in out["properties"]]
        if required:
            out["required"] = list(dict.fromkeys(required))
        ordering = node.get("propertyOrdering")
        if isinstance(ordering, list):
            out["propertyOrdering"] = [p for p in ordering if p in out["properties"]]
    if kind == "ARRAY" and ("items" in node or "items" not in out):
        items = node.get("items")
        if isinstance(items, list):
            items = items[0] if items else None
        cleaned = _clean(items, defs, stack, depth + 1) if isinstance(items, dict) else {}
        out["items"] = cleaned if cleaned else {"type": "STRING"}


def to_json_schema(schema: Any) -> Schema:
    """A Gemini ``Schema`` (upper-case types, ``nullable``) as plain JSON Schema."""
    if not isinstance(schema, dict):
        return {}
    out: Schema = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            low = value.lower()
            if low in _TYPES:
                out["type"] = low
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {k: to_json_schema(v) for k, v in value.items()}
        elif key == "items":
            out["items"] = to_json_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out["anyOf"] = [to_json_schema(v) for v in value]
        elif key not in ("nullable", "propertyOrdering"):
            out[key] = value
    if schema.get("nullable") is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif "anyOf" in out:
            out["anyOf"].append({"type": "null"})
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out
