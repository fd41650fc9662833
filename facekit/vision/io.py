"""Open any image safely: EXIF rotation, every mode to RGB, size limits, clear errors.

Everything that reads a photo (CLI, app, batch, readers) comes through ``load_image`` so a
bad file fails the same way everywhere: an ``ImageError`` whose message a person can act on.
"""
from __future__ import annotations

import io
import os
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, Iterable, Iterator, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facekit.errors import UserError

MAX_FILE_BYTES = 50 * 1024 * 1024  # 50 MB as Streamlit counts it (MiB), the app's upload limit
MB = 1024 * 1024  # messages count megabytes the way the uploader does
MAX_PIXELS = 60_000_000  # e.g. 9000x6600; larger images are refused before decoding
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")  # told apart here; read by facekit.serving.video
# The sample photo of the app and the tests: NASA's astronaut portrait (public domain),
# the same image as scikit-image's data.astronaut(), shipped so the app does not need skimage.
SAMPLE_PHOTO = Path(__file__).resolve().parents[1] / "assets" / "astronaut.jpg"

ImageSource = Union[str, os.PathLike, bytes, BinaryIO, Image.Image, np.ndarray]


class ImageError(UserError):
    """An input that is not a usable image; the message says why in plain words."""


def _read_bytes(source: ImageSource, max_bytes: int) -> bytes:
    if isinstance(source, bytes):
        data = source
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"no such file: {path}")
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageError(f"file is {size / MB:.1f} MB, over the {max_bytes / MB:.0f} MB limit")
        data = path.read_bytes()
    else:
        data = source.read(max_bytes + 1)
    if len(data) == 0:
        raise ImageError("empty file (0 bytes)")
    if len(data) > max_bytes:
        raise ImageError(f"file is over the {max_bytes / MB:.0f} MB limit")
    return data


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode as 8-bit RGB; transparency is composited on white, 16-bit is rescaled."""
    if image.mode == "RGB":
        return image
    if image.mode.startswith("I"):  # 16- or 32-bit integer grey, as 16-bit PNGs open
        array = np.asarray(image, dtype=np.float64)
        if array.size and array.max() > 255:
            array = array / 257.0
        return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8), mode="L").convert("RGB")
    if image.mode == "F":
        array = np.asarray(image, dtype=np.float64)
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        array = (array - low) / (high - low or 1.0) * 255.0
        return Image.fromarray(array.astype(np.uint8), mode="L").convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def load_image(
    source: ImageSource,
    *,
    max_bytes: int = MAX_FILE_BYTES,
    max_pixels: int = MAX_PIXELS,
) -> Image.Image:
    """Decode ``source`` (path, bytes, file object, PIL image or HxWx3 array) to upright RGB.

    The pixel count is checked from the header before decoding, so a decompression bomb
    is refused without allocating its pixels. Animated images give their first frame.
    """
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        if source.ndim == 2 or (source.ndim == 3 and source.shape[2] in (1, 3, 4)):
            image = Image.fromarray(np.ascontiguousarray(source).squeeze().astype(np.uint8))
        else:
            raise ImageError(f"array of shape {source.shape} is not an image")
    else:
        data = _read_bytes(source, max_bytes)
        try:
            with _pixel_limit(max_pixels):
                image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ImageError("not an image file (unknown or unsupported format)") from None
        except Image.DecompressionBombError:
            raise ImageError(f"image has too many pixels (limit {max_pixels / 1e6:.0f} MP)") from None
        except (OSError, SyntaxError, ValueError) as error:  # a known format whose header is broken
            raise ImageError(f"image data is corrupt or truncated ({error})") from None
        width, height = image.size
        if width * height > max_pixels:
            raise ImageError(
                f"image is {width}x{height} = {width * height / 1e6:.0f} MP, over the {max_pixels / 1e6:.0f} MP limit"
            )
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as error:
            raise ImageError(f"image data is corrupt or truncated ({error})") from None
    if image.width < 1 or image.height < 1:
        raise ImageError("image has no pixels")
    try:
        image = ImageOps.exif_transpose(image) or image
    except Exception:  # a broken EXIF block must not lose an otherwise readable photo
        pass
    return to_rgb(image)


class _pixel_limit:
    """Raise PIL's own bomb limit to ours for the duration of one open."""

    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = max_pixels

    def __enter__(self) -> None:
        self.previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = self.max_pixels

    def __exit__(self, *exc: object) -> None:
        Image.MAX_IMAGE_PIXELS = self.previous


def thumbnail_jpeg(source: ImageSource, side: int = 256) -> bytes:
    """A JPEG at most ``side`` pixels on its long side: what a gallery shows, decoded and checked here
    so a file that is not an image is an ``ImageError``, not a failure inside the page."""
    image = load_image(source)
    image.thumbnail((side, side))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def displayable(image: Image.Image, width: int = 1200) -> bool:
    """Whether ``image`` keeps at least a pixel on both sides when shown ``width`` pixels wide, or as tall:
    a 60000x1 strip does not, and an image widget refuses it."""
    w, h = image.size
    return min(w, h) * min(1.0, width / max(w, h)) >= 1


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def is_video_name(name: str) -> bool:
    return name.lower().endswith(VIDEO_SUFFIXES)


MAX_ZIP_MEMBERS = 10_000
MAX_ZIP_TOTAL_BYTES = 2 * 1024 * 1024 * 1024  # uncompressed, summed over members
MAX_ZIP_RATIO = 200  # a member that inflates more than this is treated as a zip bomb


