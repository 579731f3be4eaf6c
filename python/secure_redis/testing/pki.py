"""The throwaway PKI: a test CA with server and client certificates, broken ones on purpose.

``make_test_pki(folder)`` writes a CA, server and client certificates plus deliberately
broken ones (expired, wrong host name, signed by an unknown CA) and returns their paths as a
``TestPKI``; ``issue_certificate`` adds one more leaf later. Needs the ``cryptography``
package (``pip install secure_redis[testing]``), imported only when a certificate is made.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, cast

from .._private_file import write_private_file

if TYPE_CHECKING:  # cryptography is the testing extra's, imported where it is used
    from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

__all__ = ["TestPKI", "issue_certificate", "make_test_pki"]


@dataclass(frozen=True)
class TestPKI:
    folder: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    expired_server_cert: Path
    expired_server_key: Path
    wrong_host_server_cert: Path
    wrong_host_server_key: Path
    other_ca_cert: Path
    other_ca_key: Path
    other_ca_server_cert: Path
    other_ca_server_key: Path

    __test__ = False  # not a pytest test class


def make_test_pki(folder: str | os.PathLike[str], hostnames: Iterable[str] = ("localhost",)) -> TestPKI:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    now = _dt.datetime.now(_dt.timezone.utc)

    def new_key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    def write_key(key: ec.EllipticCurvePrivateKey, filename: str) -> Path:
        # 0600 from creation: a write then chmod left the key readable by others for a moment.
        return write_private_file(
            out / filename,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )

    def write_cert(cert: x509.Certificate, filename: str) -> Path:
        path = out / filename
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        path.chmod(0o644)
        return path

    def make_ca(common_name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = new_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(common_name))
            .issuer_name(name(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(days=1))
            .not_valid_after(now + _dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cert, key

    def make_leaf(
        ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
        common_name: str,
        sans: Iterable[str],
        client: bool,
        not_before: _dt.datetime,
        not_after: _dt.datetime,
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = new_key()
        alt_names: list[x509.GeneralName] = []
        for san in sans:
            try:
                alt_names.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                alt_names.append(x509.DNSName(san))
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(common_name))
            .issuer_name(ca[0].subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
                ),
                critical=False,
            )
        )
        if alt_names:
            builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        return builder.sign(ca[1], hashes.SHA256()), key

    valid_from, valid_to = now - _dt.timedelta(hours=1), now + _dt.timedelta(days=90)
    server_names = [*hostnames, "127.0.0.1", "::1"]

    ca = make_ca("secure_redis test CA")
    other_ca = make_ca("an unknown CA")
    server = make_leaf(ca, "redis", server_names, False, valid_from, valid_to)
    client = make_leaf(ca, "secure-redis-client", [], True, valid_from, valid_to)
    expired = make_leaf(
        ca, "redis", server_names, False, now - _dt.timedelta(days=30), now - _dt.timedelta(days=1)
    )
    wrong_host = make_leaf(ca, "elsewhere", ["elsewhere.example"], False, valid_from, valid_to)
    foreign = make_leaf(other_ca, "redis", server_names, False, valid_from, valid_to)

    return TestPKI(
        folder=out,
        ca_cert=write_cert(ca[0], "ca.crt"),
        ca_key=write_key(ca[1], "ca.key"),
        server_cert=write_cert(server[0], "server.crt"),
        server_key=write_key(server[1], "server.key"),
        client_cert=write_cert(client[0], "client.crt"),
        client_key=write_key(client[1], "client.key"),
        expired_server_cert=write_cert(expired[0], "expired-server.crt"),
        expired_server_key=write_key(expired[1], "expired-server.key"),
        wrong_host_server_cert=write_cert(wrong_host[0], "wrong-host-server.crt"),
        wrong_host_server_key=write_key(wrong_host[1], "wrong-host-server.key"),
        other_ca_cert=write_cert(other_ca[0], "other-ca.crt"),
        other_ca_key=write_key(other_ca[1], "other-ca.key"),
        other_ca_server_cert=write_cert(foreign[0], "other-ca-server.crt"),
        other_ca_server_key=write_key(foreign[1], "other-ca-server.key"),
    )


def issue_certificate(
    pki: TestPKI,
    name: str,
    *,
    client: bool = True,
    sans: Iterable[str] = (),
    not_before: _dt.datetime | None = None,
    not_after: _dt.datetime | None = None,
    ca_cert: Path | None = None,
    ca_key: Path | None = None,
) -> tuple[Path, Path]:
    """Issues one more leaf from the test CA (or another CA given by its files), e.g. an
    expired or not-yet-valid client certificate. Returns (certificate, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    now = _dt.datetime.now(_dt.timezone.utc)
    issuer_cert = x509.load_pem_x509_certificate((ca_cert or pki.ca_cert).read_bytes())
    # A CA key is a signing key; for any other kind (DH, X25519...) sign() raises TypeError.
    issuer_key = cast(
        "CertificateIssuerPrivateKeyTypes",
        serialization.load_pem_private_key((ca_key or pki.ca_key).read_bytes(), password=None),
    )
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - _dt.timedelta(hours=1))
        .not_valid_after(not_after or now + _dt.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
    )
    names: list[x509.GeneralName] = []
    for san in sans:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(san)))
        except ValueError:
            names.append(x509.DNSName(san))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    cert_path = pki.folder / f"{name}.crt"
    key_path = pki.folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_private_file(  # 0600 from creation, as in make_test_pki
        key_path,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    return cert_path, key_path
