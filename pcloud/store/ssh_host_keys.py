"""The SSH server's host keys, made at first start.

On-disk layout: `<data>/ssh/ssh_host_ed25519_key` and `<data>/ssh/ssh_host_ecdsa_key`, private
keys in OpenSSH's format (mode 0600, as sshd keeps them). Their public halves are derived when
asked; clients remember them, so a key is never replaced once made.

Ed25519 first, ECDSA P-256 for the few clients without it. No RSA key: every client of the last
decade speaks one of the two, and making an RSA key takes a second on a small board.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from pcloud.directory import ssh_fingerprint
from pcloud.store.durable import write_atomically

log = logging.getLogger(__name__)

KINDS = ("ed25519", "ecdsa")


def _generate(kind: str) -> ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class HostKey:
    private_openssh: bytes  # the private key file's content
    public_line: str  # "ssh-ed25519 AAAA…"

    @property
    def algorithm(self) -> str:
        return self.public_line.split()[0]

    @property
    def fingerprint(self) -> str:
        return ssh_fingerprint(self.public_line)


def _host_key(private_openssh: bytes) -> HostKey:
    private = serialization.load_ssh_private_key(private_openssh, password=None)
    public = private.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return HostKey(private_openssh, public.decode())


class SshHostKeys:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def ensure(self) -> list[HostKey]:
        """Every host key, each made when missing; Ed25519 first."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        keys = []
        for kind in KINDS:
            path = self.folder / f"ssh_host_{kind}_key"
            if not path.exists():
                private = _generate(kind).private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.OpenSSH,
                    serialization.NoEncryption(),
                )
                write_atomically(path, private, mode=0o600)
                key = _host_key(private)
                log.info("ssh host key created type=%s fingerprint=%s", kind, key.fingerprint)
            keys.append(_host_key(path.read_bytes()))
        return keys
