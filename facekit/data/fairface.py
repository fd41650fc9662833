"""FairFace label CSVs (``file,age,gender,race,service_test``): age bins, 7 ethnicities, no years.

The shared copies went through a spreadsheet that turned two bins into dates; they are
mapped back with a warning and a note in the anomalies, never silently.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from facekit import labels
from facekit.data.table import (
    Anomaly,
    DatasetError,
    DatasetTable,
    make_table,
    normalize_column,
    read_csv,
    require_columns,
    resolve_images,
)

DATASET = "fairface"
COLUMNS = ("file", "age", "gender", "race")
CSV_GLOB = "fairface_label_*.csv"


def _read_one(path: Path, anomalies: list[Anomaly]) -> pd.DataFrame:
    raw = read_csv(path)
    require_columns(raw, COLUMNS, path, "FairFace")
    ages = raw["age"].str.strip()
    mangled = ages[ages.isin(labels.SPREADSHEET_AGE_BINS)]
    if len(mangled):
        counts = mangled.value_counts()
        detail = ", ".join(f"'{text}' -> '{labels.SPREADSHEET_AGE_BINS[text]}' x{counts[text]:,}" for text in counts.index)
        message = f"mapped {len(mangled):,} spreadsheet-mangled age bins back ({detail})"
        warnings.warn(f"{path}: {message}", UserWarning, stacklevel=3)
        anomalies.append(Anomaly(path.name, message))
    race7 = normalize_column(raw["race"], labels.normalize_fairface_race, "race", path)
    frame = pd.DataFrame(
        {
            "image": resolve_images(raw["file"], path.parent, anomalies, expected=False, source=path),
            "file": raw["file"],
            "age_bin": normalize_column(ages.replace(labels.SPREADSHEET_AGE_BINS), labels.normalize_age_bin, "age", path),
            "gender": normalize_column(raw["gender"], labels.normalize_gender, "gender", path),
            "race": race7.map(labels.FAIRFACE_TO_RACE),
            "race7": race7,
            # FairFace's own train/val split is the folder in the file name ("train/1.jpg").
            "split": raw["file"].str.split("/", n=1).str[0].where(raw["file"].str.contains("/")),
        }
    )
    if "service_test" in raw:
        frame["service_test"] = raw["service_test"].str.strip().str.upper().map({"TRUE": True, "FALSE": False})
    return frame


def read_fairface(path: os.PathLike | str) -> DatasetTable:
    """One FairFace CSV, or a folder holding ``fairface_label_*.csv`` (train and val together).

    ``age`` is NaN (FairFace has bins, not years), ``age_bin`` is set, ``race7`` keeps the
    7 classes and ``race`` maps them onto UTKFace's 5. Images are used when they sit where
    the CSV's ``file`` column says, relative to the CSV's folder.
    """
    path = Path(path).expanduser()
    files = sorted(path.glob(CSV_GLOB)) if path.is_dir() else [path]
    if not files:
        raise DatasetError(f"{path}: no {CSV_GLOB} files in this folder")
    anomalies: list[Anomaly] = []
    frames = []
    for file in files:  # a loop, not a comprehension, so the warning points at our caller
        frames.append(_read_one(file, anomalies))
    frame = pd.concat(frames, ignore_index=True)
    duplicated = frame["file"].duplicated()
    if duplicated.any():
        anomalies.extend(Anomaly(name, "listed twice: second row skipped") for name in frame["file"][duplicated])
        frame = frame[~duplicated]
    return make_table(frame, DATASET, path, anomalies)
