"""Refuse strings with lone UTF-16 surrogates, which JSON can spell but UTF-8 cannot encode."""

from __future__ import annotations

from typing import Any


def reject_lone_surrogates(value: Any, where: str = "") -> Any:
    """Return `value` unchanged; ValueError naming the place when a string in it has one."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"{where or 'a string'} contains an unpaired surrogate (\\ud800-\\udfff), "
                "which is not valid Unicode text"
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_lone_surrogates(key, f"{where}.{key}" if where else "a key")
            reject_lone_surrogates(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            reject_lone_surrogates(item, f"{where}[{index}]")
    return value
