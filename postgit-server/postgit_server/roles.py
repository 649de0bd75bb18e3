"""Who may call the API: named tokens with roles, read from the environment and checked in constant time.

``POSTGIT_API_TOKEN`` is one admin token (named ``api-token``). ``POSTGIT_API_TOKENS`` and the file named by
``POSTGIT_API_TOKENS_FILE`` add named tokens, each entry ``name:role:token``: in the variable separated by commas,
in the file one per line (blank lines and lines starting with ``#`` skipped). Each role allows what the roles
before it allow: viewer (reads), operator (start, cancel, retry, pause, resume, events, outbox), admin (all).
"""

from __future__ import annotations

import hmac
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from postgit.errors import PostgitError

SINGLE_TOKEN_NAME = "api-token"  # noqa: S105 - the name of POSTGIT_API_TOKEN, not a secret
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")
MIN_TOKEN_LENGTH = 8
MAX_TOKEN_LENGTH = 512


class Role(StrEnum):
    """What a caller may do, each role allowing what the ones before it allow."""

    viewer = "viewer"
    operator = "operator"
    admin = "admin"

    def allows(self, needed: Role) -> bool:
        """Whether this role is at least ``needed``."""
        return _RANK[self] >= _RANK[needed]


_RANK = {Role.viewer: 0, Role.operator: 1, Role.admin: 2}


@dataclass(frozen=True)
class ApiToken:
    """A token the server accepts: the caller's name (shown in the audit log), its role, and the secret itself."""

    name: str
    role: Role
    token: str

    def __repr__(self) -> str:  # never the secret, in a log or a traceback
        return f"ApiToken(name={self.name!r}, role={self.role.value!r})"


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a token's name and role; ``anonymous`` (an admin) when the server has no tokens."""

    name: str
    role: Role


ANONYMOUS = Caller("anonymous", Role.admin)


def find_token(tokens: tuple[ApiToken, ...], candidate: str) -> ApiToken | None:
    """The configured token equal to ``candidate``; every one is compared, in constant time."""
    found = None
    given = candidate.encode()
    for token in tokens:
        if hmac.compare_digest(given, token.token.encode()):
            found = token
    return found


def all_tokens(single: str | None, named: tuple[ApiToken, ...]) -> tuple[ApiToken, ...]:
    """``POSTGIT_API_TOKEN`` (as the admin ``api-token``) followed by the named tokens."""
    return ((ApiToken(SINGLE_TOKEN_NAME, Role.admin, single),) if single else ()) + named


def named_tokens_from_env() -> tuple[ApiToken, ...]:
    """The named tokens: ``POSTGIT_API_TOKENS``, then the file's; each name and token unique, with the single one's.

    Raises:
        PostgitError: one line naming the variable (or file and line) and the entry's name, never its token.
    """
    tokens: list[ApiToken] = []
    listed = os.environ.get("POSTGIT_API_TOKENS") or ""
    for index, entry in enumerate(listed.split(","), start=1):
        if entry.strip():
            tokens.append(parse_entry(entry, f"POSTGIT_API_TOKENS entry {index}"))
    path = os.environ.get("POSTGIT_API_TOKENS_FILE") or None
    if path is not None:
        tokens.extend(_tokens_from_file(Path(path)))
    check_unique(all_tokens(os.environ.get("POSTGIT_API_TOKEN") or None, tuple(tokens)))
    return tuple(tokens)


def parse_entry(entry: str, where: str) -> ApiToken:
    """One ``name:role:token`` entry; PostgitError naming ``where`` and what is wrong (without the token)."""
    parts = entry.strip().split(":", 2)
    if len(parts) != 3:
        raise PostgitError(f"{where}: expected name:role:token")
    name, role, token = (part.strip() for part in parts)
    if not NAME_PATTERN.fullmatch(name):
        raise PostgitError(
            f"{where}: the name must be 1 to 64 letters, digits or _.@- (starting with a letter or digit)"
        )
    if role not in Role.__members__:
        raise PostgitError(f"{where} ({name}): role {role[:20]!r} is not one of viewer, operator, admin")
    if not MIN_TOKEN_LENGTH <= len(token) <= MAX_TOKEN_LENGTH or not token.isprintable() or " " in token:
        raise PostgitError(
            f"{where} ({name}): the token must be {MIN_TOKEN_LENGTH} to {MAX_TOKEN_LENGTH} printable characters "
            "without spaces"
        )
    return ApiToken(name, Role(role), token)


def _tokens_from_file(path: Path) -> list[ApiToken]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise PostgitError(f"POSTGIT_API_TOKENS_FILE={str(path)!r}: cannot read it ({reason})") from None
    tokens = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            tokens.append(parse_entry(line, f"POSTGIT_API_TOKENS_FILE line {number}"))
    return tokens


def check_unique(tokens: tuple[ApiToken, ...]) -> None:
    """Refuse two tokens with one name, or one token under two names (which caller would it be?)."""
    names: set[str] = set()
    for token in tokens:
        if token.name in names:
            raise PostgitError(f"API tokens: the name {token.name!r} is given twice")
        names.add(token.name)
        if find_token(tuple(t for t in tokens if t is not token), token.token) is not None:
            raise PostgitError(f"API tokens: {token.name!r} has the same token as another entry")
