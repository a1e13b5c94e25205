"""Fields of foreign log records: reading nested values, and handing them to ``parse_event``.

Every adapter maps its format onto the native field names and lets ``records.parse_event``
do all validation (lengths, control characters, counts, time bounds), so the rules live in
one place. ``native_event`` adds where a bad value came from to the error detail, so a
reject says ``principal must be a string, got int (from actor.user.uid)`` rather than
naming a field the source format does not have.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reachwatch.models.errors import SchemaError
from reachwatch.models.records import DEFAULT_LIMITS, AccessEvent, Limits, parse_event


def dig(record: Any, *path: str) -> Any:
    """The value at ``path`` in nested objects, or None where any step is missing or not one."""
    value = record
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def text_at(record: Any, *path: str, at: str = "") -> str | None:
    """A string at ``path``; None when absent or blank; ``wrong_type`` when not a string.

    ``at`` names where ``record`` itself sits (``resources[2]``), for the error detail.
    """
    value = dig(record, *path)
    if value is None:
        return None
    if not isinstance(value, str):
        where = ".".join((at, *path) if at else path)
        raise SchemaError("wrong_type", f"{where} must be a string, got {type(value).__name__}")
    value = value.strip()
    return value or None


def first_text(record: Any, *paths: tuple[str, ...], at: str = "") -> tuple[str | None, str | None]:
    """The first non-blank string among ``paths`` and the dotted path it came from."""
    for path in paths:
        value = text_at(record, *path, at=at)
        if value is not None:
            return value, ".".join((at, *path) if at else path)
    return None, None


def require_object(record: Any, what: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise SchemaError(
            "not_object", f"{what} must be a JSON object, got {type(record).__name__}"
        )
    return record


def native_event(
    fields: dict[str, Any], origins: Mapping[str, str | None], limits: Limits = DEFAULT_LIMITS
) -> AccessEvent:
    """``parse_event`` on adapter-built native fields under ``limits``, naming the source
    field on error.

    ``origins`` maps a native field name to the source path it was read from. Fields whose
    value is None are dropped first, so a missing optional source field stays optional.
    """
    native = {name: value for name, value in fields.items() if value is not None}
    try:
        return parse_event(native, limits)
    except SchemaError as exc:
        # parse_event details start with the native field name ("principal is required").
        field = exc.detail.split(" ", 1)[0]
        origin = origins.get(field)
        if origin is None:
            raise
        raise SchemaError(exc.code, f"{exc.detail} (from {origin})") from None
