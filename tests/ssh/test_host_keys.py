"""Host keys: made at first start, private to the server, the same after a restart."""

from __future__ import annotations

import stat
from pathlib import Path

from pcloud.store.ssh_host_keys import SshHostKeys
from pcloud.testing import running_server
from tests.ssh.conftest import ADMIN, Account, connect, new_key


async def test_host_keys_are_made_once_and_kept(tmp_path: Path) -> None:
    key, path = new_key(tmp_path, "admin")
    seen = []
    for start in range(2):
        with running_server(tmp_path / "data") as server:
            if start == 0:
                server.services.directory.add_ssh_key(ADMIN, key.export_public_key().decode())
            async with connect(server, Account(ADMIN, key, path)) as conn:
                seen.append(conn.get_server_host_key().get_fingerprint())
    folder = tmp_path / "data" / "ssh"
    assert seen == [SshHostKeys(folder).ensure()[0].fingerprint] * 2
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["ssh_host_ecdsa_key", "ssh_host_ed25519_key"]
    for name in files:
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
        assert (folder / name).read_bytes().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
