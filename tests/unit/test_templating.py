import copy
import time

import pytest

from postgit.templating import TemplateProblem, check_template, is_template, render_template

STATE = {"input": {"name": "Ada", "numbers": [1, 2, 3], "nested": {"x": {"y": "deep"}}}, "fetch": {"status": 200}}


@pytest.mark.parametrize("value", ["{{ x }}", "a {% if x %}b{% endif %}", "{# comment #}", "prefix {{"])
def test_is_template(value):
    assert is_template(value)


@pytest.mark.parametrize("value", ["plain", "{ x }", "{x}", "%}", "", 5, None, ["{{ x }}"], {"a": "{{ x }}"}])
def test_is_not_template(value):
    assert not is_template(value)


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("Hello {{ input.name ", 1),
        ("first line\nsecond {% if %}", 2),
        ("{% for x in input.numbers %}\n{{ x }}\n", 2),
        ("a\nb\nc {{ 1 + }}", 3),
        ("{% endif %}", 1),
        ("{{ x | }}", 1),
    ],
)
def test_parse_errors_name_the_line(source, line):
    with pytest.raises(TemplateProblem) as caught:
        check_template(source)
    assert str(caught.value).startswith(f"template does not parse (line {line}): ")


def test_unknown_filter_is_caught_when_checked():
    with pytest.raises(TemplateProblem, match="No filter named 'nope'"):
        check_template("{{ input.name | nope }}")


def test_deeply_nested_expression_is_a_parse_error_not_a_crash():
    with pytest.raises(TemplateProblem, match="nested too deeply"):
        check_template("{{ " + "(" * 2000 + "1" + ")" * 2000 + " }}")


def test_valid_templates_check():
    check_template("Hello {{ input.name }}, {% for i in input.numbers %}{{ i }}{% endfor %} {# note #}")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hello {{ input.name }}", "Hello Ada"),
        ("{{ input.nested.x.y }}/{{ input['nested']['x']['y'] }}", "deep/deep"),
        ("{% for i in input.numbers %}{{ i }},{% endfor %}", "1,2,3,"),
        ("{{ input.name | upper }} {{ input.numbers | sum }}", "ADA 6"),
        ("{% if fetch.status == 200 %}ok{% else %}bad{% endif %}", "ok"),
        ("{{ input.numbers | length }} {{ input.numbers[-1] }}", "3 3"),
        ("{{ 2 ** 10 }} {{ 'ab' * 3 }} {{ [0] * 2 }}", "1024 ababab [0, 0]"),
        ("no markers at all", "no markers at all"),
    ],
)
def test_render(source, expected):
    assert render_template(source, STATE) == expected


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("{{ missing }}", "missing"),
        ("{{ input.age }}", "age"),
        ("{{ input.nested.z.y }}", "z"),
        ("{{ nope | upper }}", "nope"),
    ],
)
def test_undefined_values_fail_loudly(source, name):
    with pytest.raises(TemplateProblem) as caught:
        render_template(source, STATE)
    assert str(caught.value).startswith("template failed to render: ")
    assert f"'{name}'" in str(caught.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{{ input.name + 1 }}", "TypeError"),
        ("{{ input.numbers[10] }}", "has no element 10"),
        ("{{ range(10 ** 6) | list }}", "MAX_RANGE"),
        ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recursed too deeply"),
    ],
)
def test_runtime_failures_are_template_problems(source, message):
    with pytest.raises(TemplateProblem, match=message):
        render_template(source, STATE)


ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__ }}",
    "{{ lipsum.__globals__['os'].system('true') }}",
    "{{ range.__self__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ self.__init__.__globals__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c.__name__ }}{% endfor %}",
    "{{ input.__class__ }}",
    "{{ input | attr('__class__') }}",
    "{{ input['__class__'] }}",
    "{{ '{0.__class__.__mro__}'.format(input) }}",
    "{{ '%s'.__mod__ }}",
    "{{ input.numbers.__getitem__ }}",
    "{{ (input.name.upper).__globals__ }}",
    "{% set x = input.name.__class__ %}{{ x }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escapes_are_refused(source):
    check_template(source)  # syntax is fine: the sandbox refuses it when it runs
    with pytest.raises(TemplateProblem) as caught:
        rendered = render_template(source, STATE)
        # If a future jinja2 rendered these instead of raising, nothing of Python's internals may come out.
        assert "<class" not in rendered and "function" not in rendered and "module" not in rendered
        raise TemplateProblem("rendered harmlessly")
    assert "<class" not in str(caught.value).replace("'", "")


@pytest.mark.parametrize(
    "source",
    [
        "{{ input.pop('name') }}",
        "{{ input.update({'name': 'Eve'}) }}",
        "{{ input.numbers.append(4) }}",
        "{{ input.nested.clear() }}",
        "{% set _ = input.numbers.reverse() %}",
    ],
)
def test_templates_cannot_change_the_state(source):
    state = copy.deepcopy(STATE)
    with pytest.raises(TemplateProblem, match="unsafe"):
        render_template(source, state)
    assert state == STATE


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ 7 ** 999999999 }}", "'\\*\\*' would exceed"),
        ("{% if 7 ** 999999999 %}x{% endif %}", "'\\*\\*' would exceed"),
        ("{{ input.numbers[0] * 10 ** 50000 * 10 ** 50000 }}", "would exceed"),
        ("{{ 'a' * 999999999 }}", "'\\*' would be longer than"),
        ("{{ input.numbers * 999999999 }}", "'\\*' would be longer than"),
        ("{{ 999999999 * input.name }}", "'\\*' would be longer than"),
    ],
)
def test_expressions_that_would_exhaust_memory_or_cpu_are_refused(source, message):
    started = time.monotonic()
    check_template(source)  # deploy-time check does not evaluate the expression
    assert time.monotonic() - started < 1
    with pytest.raises(TemplateProblem, match=message):
        render_template(source, STATE)
    assert time.monotonic() - started < 5
