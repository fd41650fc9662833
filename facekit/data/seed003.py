"""Seed project 003's layout: ``faces/labels.csv`` beside ``faces/final_files/``.

Its CSV names each image and gives either the age in years (``file_name,real_age``) or an
age-group class (``ID,Class`` with YOUNG/MIDDLE/OLD). Groups stay groups (``age_group``):
they are not FairFace bins and are not turned into made-up years.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from facekit.data.table import Anomaly, DatasetError, DatasetTable, make_table, parse_ages, read_csv, resolve_images

DATASET = "seed003"
LABELS_CSV = "labels.csv"
IMAGE_FOLDER = "final_files"
AGE_COLUMNS = ("file_name", "real_age")
GROUP_COLUMNS = ("id", "class")


def is_seed003_header(columns: list[str]) -> bool:
    return set(AGE_COLUMNS) <= set(columns) or set(GROUP_COLUMNS) <= set(columns)


def read_seed003(path: os.PathLike | str) -> DatasetTable:
    """The ``faces/`` folder or its ``labels.csv``; images come from ``final_files/`` when present."""
    path = Path(path).expanduser()
    csv = path / LABELS_CSV if path.is_dir() else path
    raw = read_csv(csv)
    if set(AGE_COLUMNS) <= set(raw.columns):
        names, ages, groups = raw["file_name"], parse_ages(raw["real_age"], "real_age", csv), None
    elif set(GROUP_COLUMNS) <= set(raw.columns):
        names, ages = raw["id"], None
        groups = raw["class"].str.strip().str.upper()
        groups = groups.where(groups != "")
    else:
        raise DatasetError(
            f"{csv}: a seed-003 labels.csv needs columns file_name,real_age or ID,Class; it has {', '.join(raw.columns)}"
        )
    folder = csv.parent / IMAGE_FOLDER
    anomalies: list[Anomaly] = []
    frame = pd.DataFrame(
        {
            "image": resolve_images(names, folder if folder.is_dir() else csv.parent, anomalies, expected=True, source=csv),
            "file": names,
            "age": ages,
        }
    )
    if groups is not None:
        frame["age_group"] = groups
    return make_table(frame, DATASET, path, anomalies)
