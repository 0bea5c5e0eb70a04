"""The MX: mail from other servers to hosted addresses (port 25).

Anyone may connect and send to hosted recipients; nobody may relay through it. No AUTH here:
users submit on the submission ports.
"""

from __future__ import annotations

import socket

from pcloud.listeners import Stop
from pcloud.services import Services
from pcloud.smtp.delivery import Handler
from pcloud.smtp.server import serve_smtp


async def serve(services: Services, sock: socket.socket) -> Stop:
    return await serve_smtp(services, sock, Handler(services), implicit_tls=False, auth=False)
