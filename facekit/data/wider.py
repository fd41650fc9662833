"""wider-dev: in-the-wild faces cut from WIDER FACE photos, with perceived demographics.

``faces.csv`` lists one face per row: its cut (a square twice the face's size), the face's
box inside the cut (``x,y,w,h``), its height in the original photo (``face_px``) and the
gender, age group and Fitzpatrick skin type that annotators *perceived*; "Not Sure" is
unknown. ``photos.csv`` lists every WIDER box of the whole group photos, labelled or not.
Labels are perceived, not self-reported: tables say so in ``perceived``.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from facekit import labels
from facekit.data.table import (
    Anomaly,
    DatasetError,
    DatasetTable,
    make_table,
    normalize_column,
    parse_numbers,
    read_csv,
    require_columns,
    resolve_images,
)

DATASET = "wider-dev"
FACE_COLUMNS = ("file", "photo", "split", "x", "y", "w", "h", "face_px", "gender", "age_group", "skin")
PHOTO_COLUMNS = ("photo", "x", "y", "w", "h")
FACES_CSV = "faces.csv"
PHOTOS_CSV = "photos.csv"


def is_wider_faces_header(columns: list[str]) -> bool:
    return set(FACE_COLUMNS) <= set(columns)


def is_wider_photos_header(columns: list[str]) -> bool:
    return set(PHOTO_COLUMNS) <= set(columns) and "file" not in columns and "path" not in columns


def _boxes(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    return pd.DataFrame({column: parse_numbers(raw[column], column, path, "a position in pixels")
                         for column in ("x", "y", "w", "h")})


def read_wider_faces(path: os.PathLike | str) -> DatasetTable:
    """``faces.csv`` (or its folder): one row per labelled face, images resolved beside the CSV.

    Columns beyond the shared schema: ``age_group``, ``skin``, ``split`` (train/val, by photo),
    ``photo``, the face's box in its cut (``x, y, w, h``), ``face_px`` and ``perceived`` (True).
    """
    path = Path(path).expanduser()
    csv = path / FACES_CSV if path.is_dir() else path
    raw = read_csv(csv)
    require_columns(raw, FACE_COLUMNS, csv, "wider-dev faces")
    anomalies: list[Anomaly] = []
    frame = pd.DataFrame(
        {
            "image": resolve_images(raw["file"], csv.parent, anomalies, expected=True, source=csv),
            "file": raw["file"],
            "gender": normalize_column(raw["gender"], labels.normalize_gender, "gender", csv),
            "age_group": normalize_column(raw["age_group"], labels.normalize_age_group, "age_group", csv),
            "skin": normalize_column(raw["skin"], labels.normalize_skin_tone, "skin", csv),
            "split": raw["split"].str.strip().str.lower(),
            "photo": raw["photo"],
            "face_px": parse_numbers(raw["face_px"], "face_px", csv, "a size in pixels"),
            "perceived": True,
        }
    )
    frame = pd.concat([frame, _boxes(raw, csv)], axis=1)
    bad_split = ~frame["split"].isin(["train", "val"])
    if bad_split.any():
        line = int(bad_split.to_numpy().argmax()) + 2
        raise DatasetError(f"{csv}: column 'split', line {line}: {frame['split'].iloc[line - 2]!r} is not train or val")
    table = make_table(frame, DATASET, path, anomalies)
    table.frame["age_group"] = pd.Categorical(table.frame["age_group"], categories=labels.AGE_GROUP_LABELS, ordered=True)
    table.frame["skin"] = pd.Categorical(table.frame["skin"], categories=labels.SKIN_TONES, ordered=True)
    return table


def read_wider_photos(path: os.PathLike | str) -> pd.DataFrame:
    """``photos.csv`` (or its folder, or any CSV of ``photo, x, y, w, h``): one row per face box.

    ``image`` is the photo's resolved path (None when missing); ``labelled`` says whether the
    face carries demographic labels (a face without them is still a real face).
    """
    path = Path(path).expanduser()
    csv = path / PHOTOS_CSV if path.is_dir() else path
    raw = read_csv(csv)
    require_columns(raw, PHOTO_COLUMNS, csv, "face-box")
    anomalies: list[Anomaly] = []
    frame = pd.concat([raw[["photo"]].copy(), _boxes(raw, csv)], axis=1)
    frame["image"] = resolve_images(raw["photo"], csv.parent, anomalies, expected=True, source=csv)
    gender = raw["gender"] if "gender" in raw else pd.Series("", index=raw.index)
    frame["labelled"] = gender.str.strip() != ""
    frame.attrs["anomalies"] = anomalies
    return frame
