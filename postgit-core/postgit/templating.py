"""String params as jinja2 templates, rendered against the instance's state in jinja2's sandbox."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

_MARKERS = ("{{", "{%", "{#")

MAX_NUMBER_BITS = 100_000
"""The largest integer ``*`` and ``**`` may produce in a template (about 30,000 decimal digits)."""

MAX_REPEAT_LENGTH = 1_000_000
"""The longest string or list that ``*`` may produce in a template."""


class TemplateProblem(ValueError):
    """A template does not parse, or failed to render."""


class _Environment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with bounds on the operators that can exhaust memory or CPU in one expression.

    Intercepted operators are also never folded into constants at compile time, so checking a template at deploy
    time does not evaluate ``7 ** 999999999``.
    """

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            _check_power(left, right)
        else:
            _check_product(left, right)
        return super().call_binop(context, operator, left, right)


def _check_power(base: Any, exponent: Any) -> None:
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0:
        return
    if abs(base).bit_length() * exponent > MAX_NUMBER_BITS and abs(base) > 1:
        raise SecurityError(f"the result of '**' would exceed {MAX_NUMBER_BITS} bits")


def _check_product(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_NUMBER_BITS:
            raise SecurityError(f"the result of '*' would exceed {MAX_NUMBER_BITS} bits")
        return
    for sequence, count in ((left, right), (right, left)):
        repeated = isinstance(sequence, str | list | tuple) and isinstance(count, int)
        if repeated and len(sequence) * count > MAX_REPEAT_LENGTH:
            raise SecurityError(f"the result of '*' would be longer than {MAX_REPEAT_LENGTH} items")


# autoescape: the output is plain text, not HTML. optimized: jinja2's constant folding re-evaluates every level of
# a nested expression, so it takes seconds for a few hundred levels ('x' followed by '|string' 300 times); without
# it the result is the same, and checking any template at deploy time stays fast.
_env = _Environment(undefined=StrictUndefined, autoescape=False, optimized=False)


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
    except (RecursionError, SyntaxError):  # SyntaxError: Python's own limits on the code jinja2 generates
        raise TemplateProblem("template does not parse: it is nested too deeply") from None


def render_template(source: str, state: dict[str, Any]) -> str:
    """Render ``source`` with the state's top-level keys as variables (``{{ input.name }}``).

    Raises:
        TemplateProblem: for any failure, jinja2's own (undefined variable, unsafe access) or the expression's
            (``1 / 0``, ``'a' + 1``).
    """
    try:
        return _compile(source).render(state)
    except TemplateError as exc:
        raise TemplateProblem(f"template failed to render: {exc}") from exc
    except RecursionError:
        raise TemplateProblem("template failed to render: it recursed too deeply") from None
    except Exception as exc:
        raise TemplateProblem(f"template failed to render: {type(exc).__name__}: {exc}") from exc


@lru_cache(maxsize=1024)
def _compile(source: str) -> Template:
    return _env.from_string(source)


def expression_source(source: str) -> str:
    """A condition's expression: ``"input.amount > 100"``, or the same wrapped in one ``{{ ... }}``."""
    text = source.strip()
    if text.startswith("{{") and text.endswith("}}") and text.count("{{") == 1:
        return text[2:-2].strip()
    return text


def check_expression(source: str) -> None:
    """Parse a condition; TemplateProblem with jinja2's message when it does not parse."""
    try:
        _compile_expression(expression_source(source))
    except TemplateError as exc:
        raise TemplateProblem(f"expression does not parse: {exc}") from exc
    except (RecursionError, SyntaxError):  # SyntaxError: Python's own limits on the code jinja2 generates
        raise TemplateProblem("expression does not parse: it is nested too deeply") from None


def evaluate_expression(source: str, variables: dict[str, Any]) -> Any:
    """The value of a jinja2 expression over ``variables`` (the state's top-level keys and scope variables).

    Raises:
        TemplateProblem: the expression does not parse, names something undefined, or fails.
    """
    try:
        return _compile_expression(expression_source(source))(**variables)
    except TemplateError as exc:
        raise TemplateProblem(f"expression failed: {exc}") from exc
    except RecursionError:
        raise TemplateProblem("expression failed: it recursed too deeply") from None
    except Exception as exc:
        raise TemplateProblem(f"expression failed: {type(exc).__name__}: {exc}") from exc


@lru_cache(maxsize=1024)
def _compile_expression(source: str) -> Any:
    return _env.compile_expression(source, undefined_to_none=False)


def template_variables(source: str, *, expression: bool = False) -> tuple[set[str], set[str]]:
    """The top-level variables a template, or with ``expression`` a condition, reads: (required, optional).

    A variable is optional when every use of it is guarded by ``x | default(...)``, or when the template tests
    it with ``x is defined`` or ``x is undefined`` (``{% if x is defined %}{{ x.y }}{% endif %}``, ``x is
    defined and x > 0``). Names the template sets itself (``{% set %}``, loop variables) are not counted.
    """
    text = "{{ " + expression_source(source) + " }}" if expression or not is_template(source) else source
    try:
        tree = _env.parse(text)
    except TemplateError as exc:
        raise TemplateProblem(f"template does not parse: {exc}") from exc
    except RecursionError:
        raise TemplateProblem("template does not parse: it is nested too deeply") from None
    undeclared = meta.find_undeclared_variables(tree)
    guarded: set[int] = set()
    tested: set[str] = set()
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        if node.name in _GUARDS and isinstance(node.node, nodes.Name):
            guarded.add(id(node.node))
            if isinstance(node, nodes.Test):
                tested.add(node.node.name)
    used: dict[str, bool] = {}
    for name in tree.find_all(nodes.Name):
        if name.ctx == "load" and name.name in undeclared:
            used[name.name] = used.get(name.name, False) or id(name) not in guarded
    required = {name for name, unguarded in used.items() if unguarded and name not in tested}
    return required, set(used) - required


_GUARDS = frozenset({"default", "d", "defined", "undefined"})
