"""A node's TLS material: check a certificate and key, or make a request or a test CA.

``exchange init`` sets up TLS one of three ways, all here as functions of bytes in, bytes
out (the caller reads and writes the files):

- :func:`check_pair`: an existing certificate and key must be a pair, unexpired, and name
  the host of the node's ``public_url``;
- :func:`make_request`: a new key and a certificate signing request for the host, for the
  organisation's certificate authority to sign;
- :func:`make_test_ca`: a private certificate authority for a test deployment and a server
  certificate it signs for the host. The authority's private key is not kept: it signs this
  one certificate, and its certificate is the file peers and staff clients trust.

Keys are ECDSA P-256, unencrypted PEM (the node reads them at start, so the file's mode,
0600, protects them).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: How long a test deployment's authority and server certificate are valid.
TEST_VALIDITY: Final = timedelta(days=365)
#: Longest PEM file read (a certificate chain or a key).
MAX_PEM_LEN: Final = 256 * 1024

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TlsMaterialError(Exception):
    """The TLS material is not usable; the message says why in one sentence."""


@dataclass(frozen=True)
class ServerTls:
    """A server certificate (chain) and its key, and the test CA's certificate if one."""

    cert_pem: bytes
    key_pem: bytes = field(repr=False)
    ca_pem: bytes | None = None


def _ip(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _dns_matches(pattern: str, host: str) -> bool:
    """Whether a certificate's DNS name matches ``host`` (a wildcard covers one label)."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        label, _, rest = host.partition(".")
        return bool(label) and rest == pattern[2:]
    return pattern == host


def names_host(cert: x509.Certificate, host: str) -> bool:
    """Whether the certificate's subject alternative names cover ``host``."""
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    address = _ip(host)
    if address is not None:
        return address in names.get_values_for_type(x509.IPAddress)
    return any(_dns_matches(name, host) for name in names.get_values_for_type(x509.DNSName))


def _load_key(key_pem: bytes) -> object:
    try:
        return serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise TlsMaterialError(
            "is encrypted; the node needs the key unencrypted (it is written with mode 0600)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise TlsMaterialError("is not a PEM private key") from None


def _public_der(key: object) -> bytes:
    public = getattr(key, "public_key", None)
    if public is None:
        return b""
    result = public().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return bytes(result)


def load_bundle(pem: bytes, what: str) -> list[x509.Certificate]:
    """Return the certificates of a PEM file, or refuse naming it as ``what``."""
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise TlsMaterialError(f"{what} is not a PEM certificate file") from None


def check_pair(cert_pem: bytes, key_pem: bytes, host: str, now: datetime) -> None:
    """Refuse unless the first certificate and the key are a pair valid now for ``host``.

    The messages start after the option's name: the caller says which file (``--tls-cert
    server.crt is not ...``).
    """
    cert = load_bundle(cert_pem, "--tls-cert")[0]
    try:
        key = _load_key(key_pem)
    except TlsMaterialError as exc:
        raise TlsMaterialError(f"--tls-key {exc}") from None
    if _public_der(key) != _public_der(cert):
        raise TlsMaterialError("--tls-cert and --tls-key are not a pair")
    if cert.not_valid_after_utc <= now:
        raise TlsMaterialError("--tls-cert has expired")
    if not names_host(cert, host):
        raise TlsMaterialError(
            f"--tls-cert does not name {host}, the host of --public-url, among its subject "
            "alternative names"
        )


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _alt_name(host: str) -> x509.SubjectAlternativeName:
    address = _ip(host)
    general: x509.GeneralName = x509.DNSName(host) if address is None else x509.IPAddress(address)
    return x509.SubjectAlternativeName([general])


def _name(common_name: str) -> x509.Name:
    # A common name holds at most 64 characters; the alternative name carries the host.
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])


def make_request(host: str) -> tuple[bytes, bytes]:
    """Return a new key and a certificate signing request for ``host`` (both PEM)."""
    key = _new_key()
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(host))
        .add_extension(_alt_name(host), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _key_pem(key), request.public_bytes(serialization.Encoding.PEM)


def make_test_ca(host: str, now: datetime) -> ServerTls:
    """Return a test CA's certificate and a server certificate and key it signed for ``host``."""
    ca_key = _new_key()
    ca_name = _name(f"test CA {host}")
    start, end = now - timedelta(minutes=5), now + TEST_VALIDITY
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    server_key = _new_key()
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(_alt_name(host), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return ServerTls(
        cert_pem=server_cert.public_bytes(pem),
        key_pem=_key_pem(server_key),
        ca_pem=ca_cert.public_bytes(pem),
    )
