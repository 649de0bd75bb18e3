"""Redactor: every form in which a secret's value can come back is replaced by ``***``."""

from __future__ import annotations

import base64
import html
import json
import logging
import sys
from urllib.parse import quote, quote_plus

import pytest

from postgit.redaction import RedactingFilter, Redactor

SECRET = "p@ss w/rd?&=é+T0k"


def b64(text: str, alphabet: str = "standard") -> str:
    encoded = base64.b64encode(text.encode()).decode()
    return encoded.translate(str.maketrans("+/", "-_")) if alphabet == "urlsafe" else encoded


FORMS = {
    "raw": SECRET,
    "quote": quote(SECRET),
    "quote, nothing safe": quote(SECRET, safe=""),
    "quote_plus": quote_plus(SECRET),
    "lower-case hex": quote(SECRET, safe="").lower(),
    "encoded twice": quote(quote(SECRET, safe=""), safe=""),
    "mixed: some characters encoded": SECRET.replace(" ", "%20").replace("é", "%C3%A9"),
    "JSON": json.dumps(SECRET),
    "JSON, not ASCII": json.dumps(SECRET, ensure_ascii=False),
    "JSON inside JSON": json.dumps(json.dumps(SECRET)),
    "Python repr": repr(SECRET),
    "bytes repr": repr(SECRET.encode()),
    "HTML": html.escape(SECRET),
    "UTF-8 read as latin-1 (a header)": SECRET.encode().decode("latin-1"),
    "upper case (a host name)": SECRET.upper(),
    "base64": b64(SECRET),
    "base64 of user:secret (basic auth)": b64(f"user:{SECRET}"),
    "base64 with one byte before": b64(f"x{SECRET}tail"),
    "urlsafe base64": b64(f"ab{SECRET}", "urlsafe"),
}


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_every_form_of_a_secret_is_redacted(form):
    text = Redactor([SECRET]).text(f"before {form} after")
    assert text.startswith("before ") and text.endswith(" after")
    assert "***" in text
    for piece in ("p@ss", "w/rd", "T0k", "pass", "%C3%A9"):
        assert piece not in text, text


def test_json_values_are_redacted_in_keys_strings_and_numbers():
    redactor = Redactor([SECRET, "123456"])
    value = {SECRET: [f"x{SECRET}y", 123456, 7, True, None], "n": {"deep": quote_plus(SECRET)}}
    assert redactor.value(value) == {"***": ["x***y", "***", 7, True, None], "n": {"deep": "***"}}


def test_a_url_valued_secret_is_redacted_by_the_parts_a_service_echoes():
    url = "https://bot:hunter2-pass@api.example.com/v1/hooks/T0KEN-path-part?api_key=Q-T0KEN%2Bvalue&v=1"
    redactor = Redactor([url])
    echoes = [
        url,
        "/v1/hooks/T0KEN-path-part?api_key=Q-T0KEN%2Bvalue&v=1",
        "api_key=Q-T0KEN%2Bvalue&v=1",
        "T0KEN-path-part",
        "Q-T0KEN+value",
        "hunter2-pass",
        b64("bot:hunter2-pass"),
    ]
    for echo in echoes:
        assert redactor.text(f"<{echo}>") == "<***>", echo
    assert redactor.text("v1 hooks api_key") == "v1 hooks api_key", "the URL's structure stays readable"


def test_nothing_else_changes():
    redactor = Redactor(["S3CR3T-T0KEN"])
    text = "an ordinary message: status 500, body {'error': 'bad request'}, dGVzdA=="
    assert redactor.text(text) == text
    assert not Redactor([]) and Redactor([]).text("x") == "x"


def test_the_log_filter_redacts_messages_arguments_and_tracebacks():
    redactor = Redactor([SECRET])
    handler = logging.Handler()
    handler.addFilter(RedactingFilter(redactor))
    try:
        raise ValueError(f"GET http://h/?k={quote_plus(SECRET)} failed")
    except ValueError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "calling %s", (SECRET,), exc_info)
    assert handler.filter(record)
    formatted = logging.Formatter().format(record)
    assert "calling ***" in formatted and "ValueError: GET http://h/?k=*** failed" in formatted
    assert "p@ss" not in formatted and quote_plus(SECRET) not in formatted
