"""Who is using the console: the signed session cookie, the login check, roles, and CSRF protection.

With a token set (``POSTGIT_API_TOKEN`` or named ones), a browser logs in once with any of the tokens and gets a
session cookie (HttpOnly, SameSite=Strict, signed with a key derived from the tokens, so every server process sharing
them accepts it and changing them ends every session). The cookie holds a random session id and the token's name and
role, never the token.
Without a token the console is open, like the API, and the cookie only carries the session id that CSRF tokens
are bound to.

Every state-changing console request needs both an ``Origin`` (or, lacking one, ``Referer``) of the server's own
origin and a form field ``csrf`` equal to the session's CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from postgit_server.roles import ANONYMOUS, ApiToken, Role, find_token
from postgit_server.settings import ServerSettings

COOKIE = "postgit_session"
SESSION_SECONDS = 12 * 3600
_SALT = "postgit-console-session"


@dataclass(frozen=True)
class Session:
    """A console session.

    Attributes:
        sid: a random id, fresh at each login; the CSRF token is derived from it.
        name: the name of the token it logged in with (``anonymous`` when the server has no token).
        role: what the session may do: its token's role (``admin`` when the server has no token).
        authenticated: whether it was opened by logging in (False when the server has no token).
    """

    sid: str
    name: str
    role: Role
    authenticated: bool

    def allows(self, needed: Role) -> bool:
        """Whether this session's role is at least ``needed``."""
        return self.role.allows(needed)


class CsrfRefused(Exception):
    """A state-changing request without the right origin or CSRF token."""


class SessionKeeper:
    """Issues and reads session cookies and their CSRF tokens for one server's settings."""

    def __init__(self, settings: ServerSettings):
        self.tokens = settings.tokens
        # the key comes from secrets every process of this server shares: the tokens, or without one the database
        # URL (which may hold a password; only a hash of it is used)
        secret = "\n".join(f"{t.name}:{t.role}:{t.token}" for t in self.tokens) or f"no-token:{settings.database_url}"
        key = hmac.new(secret.encode(), b"postgit-console-session-key", hashlib.sha256).hexdigest()
        self._key = key.encode()
        self._serializer = URLSafeTimedSerializer(key, salt=_SALT)

    @property
    def login_required(self) -> bool:
        """Whether the console asks for a token (the server has one)."""
        return bool(self.tokens)

    def check_token(self, candidate: str) -> ApiToken | None:
        """The server's token equal to ``candidate`` (compared in constant time), or None."""
        return find_token(self.tokens, candidate)

    def new_session(self, token: ApiToken | None) -> Session:
        """A fresh session: at login with ``token``, or on a first visit when the server has no token (None)."""
        if token is None:
            return Session(secrets.token_urlsafe(18), ANONYMOUS.name, ANONYMOUS.role, authenticated=False)
        return Session(secrets.token_urlsafe(18), token.name, token.role, authenticated=True)

    def read(self, request: Request) -> Session | None:
        """The request's session, or None when it has no valid one (none, tampered, expired, other token)."""
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data = self._serializer.loads(raw, max_age=SESSION_SECONDS)
            session = Session(str(data["sid"]), str(data["name"]), Role(data["role"]), authenticated=bool(data["auth"]))
        except (BadSignature, KeyError, TypeError, ValueError):
            return None
        if self.login_required and not session.authenticated:
            return None
        return session

    def cookie_value(self, session: Session) -> str:
        """The signed cookie value for ``session``."""
        data = {"sid": session.sid, "name": session.name, "role": session.role.value, "auth": session.authenticated}
        return self._serializer.dumps(data)

    def csrf_token(self, session: Session) -> str:
        """The CSRF token forms of ``session`` carry."""
        return hmac.new(self._key, f"csrf:{session.sid}".encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, request: Request, session: Session, submitted: str | None) -> None:
        """Refuse a state-changing request from another origin, or without the session's CSRF token.

        Raises:
            CsrfRefused: saying which check failed.
        """
        check_origin(request)
        if not submitted or not hmac.compare_digest(submitted, self.csrf_token(session)):
            raise CsrfRefused("the form's CSRF token is missing or stale: reload the page and try again")


def set_cookie(response_headers_owner: object, keeper: SessionKeeper, session: Session, request: Request) -> None:
    """Put ``session``'s cookie on a response (``response_headers_owner`` has ``set_cookie``)."""
    response_headers_owner.set_cookie(  # type: ignore[attr-defined]
        COOKIE,
        keeper.cookie_value(session),
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def check_origin(request: Request) -> None:
    """Refuse a request whose ``Origin`` (or ``Referer``) is not the server's own.

    Raises:
        CsrfRefused: saying why.
    """
    origin = request.headers.get("origin") or _origin_of(request.headers.get("referer"))
    if origin is None or origin == "null":
        raise CsrfRefused("the request has no Origin header: reload the page and try again")
    if origin != _own_origin(request):
        raise CsrfRefused(f"the request comes from another origin ({origin})")


def _origin_of(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def _own_origin(request: Request) -> str:
    host = request.headers.get("host") or request.url.netloc
    return f"{request.url.scheme}://{host}"
