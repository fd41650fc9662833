"""UTKFace: labels parsed from file names, read from a folder or straight from the .tar.gz.

Names are ``[age]_[gender]_[race]_[date&time].jpg.chip.jpg``. The real archive has faces with
no race field and names with a missing dot or a space; the parser keeps every face whose age
and gender parse and reports what was odd, so counts match the documented ones.
"""
from __future__ import annotations

import os
import re
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

import pandas as pd

from facekit import labels
from facekit.data.table import Anomaly, DatasetError, DatasetTable, make_table
from facekit.errors import first_line
from facekit.vision.io import is_image_name

DATASET = "utkface"
SUFFIX = ".jpg.chip.jpg"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
MEMBER_SEP = "::"  # an image inside a container: "/abs/UTKFace.tar.gz::UTKFace/1_0_0_x.jpg.chip.jpg"
_NAME = re.compile(r"^(?P<age>\d{1,3})_(?P<gender>[01])_(?:(?P<race>[0-4])_)?(?P<stamp>\d{8,})(?P<rest>.*)$")
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)
# Bounds on a face archive, checked from each member's header before its data is read: a face
# chip is kilobytes, the whole of UTKFace well under a gigabyte.
MAX_TAR_MEMBER_BYTES = 50 * 1024 * 1024
MAX_TAR_TOTAL_BYTES = 4 * 1024 ** 3
MAX_TAR_MEMBERS = 500_000


def member_problem(member: tarfile.TarInfo) -> Optional[str]:
    """Why a file member of a face archive is skipped (unsafe path, too large), or None to keep it."""
    parts = Path(member.name).parts
    if member.name.startswith(("/", "\\")) or ".." in parts:
        return "a path outside the archive: skipped"
    if member.size > MAX_TAR_MEMBER_BYTES:
        return f"{member.size / 2**20:.0f} MB, over the {MAX_TAR_MEMBER_BYTES // 2**20} MB a face image may be: skipped"
    return None


def safe_members(tar: tarfile.TarFile, path: Path, anomalies: list[Anomaly]) -> Iterator[tarfile.TarInfo]:
    """The archive's file members that may be read, in order; each skipped one an anomaly. DatasetError
    past MAX_TAR_MEMBERS members or MAX_TAR_TOTAL_BYTES of data, before reading any more of it."""
    total = count = 0
    for member in tar:
        count += 1
        if count > MAX_TAR_MEMBERS:
            raise DatasetError(f"{path}: more than {MAX_TAR_MEMBERS:,} members; not a face archive")
        if not member.isfile():
            continue
        problem = member_problem(member)
        if problem:
            anomalies.append(Anomaly(member.name, problem))
            continue
        total += member.size
        if total > MAX_TAR_TOTAL_BYTES:
            raise DatasetError(f"{path}: unpacks to more than {MAX_TAR_TOTAL_BYTES // 2**30} GB; not a face archive")
        yield member


@dataclass(frozen=True)
class UTKName:
    """The labels in one UTKFace file name; race is None for the names without a race field."""

    age: int
    gender: str
    race: Optional[str]


def parse_utkface_name(name: str) -> tuple[Optional[UTKName], list[Anomaly]]:
    """Labels from a base file name, and what is odd about it; labels None when age/gender do not parse."""
    match = _NAME.match(name)
    if match is None:
        return None, [Anomaly(name, "not a UTKFace name [age]_[gender]_[race]_[date&time].jpg.chip.jpg: skipped")]
    anomalies = []
    race = match["race"]
    if race is None:
        anomalies.append(Anomaly(name, "no race field in the name: kept with race unknown"))
    rest = match["rest"]
    if rest != SUFFIX:
        if " " in rest:
            reason = "space in the file name: kept"
        elif rest == SUFFIX[1:]:
            reason = "missing dot before 'jpg.chip.jpg': kept"
        else:
            reason = f"unexpected ending {rest!r}: kept"
        anomalies.append(Anomaly(name, reason))
    parsed = UTKName(
        age=int(match["age"]),
        gender=labels.normalize_gender(match["gender"]),  # type: ignore[arg-type]
        race=labels.normalize_race(race),
    )
    return parsed, anomalies


def table_from_names(entries: Iterable[tuple[str, Optional[str]]], source: object) -> DatasetTable:
    """A UTKFace table from (base file name, image reference or None) pairs: folder, archive or index.

    A base name seen twice is skipped (the split and feature caches are keyed by file name).
    """
    rows, anomalies, seen = [], [], set()
    for name, image in entries:
        parsed, problems = parse_utkface_name(name)
        if parsed is not None and name in seen:
            problems = [Anomaly(name, "duplicate file name: skipped")]
            parsed = None
        anomalies.extend(problems)
        if parsed is not None:
            seen.add(name)
            rows.append((image, name, float(parsed.age), parsed.gender, parsed.race))
    if not rows:
        raise DatasetError(f"{source}: no UTKFace file names ([age]_[gender]_[race]_[date&time].jpg.chip.jpg) found")
    frame = pd.DataFrame(rows, columns=["image", "file", "age", "gender", "race"])
    return make_table(frame, DATASET, source, anomalies)


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _folder_images(folder: Path) -> list[Path]:
    return sorted(Path(root) / name for root, _, names in os.walk(folder) for name in names if is_image_name(name))


def read_utkface(path: os.PathLike | str) -> DatasetTable:
    """UTKFace from a folder (searched recursively) or a .tar.gz, read in place without extracting."""
    path = Path(path).expanduser()
    if path.is_dir():
        return table_from_names(((file.name, str(file.resolve())) for file in _folder_images(path)), path)
    if not path.is_file():
        raise DatasetError(f"no such file or folder: {path}")
    container = os.path.abspath(path)
    skipped: list[Anomaly] = []
    try:
        with tarfile.open(path) as tar:
            members = [member.name for member in safe_members(tar, path, skipped)]
    except _ARCHIVE_ERRORS as error:
        raise DatasetError(f"{path}: not a readable tar archive ({first_line(error)})") from None
    table = table_from_names(((Path(m).name, f"{container}{MEMBER_SEP}{m}") for m in members), path)
    table.anomalies[:0] = skipped
    return table


def iter_utkface_images(path: os.PathLike | str) -> Iterator[tuple[str, bytes]]:
    """(file name, JPEG bytes) of every face ``read_utkface`` keeps, in one sequential pass.

    For feature extraction over the whole set: a .tar.gz is streamed once rather than
    seeked into per face. Names match the table's ``file`` column.
    """
    path = Path(path).expanduser()
    seen: set[str] = set()

    def keep(name: str) -> bool:
        if name in seen or parse_utkface_name(name)[0] is None:
            return False
        seen.add(name)
        return True

    if path.is_dir():
        for file in _folder_images(path):
            if keep(file.name):
                yield file.name, file.read_bytes()
        return
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in safe_members(tar, path, []):
                name = Path(member.name).name
                if keep(name):
                    yield name, tar.extractfile(member).read()  # type: ignore[union-attr]
    except _ARCHIVE_ERRORS as error:
        raise DatasetError(f"{path}: not a readable tar archive ({first_line(error)})") from None
