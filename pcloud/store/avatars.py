"""Avatars: one picture per address, and one per domain for its addresses that have none.

On-disk layout (`<data>/avatars/`):
    addresses/<address>.png   an address's own picture, e.g. addresses/alice@example.org.png
    domains/<domain>.png      the fallback of every address of that domain without its own

Every picture is re-encoded here before it is written (atomically): an upload in PNG, JPEG, GIF
or WebP is checked against a byte and a pixel bound, decoded (the first frame of an animation,
turned upright by its EXIF orientation), cropped to its centred square, scaled down to at most
STORED_SIZE pixels (no client is served larger) and written as PNG. What is stored is therefore
always a plain square PNG that Pillow wrote, whatever came in.

Lookup by hash (Libravatar, Gravatar): the MD5 or SHA-256 hex of the lower-cased address. The
hash-to-address map is kept in memory, built from the file names in addresses/ and from the
directory's users and aliases (so that an address without a picture of its own still finds its
domain's); it is rebuilt whenever a hash is not in it, so a picture set, or a user or alias
added, while the server runs is found at once, at the cost of one directory read per unknown
hash. A hash of an address the directory does not list (one reached only through a catch-all)
cannot be told apart from a stranger's and gets no picture.

Resized renditions are kept in a bounded in-memory LRU (RenditionCache), keyed by the stored
file's identity (inode, mtime, size): a picture replaced by `pcloud avatar set` is never served
stale, nothing is written to disk on a GET, and what a restart loses is a few milliseconds of
resizing each.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import warnings
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from pcloud.directory import Directory, DirectoryError, InvalidValue
from pcloud.directory.addresses import AddressError, domain_of, normalize_address, normalize_domain
from pcloud.store.durable import fsync_folder, write_atomically

log = logging.getLogger(__name__)

FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
MAX_UPLOAD_BYTES = 10 * 1024 * 1024
# Checked from the header, before anything is decoded. Pillow's own guard (Image.MAX_IMAGE_PIXELS,
# about 89 M pixels, a warning above it and an error above twice that) is left as Pillow sets it;
# its warning is turned into a refusal too, in case a format reports its size late.
MAX_PIXELS = 40_000_000
STORED_SIZE = 512
SIZES = range(1, STORED_SIZE + 1)
CACHE_BYTES = 32 * 1024 * 1024


class InvalidImage(InvalidValue):
    """The file given is not a picture this store accepts; the message says why."""


@dataclass(frozen=True)
class Rendition:
    data: bytes  # PNG
    etag: str  # a strong entity tag (unquoted): changes whenever the bytes do


def rendition(png: bytes) -> Rendition:
    return Rendition(png, hashlib.sha256(png).hexdigest()[:24])


class RenditionCache:
    """A least-recently-used map bounded by the bytes it holds; safe to share between threads."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, Rendition] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Rendition | None:
        with self._lock:
            rendition = self._entries.get(key)
            if rendition is not None:
                self._entries.move_to_end(key)
            return rendition

    def put(self, key: Hashable, rendition: Rendition) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            self._bytes -= len(old.data) if old else 0
            self._entries[key] = rendition
            self._bytes += len(rendition.data)
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped.data)


def owner_name(owner: str) -> str:
    """`Alice@Example.org` -> `alice@example.org`; `@Example.org` -> `@example.org` (a domain's
    fallback, written as aliases write a catch-all)."""
    try:
        if owner.strip().startswith("@"):
            return "@" + normalize_domain(owner.strip()[1:])
        return normalize_address(owner)
    except AddressError as error:
        raise InvalidValue(str(error)) from None


