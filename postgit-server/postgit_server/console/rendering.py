"""The console's Jinja2 templates and the filters they use."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape

NAV: list[tuple[str, str]] = [
    ("Instances", "/ui/instances"),
    ("Workflows", "/ui/workflows"),
    ("Workers", "/ui/workers"),
    ("Plugins", "/ui/plugins"),
    ("Outbox", "/ui/outbox"),
    ("Audit", "/ui/audit"),
    ("API docs", "/docs"),
]
"""The console's menu, (label, path) in order: a new page appends its entry."""

JSON_SHOWN = 200_000
"""Characters of a JSON value a page shows at most; past it, the value is cut with a note."""
JSON_TREE_LIMIT = 100_000
"""Characters of JSON past which a value is shown as text only, not as a tree of collapsible parts."""
JSON_ENTRIES = 500
"""Keys or items of one object or array the tree shows; the raw JSON has them all."""


def when(value: datetime | str | None) -> str:
    """A timestamp in UTC to the second (``2026-12-03 05:03:10``); empty for None."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def pretty(value: Any) -> str:
    """A JSON value indented for reading, cut past :data:`JSON_SHOWN` characters."""
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=False)
    if len(text) > JSON_SHOWN:
        return text[:JSON_SHOWN] + f"\n… ({len(text) - JSON_SHOWN} more characters: see the API)"
    return text


def scalar(value: Any) -> str:
    """A JSON scalar as JSON text (strings quoted)."""
    return json.dumps(value, ensure_ascii=False, default=str)


def json_size(value: Any) -> int:
    """The length of a value's JSON text."""
    return len(json.dumps(value, default=str))


def seconds(value: float | None) -> str:
    """A duration in its most readable unit."""
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("postgit_server.console", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, pretty=pretty, seconds=seconds, scalar=scalar, json_size=json_size)
    env.globals.update(json_tree_limit=JSON_TREE_LIMIT, json_entries=JSON_ENTRIES, nav=NAV)
    return env


templates = Jinja2Templates(env=_environment())
