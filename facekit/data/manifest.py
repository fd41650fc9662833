"""A generic manifest: a CSV with ``path`` and any of ``gender``, ``race`` (UTKFace's 5 or FairFace's 7
names), ``race7``, ``age`` (years) and ``age_bin`` (FairFace's bins).

The way to bring any labelled folder of faces into the explorer and the evaluation. Paths are
relative to the CSV's folder and must stay inside it (no ``../``, no absolute paths) unless
the caller allows it: a manifest from someone else must not make facekit read other files.
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


def _inside(names: pd.Series, base: Path, anomalies: list[Anomaly]) -> pd.Series:
    """True for paths that resolve inside ``base``; each other one is an anomaly."""
    root = os.path.realpath(base)
    ok = []
    for name in names:
        if "\0" in str(name):  # no file system has such a name; realpath would raise on it
            ok.append(False)
            continue
        target = os.path.realpath(os.path.join(root, str(name)))
        inside = os.path.commonpath([root, target]) == root and not os.path.isabs(str(name))
        if not inside:
            anomalies.append(Anomaly(str(name), "points outside the manifest's folder: skipped"))
        ok.append(inside)
    return pd.Series(ok, index=names.index)


def _races(values: pd.Series, path: Path) -> tuple[pd.Series, pd.Series | None]:
    """(UTKFace-5, FairFace-7 or None) from one ethnicity column: every label gives the 5 classes, and a
    column with 7-class names gives them too (missing where a row has a 5-class label only)."""
    def fine(value):
        try:
            return labels.normalize_fairface_race(value)
        except ValueError:
            return None

    race = normalize_column(values, labels.normalize_race, "race", path)
    seven = values.map(fine)
    return race, seven if seven.isin(set(labels.RACE7) - set(labels.RACES)).any() else None


def read_manifest(path: os.PathLike | str, allow_outside: bool = False) -> DatasetTable:
    """Rows of the manifest; ``file`` is the path as written; missing images, and paths outside the
    manifest's folder (unless ``allow_outside``), are anomalies without an image."""
    path = Path(path).expanduser()
    raw = read_csv(path)
    require_columns(raw, ["path"], path, "manifest")
    anomalies: list[Anomaly] = []
    images = resolve_images(raw["path"], path.parent, anomalies, expected=True, source=path)
    if not allow_outside:
        images = images.where(_inside(raw["path"], path.parent, anomalies), None)
    frame = pd.DataFrame({"image": images, "file": raw["path"]})
    if "age" in raw:
        frame["age"] = parse_ages(raw["age"], "age", path)
    if "age_bin" in raw:
        frame["age_bin"] = normalize_column(raw["age_bin"], labels.normalize_age_bin, "age_bin", path)
    if "gender" in raw:
        frame["gender"] = normalize_column(raw["gender"], labels.normalize_gender, "gender", path)
    if "race" in raw:
        frame["race"], race7 = _races(raw["race"], path)
        if race7 is not None:
            frame["race7"] = race7
    if "race7" in raw:
        frame["race7"] = normalize_column(raw["race7"], labels.normalize_fairface_race, "race7", path)
        frame["race"] = frame["race7"].map(labels.FAIRFACE_TO_RACE)
    return make_table(frame, DATASET, path, anomalies)
