"""DKIM signing keys, one per hosted domain (RFC 6376).

On-disk layout: `<data>/dkim/<domain>.pem`, an RSA 2048 private key (PKCS#1 PEM, mode 0600).
Its public half is published as `<selector>._domainkey.<domain>` TXT (see `pcloud dns`). RSA
rather than Ed25519: every receiver verifies RSA, while Ed25519 (RFC 8463) is not yet universal.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pcloud.config import is_domain_name
from pcloud.store.durable import write_atomically

log = logging.getLogger(__name__)

SELECTOR = "pcloud"


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    private_pem: bytes

    @property
    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def dns_value(self) -> str:
        key = serialization.load_pem_private_key(self.private_pem, password=None)
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


class DkimKeys:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, domain: str) -> Path:
        if not is_domain_name(domain):  # a name from a message must never become a path
            raise ValueError(f"not a domain name: {domain!r}")
        return self.folder / f"{domain}.pem"

    def get(self, domain: str) -> DkimKey | None:
        path = self._path(domain)
        if not path.exists():
            return None
        return DkimKey(domain, SELECTOR, path.read_bytes())

    def ensure(self, domain: str) -> DkimKey:
        """The domain's key, made on first use."""
        key = self.get(domain)
        if key is not None:
            return key
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        write_atomically(self._path(domain), pem, mode=0o600)
        log.info("dkim key created domain=%s selector=%s", domain, SELECTOR)
        return DkimKey(domain, SELECTOR, pem)
