"""Client paths made safe: the one gate between what a protocol received and the user's tree.

Every protocol (WebDAV, SFTP/SCP, XMPP upload) hands the store the path its client sent, as
text or bytes; `safe_path` turns it into a normalised relative path ("" for the root, else
"a/b/c") or raises `PathRefused`. The rules:
- "/" separates names; a leading "/" means the user's root, "." and empty names are dropped.
- Refused: "..", NUL and other control characters, backslashes (a Windows client means a
  separator by it, a Linux one a letter: refusing it is the only reading that surprises nobody),
  bytes that are not UTF-8, names over 255 bytes, paths over 3,000 bytes (so that the absolute
  path stays under the kernel's 4,096 with the data folder in front), and more than 64 levels.
- Unicode: names are normalised to NFC (macOS sends NFD), so "é" typed on any system is one
  name. Names whose compatibility form (NFKC) is "." or ".." (U+FF0E twice, U+2025), or holds
  a slash (U+FF0F), are refused, for the sake of any client or tool that folds them.
- Case: the tree is case-sensitive, as the file system under it, and a name is looked up
  exactly. Case-insensitive clients (Windows, macOS) stay safe because a folder never holds two
  names that differ only in case: the store refuses to create the second (see `folded`).
Symlinks are the tree's business, not the text's: the store never creates them and never follows
one (see tree.py).
"""

from __future__ import annotations

import unicodedata

from pcloud.store.files.values import PathRefused

MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 3000
MAX_DEPTH = 64


def safe_path(client_path: str | bytes) -> str:
    if isinstance(client_path, bytes):
        try:
            client_path = client_path.decode("utf-8")
        except UnicodeDecodeError:
            raise PathRefused("the path is not UTF-8") from None
    if "\\" in client_path:
        raise PathRefused("backslashes are not allowed in paths")
    names = []
    for name in client_path.split("/"):
        if name in ("", "."):
            continue
        names.append(safe_name(name))
    path = "/".join(names)
    if len(names) > MAX_DEPTH:
        raise PathRefused(f"more than {MAX_DEPTH} levels of folders")
    if len(path.encode()) > MAX_PATH_BYTES:
        raise PathRefused(f"the path is longer than {MAX_PATH_BYTES} bytes")
    return path


def safe_name(name: str) -> str:
    """One name (no "/"), NFC-normalised, or PathRefused."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise PathRefused("control characters (NUL, newline…) are not allowed in names")
    if "/" in name or "\\" in name:
        raise PathRefused("a name cannot hold a slash or a backslash")
    name = unicodedata.normalize("NFC", name)
    compatible = unicodedata.normalize("NFKC", name)
    if name in ("", ".", "..") or compatible in (".", ".."):
        raise PathRefused(f"{name!r} is not a name")
    if "/" in compatible or "\\" in compatible:
        raise PathRefused("a name cannot hold a character that folds to a slash")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise PathRefused(f"a name is longer than {MAX_NAME_BYTES} bytes")
    return name


def folded(path: str) -> str:
    """The key under which two paths are the same for a case-insensitive client."""
    return unicodedata.normalize("NFC", path.casefold())


def join(*parts: str) -> str:
    return "/".join(part for part in parts if part)


def parent_of(path: str) -> str:
    return path.rpartition("/")[0]


def name_of(path: str) -> str:
    return path.rpartition("/")[2]


def is_within(path: str, folder: str) -> bool:
    """True when `path` is `folder` or inside it ("" is the root, holding everything)."""
    return not folder or path == folder or path.startswith(folder + "/")
