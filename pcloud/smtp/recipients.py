"""Where mail for an address goes: the directory's users and aliases, plus SMTP's own rules.

- A bare `postmaster`, and every hosted domain's postmaster without a user or alias of that
  name, reach an administrator (RFC 5321 §4.5.1).
- Mail that an alias forwards to another server leaves with its sender rewritten (SRS, with
  srslib), so that the next server's SPF check sees this server's domain; a bounce to such an
  address goes back to the original sender.
"""

from __future__ import annotations

import srslib  # type: ignore[import-untyped]  # no type hints shipped

from pcloud.directory import Directory


class Recipients:
    def __init__(self, directory: Directory, srs_secret: str) -> None:
        self.directory = directory
        self.srs = srslib.SRS(srs_secret)

    def hosted(self, address: str) -> bool:
        return address.rpartition("@")[2].lower() in self.directory.domains()

    def is_srs(self, address: str) -> bool:
        # The name first: it needs no lookup, and few addresses are SRS ones.
        return "@" in address and bool(srslib.SRS.is_srs_address(address)) and self.hosted(address)

    def resolve(self, address: str) -> list[str] | None:
        """The final addresses, None when nothing here takes it (directory.InvalidValue when
        it is no plain address). Blocking: SQLite."""
        if "@" not in address and address.lower() == "postmaster":
            address = f"postmaster@{self.directory.default_domain}"
        if self.is_srs(address):
            try:
                return [str(self.srs.reverse(address))]
            except srslib.Error:
                return None
        targets = self.directory.resolve(address)
        if targets is None and self.hosted(address) and address.lower().startswith("postmaster@"):
            admins = [user.address for user in self.directory.users() if user.is_admin]
            return admins[:1] or None
        return targets

    def forwarding_sender(self, sender: str) -> str:
        """The SRS address that forwarded mail from `sender` leaves with ("" stays "")."""
        return str(self.srs.forward(sender, self.directory.default_domain)) if sender else ""
