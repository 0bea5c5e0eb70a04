"""Throttling of failed logins, per remote address and per login.

Every attempt counts as a failure until it succeeds, so that parallel attempts cannot slip past
the limit while their passwords are being checked. After `delay_after_failures` failures each
failure is answered after a delay that doubles each time; after the lock-out count every attempt
is refused unchecked for `lockout_minutes`. Failures older than that are forgotten.

IPv6 addresses count per /64, the block a single host usually holds. The tables are bounded: the
oldest entries go first. The state lives in memory, as in most mail servers: a restart forgets it.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from pcloud.config import LoginSection

MAX_ENTRIES = 100_000


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


def address_key(remote: str) -> str:
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote
    if address.version == 6 and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class _FailureTable:
    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.entries: OrderedDict[str, _Failures] = OrderedDict()

    def count(self, key: str) -> int:
        entry = self.entries.get(key)
        if entry is None:
            return 0
        if self.clock() - entry.last > self.window:
            del self.entries[key]
            return 0
        return entry.count

    def add(self, key: str) -> int:
        count = self.count(key) + 1
        self.entries[key] = _Failures(count, self.clock())
        self.entries.move_to_end(key)
        while len(self.entries) > MAX_ENTRIES:
            self.entries.popitem(last=False)
        return count

    def clear(self, key: str) -> None:
        self.entries.pop(key, None)


class Throttle:
    def __init__(self, policy: LoginSection, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        window = policy.lockout_minutes * 60.0
        self.by_address = _FailureTable(policy.address_lockout_failures, window, clock)
        self.by_login = _FailureTable(policy.login_lockout_failures, window, clock)

    def locked(self, remote: str, login: str) -> bool:
        return any(
            table.count(key) >= table.limit
            for table, key in ((self.by_address, address_key(remote)), (self.by_login, login))
        )

    def attempt(self, remote: str, login: str) -> None:
        self.by_address.add(address_key(remote))
        self.by_login.add(login)

    def succeeded(self, remote: str, login: str) -> None:
        self.by_address.clear(address_key(remote))
        self.by_login.clear(login)

    def failure_delay(self, remote: str, login: str) -> float:
        """Seconds to wait before answering the failure just counted."""
        failures = max(self.by_address.count(address_key(remote)), self.by_login.count(login))
        beyond = failures - self.policy.delay_after_failures
        if beyond <= 0:
            return 0.0
        doubled: int = self.policy.first_delay_ms * 2 ** min(beyond - 1, 30)
        return min(doubled, self.policy.max_delay_ms) / 1000.0
