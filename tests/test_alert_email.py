"""Email alerts over encrypted SMTP: STARTTLS and implicit TLS with a login, against a real SMTP server
(aiosmtpd) on loopback holding a certificate of a private CA made by the test. The server's certificate
is verified: without the CA the alert is not sent; a wrong password is refused."""

from __future__ import annotations

import datetime as dt
import smtplib
import socket
import ssl
from collections.abc import Iterator
from email import message_from_bytes
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from smartingest.config.models import EmailAlert
from smartingest.engine.alerts import Alert, send

# aiosmtpd warns about its implicit-TLS server, which it does not see as TLS (see the server fixture).
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
USER, PASSWORD = "alerts", "smtp-password-1"
ALERT = Alert("people", "people", "failed", "ok", 7, "sync 'people' failed: boom", dt.datetime.now(dt.UTC))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA): its PEM and its key's."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smartingest test SMTP")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "cert.pem", folder / "key.pem"


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (USER.encode(), PASSWORD.encode())
        if ok:
            self.logins.append(USER)
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers a refusal with 535


@pytest.fixture(params=["starttls", "tls"])
def server(request: pytest.FixtureRequest, certificate: tuple[Path, Path]) -> Iterator[tuple[Mailbox, str, int]]:
    """An SMTP server that requires a login over TLS: STARTTLS, or TLS from the first byte."""
    security = request.param
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    box = Mailbox()
    # Implicit TLS: aiosmtpd does not see its own wrapped socket as TLS, so it must not wait for STARTTLS
    # before offering AUTH.
    tls: dict[str, Any] = (
        {"tls_context": context, "require_starttls": True}
        if security == "starttls"
        else {"ssl_context": context, "auth_require_tls": False}
    )
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=box.authenticate,
        auth_required=True,
        **tls,
    )
    controller.start()
    yield box, security, port
    controller.stop()


def _channel(security: str, port: int, ca_file: Path | None, password: str = PASSWORD) -> EmailAlert:
    return EmailAlert.model_validate(
        {
            "type": "email",
            "to": ["ops@example.com"],
            "from": "smartingest@example.com",
            "host": "127.0.0.1",
            "port": port,
            "security": security,
            "username": USER,
            "password": password,
            "ca_file": str(ca_file) if ca_file else None,
            "timeout_seconds": 10,
        }
    )


def test_an_alert_is_sent_over_tls_with_a_login(server, certificate):
    box, security, port = server
    send(_channel(security, port, certificate[0]), ALERT)
    [message] = box.messages
    assert message["Subject"] == "smartingest: sync people is failed" and box.logins == [USER]
    assert "sync 'people' failed: boom" in message.get_payload()


def test_a_server_whose_certificate_is_not_trusted_gets_nothing(server):
    box, security, port = server
    with pytest.raises(ssl.SSLCertVerificationError):
        send(_channel(security, port, None), ALERT)  # the system's CAs do not know the test's
    assert box.messages == [] and box.logins == []


def test_a_wrong_password_is_refused(server, certificate):
    box, security, port = server
    with pytest.raises(smtplib.SMTPAuthenticationError):
        send(_channel(security, port, certificate[0], password="wrong"), ALERT)
    assert box.messages == []


def test_a_password_is_never_sent_in_clear():
    with pytest.raises(ValidationError, match="in clear: set security to starttls or tls"):
        _channel("none", 25, None)
