"""TLS to the database server: a certificate that does not verify is a clear
error, never a silent downgrade to an unverified or plain connection.

A small local server speaks the start of the PostgreSQL protocol: it accepts
the client's SSLRequest and then presents a certificate signed by a CA the
client does not trust (or the client names a CA file that does not exist)."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from getmeds_desktop.config import DatabaseTarget
from getmeds_desktop.errors import DatabaseUnavailable
from getmeds_desktop.startup import Connector

SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")


def _self_signed(common_name: str, folder: Path, stem: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = folder / f"{stem}.pem"
    key_path = folder / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def impostor_server(tmp_path: Path) -> Iterator[dict]:
    """A server on 127.0.0.1 that offers TLS with an untrusted certificate and
    records whether any client ever sent it something after the handshake."""
    cert, key = _self_signed("localhost", tmp_path, "server")
    trusted_ca, _ = _self_signed("GetMeds Test CA", tmp_path, "trusted-ca")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    seen = {"ssl_requests": 0, "plain_startups": 0, "completed_handshakes": 0}
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    first = conn.recv(8)
                    if first != SSL_REQUEST:
                        seen["plain_startups"] += 1
                        continue
                    seen["ssl_requests"] += 1
                    conn.sendall(b"S")
                    with ctx.wrap_socket(conn, server_side=True) as tls:
                        seen["completed_handshakes"] += 1
                        tls.recv(1)
                except (OSError, ssl.SSLError):
                    continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield {"port": listener.getsockname()[1], "trusted_ca": trusted_ca, "seen": seen}
    stop.set()
    listener.close()
    thread.join(5)


def test_untrusted_certificate_is_a_clear_error(impostor_server):
    port = impostor_server["port"]
    url = (f"postgresql://localhost:{port}/getmeds?sslmode=verify-full"
           f"&sslrootcert={impostor_server['trusted_ca']}&connect_timeout=5")
    target = DatabaseTarget(url=url, profile="pharmacy", label="Pharmacy server")
    with pytest.raises(DatabaseUnavailable) as caught:
        Connector().sign_in(target, "pat", "correct horse battery")
    message = str(caught.value)
    assert "certificate could not be verified" in message
    assert "correct horse battery" not in message
    seen = impostor_server["seen"]
    assert seen["ssl_requests"] >= 1
    assert seen["completed_handshakes"] == 0   # the client refused the certificate
    assert seen["plain_startups"] == 0         # and never fell back to plain text


def test_missing_ca_bundle_is_named(impostor_server, tmp_path: Path):
    port = impostor_server["port"]
    missing = tmp_path / "global-bundle.pem"
    url = (f"postgresql://localhost:{port}/getmeds?sslmode=verify-full"
           f"&sslrootcert={missing}&connect_timeout=5")
    target = DatabaseTarget(url=url, profile="pharmacy", label="Pharmacy server")
    with pytest.raises(DatabaseUnavailable, match="CA certificate file that was not found"):
        Connector().sign_in(target, "pat", "correct horse battery")
    assert impostor_server["seen"]["plain_startups"] == 0


@pytest.fixture
def plain_server() -> Iterator[dict]:
    """A server that answers the SSLRequest with 'N' (no TLS here) and counts
    any start-up message a client then sends in clear."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    seen = {"ssl_requests": 0, "plain_startups": 0}
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    while data := conn.recv(8):
                        if data == SSL_REQUEST:
                            seen["ssl_requests"] += 1
                            conn.sendall(b"N")
                        else:
                            seen["plain_startups"] += 1
                            break
                except OSError:
                    continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield {"port": listener.getsockname()[1], "seen": seen}
    stop.set()
    listener.close()
    thread.join(5)


def test_a_server_without_tls_is_refused_when_tls_is_required(plain_server):
    """A profile that requires TLS refuses a server that does not offer it,
    instead of sending the login in clear."""
    target = DatabaseTarget(
        url=f"postgresql://localhost:{plain_server['port']}/getmeds"
            "?sslmode=verify-full&connect_timeout=5",
        profile="pharmacy", label="Pharmacy server")
    with pytest.raises(DatabaseUnavailable, match="does not offer an encrypted connection"):
        Connector().sign_in(target, "pat", "correct horse battery")
    assert plain_server["seen"]["ssl_requests"] >= 1
    assert plain_server["seen"]["plain_startups"] == 0
