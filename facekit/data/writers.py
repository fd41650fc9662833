"""Datasets written out in another project's format, so its own scripts and recipes can read them.

``write_kaggle_age_gender`` writes Kaggle's ``age_gender.csv`` layout (the 48x48 greyscale pixel
strings seed 002 trains on, itself UTKFace resized): age, ethnicity and gender as UTKFace's codes,
the file name, and 2,304 space-separated grey values per face. ``write_seed003_faces`` writes
seed 003's ``faces/`` folder: ``labels.csv`` (``ID,Class`` with an age group per face) beside the
images in ``final_files/``.
"""
from __future__ import annotations

import csv
import os
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from facekit import labels
from facekit.data.images import read_image_bytes
from facekit.data.kaggle import COLUMNS, SIDE
from facekit.data.seed003 import IMAGE_FOLDER, LABELS_CSV
from facekit.data.table import DatasetTable
from facekit.files import atomic_write, staged_folder
from facekit.vision.io import ImageError, load_image


def kaggle_pixels(data: bytes) -> str:
    """One face as Kaggle's pixel string: greyscale, resized to 48x48 with an area filter, row by row."""
    grey = load_image(data).convert("L").resize((SIDE, SIDE), Image.Resampling.BOX)
    return " ".join(map(str, np.asarray(grey, np.uint8).ravel()))


def write_kaggle_age_gender(table: DatasetTable, path: os.PathLike | str,
                            log: Callable[[str], None] = lambda _: None) -> tuple[int, int]:
    """Write every face of ``table`` that has an image, an age, a gender and a 5-class ethnicity; returns
    (faces written, faces left out). The file appears whole or not at all."""
    frame = table.frame
    usable = frame["image"].notna() & frame["age"].notna() & frame["gender"].notna() & frame["race"].notna()
    rows, skipped = [], int((~usable).sum())
    for number, row in enumerate(frame[usable].itertuples(index=False), start=1):
        try:
            pixels = kaggle_pixels(read_image_bytes(row.image))
        except ImageError as error:
            log(f"{row.file}: {error}: left out")
            skipped += 1
            continue
        rows.append((int(row.age), labels.RACES.index(row.race), labels.GENDERS.index(row.gender), row.file, pixels))
        if number % 2000 == 0:
            log(f"{number:,} faces")

    def write(temporary: Path) -> None:
        with temporary.open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(COLUMNS)
            writer.writerows(rows)

    atomic_write(Path(path), write)
    return len(rows), skipped


def split_part(table: DatasetTable, split: str) -> DatasetTable:
    """The faces of one part of the table's ``split`` column (``all``: every face)."""
    if split == "all":
        return table
    return replace(table, frame=table.frame[table.frame["split"].astype(object) == split].reset_index(drop=True))


# Seed 003's three classes, in years: YOUNG < 30 <= MIDDLE < 60 <= OLD.
SEED003_GROUPS: tuple[tuple[str, int, int], ...] = (("YOUNG", 0, 29), ("MIDDLE", 30, 59),
                                                     ("OLD", 60, labels.MAX_AGE_YEARS))


def write_seed003_faces(table: DatasetTable, folder: os.PathLike | str,
                        groups: tuple[tuple[str, int, int], ...] = SEED003_GROUPS,
                        log: Callable[[str], None] = lambda _: None) -> tuple[int, int]:
    """Write every face of ``table`` with an image and an age as seed 003's ``faces/`` folder, the age as
    its group's class; returns (faces written, faces left out). The folder's files appear whole or not at all."""
    frame = table.frame
    usable = frame["image"].notna() & frame["age"].notna()
    written, skipped = [], int((~usable).sum())
    with staged_folder(folder) as staging:
        images = staging / IMAGE_FOLDER
        images.mkdir()
        for number, row in enumerate(frame[usable].itertuples(index=False), start=1):
            group = next((label for label, low, high in groups if low <= row.age <= high), None)
            if group is None:
                skipped += 1
                continue
            try:
                data = read_image_bytes(row.image)
            except ImageError as error:
                log(f"{row.file}: {error}: left out")
                skipped += 1
                continue
            name = Path(row.file).name
            (images / name).write_bytes(data)
            written.append((name, group))
            if number % 2000 == 0:
                log(f"{number:,} faces")
        with (staging / LABELS_CSV).open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(("ID", "Class"))
            writer.writerows(written)
    return len(written), skipped
