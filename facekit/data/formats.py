"""``read_dataset``: one entry point that tells the format from the path and calls its reader."""
from __future__ import annotations

import os
from pathlib import Path

from facekit.data.fairface import CSV_GLOB, read_fairface
from facekit.data.kaggle import read_kaggle_age_gender
from facekit.data.manifest import read_manifest
from facekit.data.seed003 import LABELS_CSV, is_seed003_header, read_seed003
from facekit.data.table import DatasetError, DatasetTable, read_csv
from facekit.data.utkface import is_archive, read_utkface
from facekit.data.wider import FACES_CSV, is_wider_faces_header, read_wider_faces

CSV_SUFFIXES = (".csv", ".csv.gz")
SUPPORTED = (
    "a UTKFace folder or .tar.gz, a FairFace label CSV (or its folder), Kaggle's age_gender.csv, "
    "a seed-003 faces/ folder or labels.csv, a wider-dev faces.csv (or its folder), "
    "or a manifest CSV with a 'path' column"
)


def read_dataset(path: os.PathLike | str) -> DatasetTable:
    """Any supported dataset as a ``DatasetTable``; ``DatasetError`` (one line) when it cannot be read.

    Folders: seed-003 (``labels.csv``), FairFace (``fairface_label_*.csv``), wider-dev
    (``faces.csv``), else UTKFace names.
    Files: .tar.gz/.tgz/.tar is UTKFace; a CSV is recognised by its header.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"no such file or folder: {path}")
    if path.is_dir():
        if (path / LABELS_CSV).is_file():
            return read_seed003(path)
        if any(path.glob(CSV_GLOB)):
            return read_fairface(path)
        if (path / FACES_CSV).is_file():
            return read_wider_faces(path)
        return read_utkface(path)
    if is_archive(path):
        return read_utkface(path)
    if not path.name.lower().endswith(CSV_SUFFIXES):
        raise DatasetError(f"{path}: not a supported dataset; expected {SUPPORTED}")
    columns = list(read_csv(path, nrows=0).columns)  # the header only: a Kaggle CSV is ~200 MB
    if "pixels" in columns:
        return read_kaggle_age_gender(path)
    if "path" in columns:
        return read_manifest(path)
    if is_wider_faces_header(columns):
        return read_wider_faces(path)
    if is_seed003_header(columns):
        return read_seed003(path)
    if "file" in columns and ("race" in columns or "service_test" in columns):
        return read_fairface(path)
    raise DatasetError(f"{path}: unrecognised CSV header ({', '.join(columns)}); expected {SUPPORTED}")

