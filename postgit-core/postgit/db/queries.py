"""Named SQL queries, loaded once from ``queries/*.sql``.

Each query in a file starts with ``-- name: <query_name>`` followed by one ``-- `` line saying what it does.
Parameters are always ``%(name)s`` placeholders: nothing is ever assembled from strings.
"""

from __future__ import annotations

import re
from functools import cache
from importlib.resources import files
from typing import LiteralString, cast

_HEADER = re.compile(r"^-- name: ([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse_queries(text: str, source: str) -> dict[str, LiteralString]:
    """Split one ``.sql`` file into name -> SQL; ValueError on a malformed or duplicate name."""
    queries: dict[str, LiteralString] = {}
    headers = list(_HEADER.finditer(text))
    if not headers:
        raise ValueError(f"{source}: no '-- name: ...' header")
    for index, header in enumerate(headers):
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        body = text[header.end() : end].strip()
        lines = body.splitlines()
        if not lines or not lines[0].startswith("-- "):
            raise ValueError(f"{source}: query '{header.group(1)}' needs a '-- ' description line")
        sql = "\n".join(lines[1:]).strip()
        if not sql:
            raise ValueError(f"{source}: query '{header.group(1)}' is empty")
        name = header.group(1)
        if name in queries:
            raise ValueError(f"{source}: query '{name}' is defined twice")
        queries[name] = cast(LiteralString, sql)
    return queries


@cache
def load_queries() -> dict[str, LiteralString]:
    """Every named query of the package; ValueError when two files define one name."""
    queries: dict[str, LiteralString] = {}
    for resource in sorted(files("postgit.db").joinpath("queries").iterdir(), key=lambda r: r.name):
        if not resource.name.endswith(".sql"):
            continue
        for name, sql in parse_queries(resource.read_text(encoding="utf-8"), resource.name).items():
            if name in queries:
                raise ValueError(f"{resource.name}: query '{name}' is already defined in another file")
            queries[name] = sql
    return queries
