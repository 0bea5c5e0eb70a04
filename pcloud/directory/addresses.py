"""Mail addresses as the directory stores them: lower case `local@domain`.

Local parts are limited to the dot-atom letters that every mail system handles the same way
(letters, digits, `. _ + -`), with no leading, trailing or doubled dot. Quoted local parts, source
routes, `%` and `!` are refused here: the directory never holds an address that could be read
two ways.
"""

from __future__ import annotations

import re

from pcloud.config import is_domain_name

_LOCAL_PART = re.compile(r"^[a-z0-9_+-]+(\.[a-z0-9_+-]+)*$")


class AddressError(ValueError):
    pass


def normalize_domain(domain: str) -> str:
    name = domain.strip().lower()
    if not is_domain_name(name):
        raise AddressError(f"{domain!r} is not a valid domain name")
    return name


def normalize_address(address: str) -> str:
    """`Alice@Example.ORG` -> `alice@example.org`; AddressError when it is not a plain address."""
    text = address.strip().lower()
    local, at, domain = text.rpartition("@")
    if not at or not local or len(local) > 64 or not _LOCAL_PART.match(local):
        raise AddressError(f"{address!r} is not a valid mail address (name@domain)")
    if not is_domain_name(domain):
        raise AddressError(f"{address!r} is not a valid mail address: bad domain")
    return f"{local}@{domain}"


def domain_of(address: str) -> str:
    return address.rpartition("@")[2]
