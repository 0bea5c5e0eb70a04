"""FTPS (RFC 959 with RFC 4217's explicit TLS) over the file store, through pyftpdlib.

Implementation notes:
- Off by default (`[listeners.ftps] enabled = true` opens it). pyftpdlib and pyOpenSSL (its TLS
  is pyOpenSSL's) come with pcloud's `ftps` extra and are imported only when the listener is on.
- TLS is required: USER and PASS before AUTH TLS get 550; PASV, EPSV, PORT and EPRT before
  PBSZ 0 + PROT P get 550, and PROT C gets 534 (RFC 4217 §9), so that neither passwords nor
  files cross the network in clear. The certificate is the one `services.tls` serves (read
  again when its files change).
- Logins go through `directory.authenticate` (passwords and app passwords, with its throttling;
  a refusal is 530): a coroutine of the server's loop, called from pyftpdlib's threads.
- pyftpdlib runs its own I/O loop, so the listener has a thread of its own, and each connection
  one more (pyftpdlib's ThreadedFTPServer): store calls block, and a slow one holds up only its
  own client. The `Stop` that `serve` returns ends them all.
- `filesystem.py` maps pyftpdlib's file system calls to `UserFiles`: the user's tree is "/",
  the store checks every path. An upload (STOR, APPE, REST then STOR) is put in place only when
  its data connection ended with TLS's close_notify, else it is dropped (426) and the previous
  content stays; a quota refusal is 552.
- Passive data connections use `[ftps] passive_ports`, at the address the client reached.
- Not offered: STOU, SITE CHMOD, CCC (back to clear text), and a check that a data connection
  resumes the control connection's TLS session (a data connection must come from the client's
  own address instead).
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

from pcloud.supervisor import StartError

if TYPE_CHECKING:
    from pcloud.listeners import Stop
    from pcloud.services import Services


async def serve(services: Services, sock: socket.socket) -> Stop:
    try:
        from pcloud.ftps import server
    except ModuleNotFoundError as error:
        raise StartError(
            f"the ftps listener needs {error.name}, from pcloud's ftps extra (pip install "
            "'.[ftps]' in pcloud's checkout), or enabled = false in [listeners.ftps]"
        ) from None
    return await server.serve(services, sock)