def hashes(address: str) -> tuple[str, str]:
    """The MD5 and SHA-256 hex digests Libravatar clients ask for."""
    data = address.strip().lower().encode()
    return hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def normalize_image(data: bytes) -> bytes:
    """An upload as the square PNG this store keeps; InvalidImage when it is not acceptable."""
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidImage(
            f"the file is larger than {MAX_UPLOAD_BYTES // 2**20} MiB, an avatar's limit"
        )
    try:
        # The filter is process-wide while it lasts (catch_warnings is not per thread); it only
        # ever turns Pillow's bomb warning into an error, and uploads are rare.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise InvalidImage(
                        f"the picture is {width}x{height} pixels; an avatar may have at most "
                        f"{MAX_PIXELS:,} pixels"
                    )
                # JPEG can decode at 1/2 to 1/8 scale: far less memory for a large photo.
                image.draft("RGB", (STORED_SIZE, STORED_SIZE))
                image.load()  # the first frame only, for an animation
                upright = ImageOps.exif_transpose(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage(
            f"the picture declares too many pixels; an avatar may have at most {MAX_PIXELS:,}"
        ) from None
    except InvalidImage:
        raise
    except UnidentifiedImageError:
        raise InvalidImage(f"the file is not a picture in one of {', '.join(FORMATS)}") from None
    except Exception as error:  # Pillow's decoders raise many kinds for a damaged file
        raise InvalidImage(f"the picture cannot be read: {error}") from None
    transparent = upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info
    square = ImageOps.fit(
        upright.convert("RGBA" if transparent else "RGB"),
        (side := min(*upright.size, STORED_SIZE), side),
        Image.Resampling.LANCZOS,
    )
    return encode_png(square)


class AvatarStore:
    """The pictures of `<data>/avatars/`; methods block (file I/O, Pillow), so the event loop
    calls them from worker threads."""

    def __init__(self, folder: Path, directory: Directory) -> None:
        self.folder = folder
        self.directory = directory
        self.cache = RenditionCache()
        self._index: dict[str, str] = {}  # hash -> address
        self._index_lock = threading.Lock()

    def _path(self, owner: str) -> Path:
        if owner.startswith("@"):
            return self.folder / "domains" / f"{owner[1:]}.png"
        return self.folder / "addresses" / f"{owner}.png"

    # -- changes -------------------------------------------------------------------------------

    def set(self, owner: str, data: bytes) -> str:
        """Store the picture of an address (a user or an alias) or of "@domain" (a hosted one);
        returns the owner as stored. InvalidImage for a file that is not acceptable."""
        owner = owner_name(owner)
        domain = owner[1:] if owner.startswith("@") else domain_of(owner)
        if domain not in self.directory.domains():
            raise DirectoryError(f"domain {domain} is not hosted here")
        if not owner.startswith("@") and not (
            self.directory.user(owner) or owner in self.directory.aliases()
        ):
            raise DirectoryError(f"{owner} is neither a user nor an alias here")
        png = normalize_image(data)
        path = self._path(owner)
        for folder in (self.folder, path.parent):
            folder.mkdir(mode=0o700, exist_ok=True)
        write_atomically(path, png)
        log.info("avatar set owner=%s bytes=%d", owner, len(png))
        return owner

    def delete(self, owner: str) -> str:
        owner = owner_name(owner)
        path = self._path(owner)
        try:
            path.unlink()
        except FileNotFoundError:
            raise DirectoryError(f"{owner} has no avatar") from None
        fsync_folder(path.parent)
        log.info("avatar deleted owner=%s", owner)
        return owner

    def owners(self) -> list[str]:
        """Every address and "@domain" with a picture, addresses first."""
        found = []
        for kind, prefix in (("addresses", ""), ("domains", "@")):
            folder = self.folder / kind
            if folder.is_dir():
                found += sorted(prefix + p.name[:-4] for p in folder.glob("*.png"))
        return found

    # -- reading -------------------------------------------------------------------------------

    def cached(self, digest: str, size: int) -> Rendition | None:
        """lookup()'s answer when it is in memory already (this picture was served before at
        this size), else None. It costs a stat or two and reads no file, so the event loop
        calls it itself, and goes to a worker thread for lookup() only when it returns None."""
        with self._index_lock:
            address = self._index.get(digest.lower())
        return None if address is None else self._find(address, size, render=False)

    def lookup(self, digest: str, size: int) -> Rendition | None:
        """The picture for an MD5 or SHA-256 hex digest of an address, `size` pixels square;
        None when there is none (not an address here, and no domain fallback)."""
        digest = digest.lower()
        with self._index_lock:
            address = self._index.get(digest)
        if address is None:
            index = self._build_index()
            with self._index_lock:
                self._index = index
            address = index.get(digest)
        return None if address is None else self._find(address, size, render=True)

    def for_address(self, address: str, size: int) -> Rendition | None:
        """An address's own picture, else its domain's, `size` pixels square; None if neither."""
        return self._find(owner_name(address), size, render=True)  # never a path of other shape

    def _find(self, address: str, size: int, *, render: bool) -> Rendition | None:
        if size not in SIZES:
            raise ValueError(f"size {size} is not within 1-{STORED_SIZE}")
        for owner in (address, "@" + domain_of(address)):
            path = self._path(owner)
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            key = (owner, stat.st_ino, stat.st_mtime_ns, stat.st_size, size)
            rendition = self.cache.get(key)
            if rendition is None and render:
                try:
                    rendition = self._render(path.read_bytes(), size)
                except FileNotFoundError:  # deleted since the stat
                    continue
                self.cache.put(key, rendition)
            return rendition
        return None

    def _render(self, stored: bytes, size: int) -> Rendition:
        with Image.open(io.BytesIO(stored), formats=["PNG"]) as image:
            if image.size == (size, size):
                return rendition(stored)
            return rendition(encode_png(image.resize((size, size), Image.Resampling.LANCZOS)))

    def _build_index(self) -> dict[str, str]:
        addresses = {owner for owner in self.owners() if not owner.startswith("@")}
        addresses.update(user.address for user in self.directory.users())
        addresses.update(a for a in self.directory.aliases() if not a.startswith("@"))
        index = {}
        for address in addresses:
            for digest in hashes(address):
                index[digest] = address
        return index