@dataclass(frozen=True)
class InputItem:
    """One photo to read: a display name and how to get its bytes, or why it cannot be read."""

    name: str
    read: Callable[[], bytes] | None = None
    error: str = ""


def _zip_entry_count(source: Path | BinaryIO) -> int | None:
    """The entry count a ZIP's end record states, read before the central directory is parsed
    (a directory of a million entries costs memory to parse); None when there is no plain record."""
    handle = open(source, "rb") if isinstance(source, Path) else source
    try:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        tail_size = min(size, 22 + 65535)  # the end record and the longest comment it may have
        handle.seek(size - tail_size)
        tail = handle.read(tail_size)
    finally:
        if isinstance(source, Path):
            handle.close()
        else:
            handle.seek(0)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return None
    count = int.from_bytes(tail[at + 10:at + 12], "little")
    return None if count == 0xFFFF else count  # 0xFFFF: a ZIP64 record, counted after parsing


def _member_reader(archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> Callable[[], bytes]:
    """Read one member; whatever the ZIP library raises for a bad member becomes that member's ImageError."""
    def read() -> bytes:
        try:
            return archive.read(member)
        except NotImplementedError:
            raise ImageError(f"ZIP member uses a compression method that cannot be read "
                             f"(method {member.compress_type}); skipped") from None
        except RuntimeError as error:  # zipfile's word for a password-protected member
            raise ImageError(f"ZIP member cannot be read ({str(error).splitlines()[0]}); skipped") from None
        except (EOFError, zlib.error, zipfile.BadZipFile, OSError, ValueError) as error:
            raise ImageError(f"ZIP member is damaged or truncated ({type(error).__name__}); skipped") from None
    return read


def _zip_items(source: Path | BinaryIO, label: str) -> Iterator[InputItem]:
    """A ZIP's image members (from a path or a file object), checked against the limits above.

    Every member gets its own item: one that cannot be read (encrypted, an unsupported
    compression, data running past the end) is an error for that member alone.
    """
    try:
        stated = _zip_entry_count(source)
    except OSError as error:
        yield InputItem(label, error=f"not a readable ZIP file ({error})")
        return
    if stated is not None and stated > MAX_ZIP_MEMBERS:
        yield InputItem(label, error=f"ZIP holds {stated} files, over the limit of {MAX_ZIP_MEMBERS}")
        return
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as error:
        yield InputItem(label, error=f"not a readable ZIP file ({error})")
        return
    members = [m for m in archive.infolist() if not m.is_dir()]
    if len(members) > MAX_ZIP_MEMBERS:
        yield InputItem(label, error=f"ZIP holds {len(members)} files, over the limit of {MAX_ZIP_MEMBERS}")
        return
    total = 0
    for member in members:
        name = f"{label}::{member.filename}"
        base = PurePosixPath(member.filename).name
        if base.startswith(".") or member.filename.startswith("__MACOSX/"):
            continue
        if not is_image_name(base):
            yield InputItem(name, error="not an image type (by its name); skipped")
            continue
        total += member.file_size
        if member.file_size > MAX_FILE_BYTES:
            yield InputItem(name, error=f"file is {member.file_size / MB:.1f} MB, over the {MAX_FILE_BYTES / MB:.0f} MB limit")
        elif member.compress_size and member.file_size / member.compress_size > MAX_ZIP_RATIO:
            yield InputItem(name, error="compression ratio is implausibly high (zip bomb?); skipped")
        elif total > MAX_ZIP_TOTAL_BYTES:
            yield InputItem(name, error="ZIP's total uncompressed size is over the limit; skipped")
        elif member.flag_bits & 0x1:
            yield InputItem(name, error="ZIP member is encrypted (needs a password); skipped")
        else:
            yield InputItem(name, read=_member_reader(archive, member))


def collect_inputs(paths: Iterable[str | os.PathLike]) -> Iterator[InputItem]:
    """Image files, folders (recursive; image files and ZIPs inside) and ZIP files, as inputs.

    ZIP members are read in memory, never extracted, so ``../`` names cannot write anywhere.
    """
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
                if child.suffix.lower() == ".zip":
                    yield from _zip_items(child, display_name(child))
                elif is_image_name(child.name):
                    yield InputItem(display_name(child), read=child.read_bytes)
        elif path.suffix.lower() == ".zip" and path.is_file():
            yield from _zip_items(path, display_name(path))
        elif path.is_file():
            yield InputItem(display_name(path), read=path.read_bytes)
        else:
            yield InputItem(display_name(path), error="no such file or folder")


def display_name(path: str | os.PathLike) -> str:
    """A path as text that can always be printed and written: bytes of a file name that are not
    UTF-8 (kept by the OS as surrogates) are shown as ``\\xNN`` escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def collect_uploads(files: Iterable[tuple[str, bytes]]) -> Iterator[InputItem]:
    """Uploaded (name, bytes) pairs as inputs, the in-memory twin of ``collect_inputs``.

    A ``.zip`` is opened from memory with the same member limits; any other name must look
    like an image.
    """
    for name, data in files:
        if name.lower().endswith(".zip"):
            yield from _zip_items(io.BytesIO(data), name)
        elif is_image_name(name):
            yield InputItem(name, read=lambda data=data: data)
        else:
            yield InputItem(name, error="not an image or ZIP file (by its name); skipped")
