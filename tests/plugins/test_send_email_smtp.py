"""SendEmail over SMTP with STARTTLS and authentication, and over implicit TLS, against aiosmtpd on loopback."""

from __future__ import annotations

import logging
import ssl

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from postgit.nodes import StepContext
from postgit_builtins.send_email import SendEmailParams, send_email
from tests.support.ports import free_port
from tests.support.smtp_server import CollectingHandler

CTX = StepContext("instance", "notify", 1, "instance:notify", logging.getLogger("test"))
PARAMS = SendEmailParams(to="user@example.com", subject="Workflow Complete", body="ok")


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def trusted(ca, tmp_path, monkeypatch):
    """A server TLS context for 127.0.0.1, and the client trusting its CA (as SSL_CERT_FILE would in production)."""
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"postgit", b"p@ss w0rd")
    return AuthResult(success=ok)


@pytest.fixture
def starttls_server(trusted):
    handler = CollectingHandler()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=trusted,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    yield controller, handler
    controller.stop()


async def test_starttls_with_authentication_delivers(starttls_server, monkeypatch):
    controller, mailbox = starttls_server
    monkeypatch.setenv("POSTGIT_SMTP_URL", f"smtp://postgit:p%40ss%20w0rd@127.0.0.1:{controller.port}?starttls=1")
    result = await send_email(CTX, PARAMS)
    assert result["delivery"] == "smtp"
    [message] = mailbox.messages
    assert (message["Subject"], message.get_payload().strip()) == ("Workflow Complete", "ok")
    assert message["X-Postgit-Idempotency-Key"] == "instance:notify"


async def test_without_starttls_the_server_refuses_and_the_step_is_retried(starttls_server, monkeypatch):
    controller, _ = starttls_server
    monkeypatch.setenv("POSTGIT_SMTP_URL", f"smtp://127.0.0.1:{controller.port}")
    with pytest.raises(Exception, match=r"SMTP delivery to 127\.0\.0\.1"):
        await send_email(CTX, PARAMS)


async def test_implicit_tls_delivers(trusted, monkeypatch):
    handler = CollectingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), ssl_context=trusted)
    controller.start()
    try:
        monkeypatch.setenv("POSTGIT_SMTP_URL", f"smtps://127.0.0.1:{controller.port}")
        assert (await send_email(CTX, PARAMS))["delivery"] == "smtp"
    finally:
        controller.stop()
    assert len(handler.messages) == 1
