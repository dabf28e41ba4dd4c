"""TLS material for the simulator: a throw-away CA, a server certificate for 127.0.0.1 and localhost, and
client certificates for CertificateCredential.

Keys are made once per process and cached: RSA key generation costs tens of milliseconds and a test run
starts many servers. Nothing here is secret; it is loopback test material.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE_NAME = "ca.pem"
SERVER_CERT_FILE_NAME = "server.pem"
SERVER_KEY_FILE_NAME = "server-key.pem"
# Long enough for a standalone server left running, short enough to look like a real leaf certificate.
_VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class ServerTlsFiles:
    """Where one server's TLS material was written."""

    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass(frozen=True)
class ClientCertificate:
    """A client certificate for CertificateCredential, written in every form azure-identity reads.

    `certificate_pem` (the public part only) is what a Simulator is given to register the certificate.
    """

    certificate_pem: bytes
    pem_file: Path  # private key + certificate, unencrypted
    pfx_file: Path  # PKCS#12 without a password
    password_pfx_file: Path  # PKCS#12 protected by `password`
    password: str


@dataclass(frozen=True)
class _Authority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "securescore-fetcher simulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _validity() -> tuple[datetime.datetime, datetime.datetime]:
    # Backdated a day so clocks that disagree a little still accept the certificate.
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(days=1), now + _VALIDITY


@functools.cache
def _authority() -> _Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("securescore-fetcher simulator CA")
    not_before, not_after = _validity()
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Authority(key, certificate)


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _server_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=True,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


@functools.cache
def _server_pem() -> tuple[bytes, bytes]:
    """The server certificate and key as PEM, signed by the process CA."""
    authority = _authority()
    key = ec.generate_private_key(ec.SECP256R1())
    not_before, not_after = _validity()
    names = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_server_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()), critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM), _private_pem(key)


def _private_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def ca_pem() -> bytes:
    """The PEM of the CA that signs every simulator server certificate in this process."""
    return _authority().certificate.public_bytes(serialization.Encoding.PEM)


def write_server_tls(directory: Path) -> ServerTlsFiles:
    """Write the CA, the server certificate and its key into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_pem, key_pem = _server_pem()
    files = ServerTlsFiles(
        ca_file=directory / CA_FILE_NAME,
        cert_file=directory / SERVER_CERT_FILE_NAME,
        key_file=directory / SERVER_KEY_FILE_NAME,
    )
    files.ca_file.write_bytes(ca_pem())
    files.cert_file.write_bytes(cert_pem)
    files.key_file.write_bytes(key_pem)
    files.key_file.chmod(0o600)
    return files


def server_ssl_context(files: ServerTlsFiles) -> ssl.SSLContext:
    """A server context that speaks TLS 1.2 or newer only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert_file, files.key_file)
    return context


def client_ssl_context(ca_file: Path) -> ssl.SSLContext:
    """A client context that trusts the simulator's CA (and verifies host names as usual)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


@functools.cache
def _client_material(common_name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    # azure-identity insists on an RSA key: it signs assertions with PS256 (RS256 for ADFS).
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    not_before, not_after = _validity()
    name = _name(common_name)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, certificate


def generate_client_certificate(
    directory: Path, *, password: str = "simulator-pfx-password", common_name: str = "securescore-fetcher"
) -> ClientCertificate:
    """Write a client certificate as PEM (key + cert), PFX, and password-protected PFX into `directory`.

    The same `common_name` gives the same key within a process; use another name for a second,
    unregistered certificate.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key, certificate = _client_material(common_name)
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
    stem = common_name.replace(" ", "-")
    result = ClientCertificate(
        certificate_pem=certificate_pem,
        pem_file=directory / f"{stem}.pem",
        pfx_file=directory / f"{stem}.pfx",
        password_pfx_file=directory / f"{stem}-password.pfx",
        password=password,
    )
    result.pem_file.write_bytes(_private_pem(key) + certificate_pem)
    result.pfx_file.write_bytes(_pfx(key, certificate, None))
    result.password_pfx_file.write_bytes(_pfx(key, certificate, password.encode()))
    return result


def _pfx(key: rsa.RSAPrivateKey, certificate: x509.Certificate, password: bytes | None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return pkcs12.serialize_key_and_certificates(b"securescore-fetcher", key, certificate, None, encryption)
