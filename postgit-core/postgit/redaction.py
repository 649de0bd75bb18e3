"""Redaction of secret values in every form in which they come back.

A secret sent to a service can come back changed: percent-encoded in a URL (``quote``, ``quote_plus``, whatever safe
characters the HTTP client chose, upper- or lower-case hex, or encoded twice), escaped in JSON or a Python repr,
HTML-escaped in an error page, as the latin-1 reading of its UTF-8 bytes in a response header, lower-cased in a
host name, or base64-encoded in a basic-auth header. :class:`Redactor` matches all of them: each character of a
secret may appear as itself or in any of those encodings, and base64 is matched at each of the three alignments a
secret can have inside an encoded string. A secret whose value is a URL is also matched by its parts that a service
echoes on their own: its password, its path and query, and each path segment and query value at least
:data:`MIN_URL_PART` characters long.

:func:`install_log_redaction` puts a redactor on every handler of the process's root logger, so that no log line,
traceback included, shows a secret.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import logging
import os
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit

REDACTED = "***"
MIN_URL_PART = 8
"""Path segments and query values of a URL-valued secret shorter than this are its structure (``v1``, ``json``),
not its credentials, and are not redacted on their own."""
MIN_DECODED = 4
"""The shortest percent-decoded form of a secret redacted besides the secret itself (``%41`` is not ``A``)."""
MIN_BASE64_BYTES = 3
"""The fewest bytes of a secret whose base64 form is redacted (one whole base64 group)."""

_BASE64_CHAR = "[A-Za-z0-9+/_-]"
_URLSAFE = str.maketrans("+/", "-_")


class Redactor:
    """Replaces every form of the given secret values by ``***`` in text and in JSON values."""

    def __init__(self, secrets: Iterable[str]):
        self._pattern = _compile(tuple(sorted({secret for secret in secrets if secret})))

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        """``text`` with every form of every secret replaced by ``***``."""
        return text if self._pattern is None else self._pattern.sub(REDACTED, text)

    def value(self, value: Any) -> Any:
        """``value`` (any JSON: keys, strings, numbers) with every form of every secret replaced by ``***``."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(key)): self.value(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(item) for item in value]
        if isinstance(value, int | float) and not isinstance(value, bool) and self._pattern.search(str(value)):
            return REDACTED
        return value


@functools.lru_cache(maxsize=256)
def _compile(secrets: tuple[str, ...]) -> re.Pattern[str] | None:
    """One pattern for every form of every secret (the same secrets come with step after step: built once)."""
    forms: set[str] = set()
    for secret in secrets:
        forms.update(_url_parts(secret))
        forms.add(secret)
    decoded = {unquote_plus(form) for form in forms}  # a secret written encoded, echoed decoded
    forms.update(form for form in decoded if len(form) >= MIN_DECODED)
    patterns = [_text_pattern(form) for form in sorted(forms, key=len, reverse=True)]
    patterns += sorted({p for form in forms for p in _base64_patterns(form)}, key=len, reverse=True)
    return re.compile("|".join(patterns), re.IGNORECASE) if patterns else None


def redact(value: Any, secrets: list[str]) -> Any:
    """``value`` (any JSON) with every form of every secret in ``secrets`` replaced by ``***``."""
    return Redactor(secrets).value(value) if secrets else value


def _text_pattern(form: str) -> str:
    """A pattern matching ``form`` with each of its characters as itself or in any encoding (case-insensitive)."""
    return "".join(_char_pattern(char) for char in form)


def _char_pattern(char: str) -> str:
    data = char.encode("utf-8")
    percent = "".join(f"%{byte:02X}" for byte in data)
    spellings = {
        char,
        percent,  # quote(), quote_plus(), any safe set, any case
        percent.replace("%", "%25"),  # encoded twice
        json.dumps(char)[1:-1],  # \" \\ \u00e9
        json.dumps(char, ensure_ascii=False)[1:-1],
        repr(char)[1:-1],  # \' \x00 \n
        html.escape(char),  # &amp; &quot; &#x27;
        f"&#{ord(char)};",
        f"&#x{ord(char):x};",
    }
    if char == " ":
        spellings.add("+")  # quote_plus
    if len(data) > 1:
        spellings.add(data.decode("latin-1"))  # UTF-8 read as latin-1, as HTTP headers are
        spellings.add("".join(f"\\x{byte:02x}" for byte in data))  # a bytes repr
    alternatives = "|".join(re.escape(s) for s in sorted(spellings, key=len, reverse=True))
    return rf"\\*(?:{alternatives})"  # any escaping backslashes in front: JSON inside JSON


def _base64_patterns(form: str) -> set[str]:
    """Patterns of ``form``'s base64 at each alignment inside a longer encoded string, with the partial groups.

    A secret inside base64-encoded data (``user:secret`` in a basic-auth header) starts at byte 0, 1 or 2 of a
    three-byte group; from its first whole group on, its encoding is the same whatever comes before or after it.
    The groups on either side, which mix its first and last bytes with their neighbours, are redacted with it.
    """
    data = form.encode("utf-8")
    patterns: set[str] = set()
    for skip in range(3):
        body = data[skip:]
        body = body[: len(body) - len(body) % 3]
        if len(body) < MIN_BASE64_BYTES:
            continue
        encoded = base64.b64encode(body).decode()
        for core in {encoded, encoded.translate(_URLSAFE)}:
            before = f"{_BASE64_CHAR}{{4}}" if skip else ""
            after = "" if (len(data) - skip) % 3 == 0 else f"{_BASE64_CHAR}{{2,4}}"
            patterns.add(f"(?-i:(?:{before})?{re.escape(core)}(?:{after})?=*)")
    return patterns


def _url_parts(secret: str) -> set[str]:
    """The parts of a URL-valued secret that a service can echo on their own; none for other secrets."""
    try:
        url = urlsplit(secret)
    except ValueError:
        return set()
    if url.scheme.lower() not in ("http", "https") or not url.netloc:
        return set()
    parts = {url.path + (f"?{url.query}" if url.query else ""), url.query, url.fragment}
    parts.update(unquote(segment) for segment in url.path.split("/"))
    parts.update(value for _, value in parse_qsl(url.query))
    found = {part for part in parts if len(unquote(part)) >= MIN_URL_PART}
    if url.password:  # a password of any length, and the user:password that basic auth encodes
        password = unquote(url.password)
        found.update({url.password, password, f"{unquote(url.username or '')}:{password}"})
    return found


class RedactingFilter(logging.Filter):
    """A logging filter that redacts a record's message and traceback."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redactor.text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.text(record.stack_info)
        return True


def secrets_in_environment(prefix: str) -> list[str]:
    """The values of every environment variable whose name starts with ``prefix``."""
    return [value for name, value in os.environ.items() if name.startswith(prefix) and value]


def install_log_redaction(secrets: Iterable[str]) -> None:
    """Redact ``secrets`` in everything the root logger's handlers write (call after configuring logging)."""
    redactor = Redactor(secrets)
    if not redactor:
        return
    log_filter = RedactingFilter(redactor)
    for handler in logging.getLogger().handlers:
        handler.addFilter(log_filter)
