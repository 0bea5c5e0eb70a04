"""Open connections counted per key, for the listeners' limits (connections per remote address,
signed-in connections per user): one count shared by the listeners of a service, held by the
serving process only, so a restart starts from zero."""

from __future__ import annotations

from collections import Counter

from pcloud.directory.throttle import address_key


class ConnectionCounts:
    def __init__(self) -> None:
        self._open: Counter[str] = Counter()

    def admit(self, key: str, limit: int) -> bool:
        """Count one more connection under `key`, unless `limit` are open already."""
        if self._open[key] >= limit:
            return False
        self._open[key] += 1
        return True

    def release(self, key: str) -> None:
        """One connection admitted under `key` ended."""
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]

    def admit_address(self, remote: str, limit: int) -> str | None:
        """Admit a connection from a remote IP address (IPv6: counted per /64, as the login
        throttle counts); returns the key to release it with, None when refused."""
        key = address_key(remote)
        return key if self.admit(key, limit) else None
