"""SQL for a list's filters beyond its cursor; values travel only as bind parameters."""

from __future__ import annotations

from typing import Any

from kassa.domain.lists import Bounds


def bounds_sql(column: str, bounds: Bounds | None, params: list[Any]) -> str:
    """`` AND column > $n …`` for each bound set (appending the values to ``params``), or
    ""; ``column`` is kassa's, never the caller's."""
    if bounds is None:
        return ""
    sql = ""
    for op, value in bounds.terms():
        params.append(value)
        sql += f" AND {column} {op} ${len(params)}"
    return sql
