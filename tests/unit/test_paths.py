import copy

import pytest

from postgit.paths import PathError, format_path, parse_path


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("$", ()),
        ("$.a", ("a",)),
        ("$.a.b_c.d-e", ("a", "b_c", "d-e")),
        ("$.items[0]", ("items", 0)),
        ("$.items[12].name", ("items", 12, "name")),
        ("$[3][4]", (3, 4)),
        ("$['key with spaces']", ("key with spaces",)),
        ('$["double quoted"]', ("double quoted",)),
        ("$['a.b']", ("a.b",)),
        ("$['it\\'s']", ("it's",)),
        ("$['back\\\\slash']", ("back\\slash",)),
        ("$['']", ("",)),
        ("$['café'].x", ("café", "x")),
        ("$['1st']", ("1st",)),
    ],
)
def test_parse(text, segments):
    assert parse_path(text).segments == segments


@pytest.mark.parametrize(
    "text",
    ["$", "$.a", "$.a.b[0].c", "$['key with spaces']", "$['it\\'s']", "$['back\\\\slash']", "$['']", "$[0][1]"],
)
def test_canonical_text_round_trips(text):
    assert format_path(parse_path(text).segments) == text


@pytest.mark.parametrize(
    "segments",
    [
        (),
        ("a", 0, "b"),
        ("with space", "dot.ted", "quote'", 'double"', "back\\slash", "tab\t", "new\nline"),
        ("", "café", "ünï", "-leading-dash", "1digit"),
        (0, 10, 999),
    ],
)
def test_segments_round_trip_through_text(segments):
    assert parse_path(format_path(segments)).segments == segments


def test_format_uses_the_short_form_when_it_can():
    assert format_path(("a", "b_c", 0)) == "$.a.b_c[0]"
    assert format_path(("a b",)) == "$['a b']"
    assert parse_path('$["x"]').segments == parse_path("$.x").segments


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("$.*", 1),
        ("$[*]", 1),
        ("$.a[*]", 3),
        ("$..a", 1),
        ("$.a[?(@.b == 1)]", 3),
        ("$.a[0:2]", 3),
        ("$.a[-1]", 3),
        ("$.a[0,1]", 3),
        ("$a", 1),
        ("$.a b", 3),
        ("$.a.", 3),
        ("$.", 1),
        ("$['unterminated", 1),
        ("$.a!!", 3),
    ],
)
def test_unsupported_syntax_is_refused_with_its_position(text, position):
    with pytest.raises(PathError) as caught:
        parse_path(text)
    message = str(caught.value)
    assert f"'{text}' is not a valid path at position {position}" in message
    assert "wildcards, filters and slices are not supported" in message


@pytest.mark.parametrize("text", ["", "a.b", "result", ".a", " $.a", 42, None])
def test_a_path_must_start_with_the_root(text):
    with pytest.raises(PathError, match="must start with '\\$'"):
        parse_path(text)


DOCUMENT = {"input": {"name": "Ada", "tags": ["x", {"deep": True}]}, "odd key": 1, "n": None}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("$", DOCUMENT),
        ("$.input.name", "Ada"),
        ("$.input.tags[0]", "x"),
        ("$.input.tags[1].deep", True),
        ("$['odd key']", 1),
        ("$.n", None),
    ],
)
def test_read(text, value):
    assert parse_path(text).read(DOCUMENT) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$.missing", "$.missing: no key 'missing' at $"),
        ("$.input.age", "$.input.age: no key 'age' at $.input"),
        ("$.input.name.first", "$.input.name.first: no key 'first' at $.input.name"),
        ("$.input.tags[2]", "$.input.tags[2]: no item [2] at $.input.tags"),
        ("$.input[0]", "$.input[0]: no item [0] at $.input"),
        ("$.input.tags.length", "$.input.tags.length: no key 'length' at $.input.tags"),
        ("$.n.x", "$.n.x: no key 'x' at $.n"),
        ("$['odd key'].x", "no key 'x' at $['odd key']"),
    ],
)
def test_read_names_the_missing_segment_and_where(text, message):
    with pytest.raises(PathError) as caught:
        parse_path(text).read(DOCUMENT)
    assert message in str(caught.value)


def test_write_creates_intermediate_objects():
    assert parse_path("$.a.b.c").write({}, 1) == {"a": {"b": {"c": 1}}}
    assert parse_path("$['x y'].z").write({"keep": True}, [1]) == {"keep": True, "x y": {"z": [1]}}


def test_write_keeps_siblings_and_replaces_the_target():
    document = {"a": {"b": 1, "c": 2}, "d": 3}
    assert parse_path("$.a.b").write(document, {"new": 1}) == {"a": {"b": {"new": 1}, "c": 2}, "d": 3}


def test_write_through_an_explicit_null_creates_an_object():
    assert parse_path("$.a.b").write({"a": None}, 1) == {"a": {"b": 1}}


def test_write_into_lists():
    document = {"items": [{"x": 1}, "two"]}
    assert parse_path("$.items[0].y").write(document, 2) == {"items": [{"x": 1, "y": 2}, "two"]}
    assert parse_path("$.items[1]").write(document, "2") == {"items": [{"x": 1}, "2"]}
    assert parse_path("$.items[2]").write(document, 3) == {"items": [{"x": 1}, "two", 3]}


@pytest.mark.parametrize(
    ("text", "document", "message"),
    [
        ("$.items[5]", {"items": [1]}, "$.items[5]: cannot write item [5] at $.items"),
        ("$.items[0]", {}, "cannot write item [0] at $.items"),
        ("$.a.b", {"a": "text"}, "$.a.b: $.a is not an object"),
        ("$.a.b.c", {"a": {"b": 7}}, "$.a.b is not an object"),
        ("$.a[0]", {"a": {"0": 1}}, "cannot write item [0] at $.a"),
    ],
)
def test_write_errors_name_where(text, document, message):
    with pytest.raises(PathError) as caught:
        parse_path(text).write(document, 1)
    assert message in str(caught.value)


def test_write_refuses_the_root():
    with pytest.raises(PathError, match="cannot assign to the whole state"):
        parse_path("$").write({"a": 1}, {"b": 2})


def test_write_does_not_mutate_the_input():
    document = {"input": {"name": "Ada", "list": [1, {"x": 1}]}, "other": {"k": "v"}}
    snapshot = copy.deepcopy(document)
    inner, items = document["input"], document["input"]["list"]
    for text in ("$.input.name", "$.input.new.deep", "$.input.list[1].x", "$.input.list[2]", "$.other.k", "$.z"):
        result = parse_path(text).write(document, "changed")
        assert parse_path(text).read(result) == "changed"
    assert document == snapshot
    assert document["input"] is inner and document["input"]["list"] is items
