"""Resolve a table's ``image`` reference to bytes: a file, an archive member or a Kaggle CSV row.

Reading one member of a .tar.gz means decompressing everything before it, so the first
member read from an archive unpacks it once into the user cache (atomically, keyed by the
archive's path, size and mtime) and every later read is a plain file read.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path

from PIL import Image

from facekit.data.kaggle import row_png
from facekit.cache import cache_dir
from facekit.errors import first_line
from facekit.data.table import DatasetError
from facekit.data.utkface import MEMBER_SEP, is_archive, safe_members
from facekit.vision.io import ImageError, load_image


def extracted_archive(archive: os.PathLike | str) -> Path:
    """The folder holding ``archive`` unpacked under the cache; unpacks it the first time only."""
    archive = Path(archive)
    try:
        stat = archive.stat()
    except OSError as error:
        raise ImageError(f"cannot open archive {archive} ({error.strerror})") from None
    key = hashlib.sha1(f"{archive.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    stem = archive.name.split(".")[0]
    target = cache_dir() / "archives" / f"{stem}-{key}"
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{stem}-partial-", dir=target.parent))
    try:
        with tarfile.open(archive) as tar:
            for member in safe_members(tar, archive, []):  # each one bounded; unsafe ones left out
                tar.extract(member, partial, filter="data")
        partial.rename(target)  # atomic: a reader never sees a half-unpacked folder
    except DatasetError as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise ImageError(str(error)) from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        shutil.rmtree(partial, ignore_errors=True)
        if target.is_dir():  # another process finished first
            return target
        raise ImageError(f"cannot unpack {archive} ({first_line(error)})") from None
    return target


def _archive_member(archive: str, member: str) -> bytes:
    root = extracted_archive(archive).resolve()
    path = (root / member).resolve()
    if root not in path.parents:
        raise ImageError(f"{member!r} points outside the archive")
    if not path.is_file():
        raise ImageError(f"no member {member!r} in {archive}")
    return path.read_bytes()


def read_image_bytes(ref: str) -> bytes:
    """The encoded image behind a table's ``image`` reference (JPEG from files and archives, PNG from CSV rows)."""
    container, sep, member = str(ref).partition(MEMBER_SEP)
    if not sep:
        path = Path(ref)
        if not path.is_file():
            raise ImageError(f"no such file: {path}")
        return path.read_bytes()
    if is_archive(Path(container)):
        return _archive_member(container, member)
    if container.lower().endswith(".csv"):
        return row_png(container, member)
    raise ImageError(f"not an image reference: {ref!r}")


def open_image(ref: str) -> Image.Image:
    """The image behind a reference, decoded to upright RGB by ``facekit.vision.io.load_image``."""
    return load_image(read_image_bytes(ref))
