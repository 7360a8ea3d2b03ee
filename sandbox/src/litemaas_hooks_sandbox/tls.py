"""Certificates for a TLS-enabled sandbox PostgreSQL (tests): a CA and a server certificate.

``make_server_tls(directory)`` writes ``ca.pem``, ``server.pem`` and ``server.key`` (the key
readable by the OS user the server runs as only, as PostgreSQL demands) and returns their paths;
``ServerTls.postgres_settings()`` turns TLS on with them (``LocalPostgres(settings=...)``). The
server certificate names ``localhost`` and ``127.0.0.1``; ``make_ca`` alone gives a second,
unrelated CA for the "wrong certificate" case.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class ServerTls:
    ca: Path
    cert: Path
    key: Path

    def postgres_settings(self) -> dict[str, str | int]:
        return {"ssl": "on", "ssl_cert_file": f"'{self.cert}'", "ssl_key_file": f"'{self.key}'"}


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(
    path: Path, common_name: str = "litemaas-hooks test CA"
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA certificate written to ``path`` (PEM); returns its key and certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert


def make_server_tls(directory: Path, *, owner: str | None = None) -> ServerTls:
    """CA + server certificate for ``localhost``/``127.0.0.1`` in ``directory``; the key file is
    made private to ``owner`` (default: ``postgres`` when this process is root, else this user)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = make_ca(directory / "ca.pem")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_path, 0o600)
    user = owner or ("postgres" if os.geteuid() == 0 else None)
    if user is not None:
        account = pwd.getpwnam(user)
        for path in (directory, cert_path, key_path, directory / "ca.pem"):
            os.chown(path, account.pw_uid, account.pw_gid)
    return ServerTls(ca=directory / "ca.pem", cert=cert_path, key=key_path)
