"""Bring your own labelled photos: a ZIP of photos and a labels CSV (the manifest format) unpacked
safely into a folder that ``evaluate`` reads like any dataset.

The CSV is the manifest format (``facekit.data.manifest``): ``path`` plus any of ``gender``,
``race`` (5 or 7 classes), ``race7``, ``age``, ``age_bin``. It comes as its own upload or as a
``.csv`` inside the ZIP. Members are written under their own relative names only (no
``../``, no absolute paths); each member that cannot be used is listed with its reason, and
the others are kept.
"""
from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Optional

from facekit.data.table import DatasetError
from facekit.evaluation.evaluate import SPLIT_ALL, Evaluation, evaluate
from facekit.vision.io import ImageError, collect_uploads

MAX_PHOTOS = 2000  # photos one upload may hold: an evaluation on two cores stays within minutes
MAX_CSV_BYTES = 5 * 1024 * 1024
MANIFEST = "labels.csv"


@dataclass
class UnpackedUpload:
    """Where the upload was written, and what of it could not be used."""

    manifest: Path
    photos: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (member, reason)


def _safe_path(name: str) -> PurePosixPath | None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return None
    return path


def _csv_inside(data: bytes) -> bytes | None:
    """The first ``.csv`` member of the ZIP (outside __MACOSX), bounded in size; None when there is none."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if m.filename.lower().endswith(".csv")
                   and not m.filename.startswith("__MACOSX/")]
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        raise DatasetError(f"not a readable ZIP file ({error})") from None
    if not members:
        return None
    if members[0].file_size > MAX_CSV_BYTES:
        raise DatasetError(f"{members[0].filename}: a labels CSV over {MAX_CSV_BYTES // 2**20} MB")
    try:
        return archive.read(members[0])
    except (RuntimeError, NotImplementedError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise DatasetError(f"{members[0].filename} cannot be read from the ZIP ({error})") from None


def unpack_labelled_zip(data: bytes, folder: Path, labels_csv: bytes | None = None) -> UnpackedUpload:
    """Write the ZIP's photos and the labels CSV into ``folder``; DatasetError when no labels are
    given or there are more than ``MAX_PHOTOS`` photos."""
    labels_csv = labels_csv if labels_csv is not None else _csv_inside(data)
    if labels_csv is None:
        raise DatasetError("no labels: upload a labels CSV (path, gender, race, age, age_bin) or put one in the ZIP")
    if len(labels_csv) > MAX_CSV_BYTES:
        raise DatasetError(f"the labels CSV is over {MAX_CSV_BYTES // 2**20} MB")
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / MANIFEST
    manifest.write_bytes(labels_csv)
    skipped: list[tuple[str, str]] = []
    photos = 0
    for item in collect_uploads([("upload.zip", data)]):
        member = item.name.split("::", 1)[-1]
        if item.read is None:
            if not member.lower().endswith(".csv"):
                skipped.append((member, item.error))
            continue
        target = _safe_path(member)
        if target is None:
            skipped.append((member, "a path outside the upload; skipped"))
            continue
        photos += 1
        if photos > MAX_PHOTOS:
            raise DatasetError(f"the upload holds more than {MAX_PHOTOS} photos; evaluate a sample of them")
        try:
            content = item.read()
        except ImageError as error:
            skipped.append((member, str(error)))
            continue
        (folder / target).parent.mkdir(parents=True, exist_ok=True)
        (folder / target).write_bytes(content)
    return UnpackedUpload(manifest, photos, skipped)


def evaluate_upload(data: bytes, folder: Path, labels_csv: bytes | None = None, checkpoint: Optional[Path] = None,
                    progress: Callable[[int, int], None] = lambda done, total: None
                    ) -> tuple[Evaluation, UnpackedUpload]:
    """Unpack a labelled upload into ``folder`` and evaluate every photo of it (no split: all are test photos).

    The folder must outlive the evaluation for its worst-mistakes gallery to show the photos."""
    unpacked = unpack_labelled_zip(data, folder, labels_csv)
    return evaluate(checkpoint, unpacked.manifest, split=SPLIT_ALL, progress=progress), unpacked
