"""A generic manifest: a CSV with ``path`` (relative to the CSV or absolute) and any of ``age``, ``gender``, ``race``.

The way to bring any labelled folder of faces into the explorer and the evaluation.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from facekit import labels
from facekit.data.table import (
    Anomaly,
    DatasetTable,
    make_table,
    normalize_column,
    parse_ages,
    read_csv,
    require_columns,
    resolve_images,
)

DATASET = "manifest"


def read_manifest(path: os.PathLike | str) -> DatasetTable:
    """Rows of the manifest; ``file`` is the path as written, missing images are anomalies."""
    path = Path(path).expanduser()
    raw = read_csv(path)
    require_columns(raw, ["path"], path, "manifest")
    anomalies: list[Anomaly] = []
    frame = pd.DataFrame(
        {
            "image": resolve_images(raw["path"], path.parent, anomalies, expected=True, source=path),
            "file": raw["path"],
        }
    )
    if "age" in raw:
        frame["age"] = parse_ages(raw["age"], "age", path)
    if "gender" in raw:
        frame["gender"] = normalize_column(raw["gender"], labels.normalize_gender, "gender", path)
    if "race" in raw:
        frame["race"] = normalize_column(raw["race"], labels.normalize_race, "race", path)
    return make_table(frame, DATASET, path, anomalies)
