"""Label indexes shipped in the package, so the explorer and the bias figures work without the data.

Each index is the source's own format, cleaned and gzipped, and is read back by the same
reader as the source: UTKFace as its archive member names (the labels are in the names),
FairFace as one label CSV with the spreadsheet-mangled bins already mapped back.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import pandas as pd

from facekit.data.fairface import read_fairface
from facekit.data.paths import ASSETS, locate_utkface
from facekit.data.table import DatasetError, DatasetTable
from facekit.data.utkface import MEMBER_SEP, is_archive, table_from_names

INDEXES: dict[str, Path] = {
    "utkface": ASSETS / "utkface_labels.csv.gz",
    "fairface": ASSETS / "fairface_labels.csv.gz",
}
UTKFACE_FOLDER = "UTKFace"  # the official archive's one folder, which the index's member names start with


def load_shipped_index(name: str) -> DatasetTable:
    """The shipped ``utkface`` or ``fairface`` labels as a table.

    UTKFace's ``image`` points into the archive ``locate_utkface`` finds (FACEKIT_UTKFACE or
    ../shared/data/UTKFace.tar.gz), so a gallery works whenever the archive is on the machine;
    without it, and always for FairFace, ``image`` is NA.
    """
    if name not in INDEXES:
        raise DatasetError(f"no shipped index {name!r}; there are {', '.join(INDEXES)}")
    path = INDEXES[name]
    if name == "fairface":
        return read_fairface(path)
    members = pd.read_csv(path, dtype=str)["member"]
    archive = locate_utkface()
    container = os.path.abspath(archive) if archive is not None and is_archive(archive) else None
    return table_from_names(
        ((Path(m).name, f"{container}{MEMBER_SEP}{m}" if container else None) for m in members), path
    )


def write_shipped_index(name: str, table: DatasetTable, force: bool = False) -> Path:
    """Write an index from a table read from the real source (``facekit data index``)."""
    path = INDEXES[name]
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; pass force (--force) to replace it")
    frame = table.frame
    if name == "utkface":
        index = pd.DataFrame({"member": [f"{UTKFACE_FOLDER}/{file}" for file in frame["file"]]})
    else:
        index = pd.DataFrame(
            {
                "file": frame["file"],
                "age": frame["age_bin"],
                "gender": frame["gender"],
                "race": frame["race7"],
                "service_test": frame["service_test"].map({True: "TRUE", False: "FALSE"}),
            }
        )
    with gzip.GzipFile(path, "wb", mtime=0) as handle:  # mtime=0: the same labels give the same bytes
        index.to_csv(handle, index=False, lineterminator="\n")
    return path
