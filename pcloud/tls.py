"""Server certificates and TLS contexts.

On-disk layout (`<data>/tls/`):
    ca.pem, ca.key          the local certificate authority (10 years); clients that should
                            trust this server without a public certificate import ca.pem
    server.pem, server.key  the server certificate issued by that CA

The server certificate names every hosted domain, its `mail.`, `autoconfig.` and `autodiscover.`
names, localhost, 127.0.0.1 and ::1. It is issued again when that set of names changes or when
it has less than 30 days left, at start and on reload (SIGHUP). When the config names a certificate
issued elsewhere, that one is used instead and nothing is generated.

Keys are ECDSA P-256: quick to make and to use on a small machine, and accepted by every client.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from pcloud.config import TlsSection
from pcloud.store.durable import write_atomically

log = logging.getLogger(__name__)

CA_DAYS = 3650
# Apple platforms refuse server certificates valid for longer than 825 days.
SERVER_DAYS = 397
RENEW_BEFORE = datetime.timedelta(days=30)
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


def certificate_names(domains: Iterable[str]) -> list[str]:
    names: list[str] = []
    for domain in sorted(domains):
        names += [domain, f"mail.{domain}", f"autoconfig.{domain}", f"autodiscover.{domain}"]
    return list(dict.fromkeys([*names, *LOCAL_NAMES]))


@dataclass(frozen=True)
class CertificateInfo:
    path: Path
    names: tuple[str, ...]
    not_after: datetime.datetime

    @property
    def days_left(self) -> int:
        return (self.not_after - datetime.datetime.now(datetime.UTC)).days


def read_certificate(path: Path) -> CertificateInfo:
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return CertificateInfo(path, _subject_names(certificate), certificate.not_valid_after_utc)


def fingerprint(path: Path) -> str:
    """SHA-256 fingerprint of a PEM certificate as devices show it (AB:CD:…)."""
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def server_end_point(pem: bytes) -> bytes:
    """The `tls-server-end-point` channel binding of the server certificate (the first in a PEM
    chain): its hash with the algorithm it was signed with, SHA-256 in place of MD5 and SHA-1
    (RFC 5929 §4.1), and SHA-256 for certificates whose signature names no hash (Ed25519)."""
    certificate = x509.load_pem_x509_certificate(pem)
    algorithm = certificate.signature_hash_algorithm
    if algorithm is None or isinstance(algorithm, hashes.MD5 | hashes.SHA1):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(certificate.public_bytes(serialization.Encoding.DER))
    return digest.finalize()


def _subject_names(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    dns = san.get_values_for_type(x509.DNSName)
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return tuple(dns + ips)


def certificate_file(folder: Path, settings: TlsSection) -> Path:
    """The certificate served: one issued elsewhere when configured, else the local CA's."""
    return Path(settings.certificate) if settings.certificate else folder / "server.pem"


class Tls:
    """The server's certificate and the one SSL context every TLS listener shares.

    `reload()` loads the certificate again into the same context, so listeners pick up a new
    certificate for new connections without being restarted.
    """

    def __init__(self, folder: Path, settings: TlsSection, domains: Iterable[str]) -> None:
        self.folder = folder
        self.settings = settings
        self.ca_file = folder / "ca.pem"
        self.server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.reload(domains)

    @property
    def certificate_file(self) -> Path:
        return certificate_file(self.folder, self.settings)

    @property
    def key_file(self) -> Path:
        if self.settings.private_key:
            return Path(self.settings.private_key)
        return self.folder / "server.key"

    def reload(self, domains: Iterable[str]) -> None:
        if not self.settings.certificate:
            ensure_local_certificates(self.folder, certificate_names(domains))
        self.server_context.load_cert_chain(self.certificate_file, self.key_file)
        # Read with the context: a connection whose handshake used the certificate before a
        # reload and signs in after it fails its channel binding once (and may log in again).
        self.server_end_point = server_end_point(self.certificate_file.read_bytes())
        log.info("certificate loaded file=%s", self.certificate_file)

    def info(self) -> CertificateInfo:
        return read_certificate(self.certificate_file)


def ensure_local_certificates(folder: Path, names: list[str]) -> None:
    """Create the local CA once, and (re)issue the server certificate when it is due."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca_cert_file, ca_key_file = folder / "ca.pem", folder / "ca.key"
    if not ca_cert_file.exists():
        _write_ca(ca_cert_file, ca_key_file)
    server_file, key_file = folder / "server.pem", folder / "server.key"
    if server_file.exists() and key_file.exists() and _pair_matches(server_file, key_file):
        current = read_certificate(server_file)
        now = datetime.datetime.now(datetime.UTC)
        if set(current.names) == set(names) and current.not_after - now > RENEW_BEFORE:
            return
    _write_server_certificate(ca_cert_file, ca_key_file, folder, names)


def _pair_matches(cert_file: Path, key_file: Path) -> bool:
    """False when a crash came between writing a new key and its certificate."""
    certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    return bool(certificate.public_key() == key.public_key())


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_atomically(path, pem, mode=0o600)


def _write_ca(cert_file: Path, key_file: Path) -> None:
    key = _new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pcloud"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"pcloud local CA {os.urandom(4).hex()}"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_file, key)
    write_atomically(cert_file, certificate.public_bytes(serialization.Encoding.PEM), mode=0o644)
    log.info("local certificate authority created file=%s", cert_file)


def _write_server_certificate(
    ca_cert_file: Path, ca_key_file: Path, folder: Path, names: list[str]
) -> None:
    ca_certificate = x509.load_pem_x509_certificate(ca_cert_file.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_file.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _new_key()
    alternative_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alternative_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative_names.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(folder / "server.key", key)
    write_atomically(
        folder / "server.pem", certificate.public_bytes(serialization.Encoding.PEM), mode=0o644
    )
    log.info("server certificate issued names=%s days=%d", ",".join(names), SERVER_DAYS)
