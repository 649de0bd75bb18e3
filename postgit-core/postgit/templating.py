"""String params as jinja2 templates, rendered against the instance's state in jinja2's sandbox."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

_MARKERS = ("{{", "{%", "{#")


class TemplateProblem(ValueError):
    """A template does not parse, or failed to render."""


_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)  # noqa: S701 - not HTML


def is_template(value: object) -> bool:
    """Whether a string param is a template (contains ``{{``, ``{%`` or ``{#``)."""
    return isinstance(value, str) and any(marker in value for marker in _MARKERS)


def check_template(source: str) -> None:
    """Parse ``source``; TemplateProblem with jinja2's message (and line) when it does not parse."""
    try:
        _compile(source)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        raise TemplateProblem(f"template does not parse{f' (line {line})' if line else ''}: {exc}") from exc


def render_template(source: str, state: dict[str, Any]) -> str:
    """Render ``source`` with the state's top-level keys as variables (``{{ input.name }}``)."""
    try:
        return _compile(source).render(state)
    except TemplateError as exc:
        raise TemplateProblem(f"template failed to render: {exc}") from exc


@lru_cache(maxsize=1024)
def _compile(source: str):  # noqa: ANN202 - jinja2.Template
    return _env.from_string(source)
