"""Kaggle's "age_gender.csv": UTKFace labels with each face as 48x48 grey pixels in a text column.

A row whose pixel string is not 2304 values keeps its labels and loses its image (an anomaly),
so one damaged row never stops a read. Images are decoded on demand from ``csv::row=N``.
"""
from __future__ import annotations

import io
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from facekit import labels
from facekit.data.table import (
    Anomaly,
    DatasetTable,
    make_table,
    normalize_column,
    parse_ages,
    read_csv,
    require_columns,
)
from facekit.data.utkface import MEMBER_SEP
from facekit.vision.io import ImageError

DATASET = "kaggle_age_gender"
SIDE = 48
PIXELS = SIDE * SIDE
COLUMNS = ("age", "ethnicity", "gender", "img_name", "pixels")
ROW_PREFIX = "row="


def _value_count(text: str) -> int:
    """Values in a pixel string: counting single spaces is much quicker than a regex or a split per row."""
    text = text.strip()
    if not text:
        return 0
    if "  " in text or "\t" in text or "\n" in text:
        return len(text.split())
    return text.count(" ") + 1


def read_kaggle_age_gender(path: os.PathLike | str) -> DatasetTable:
    """Labels from the CSV; ``image`` is ``/abs/age_gender.csv::row=N`` (N = 0-based data row)."""
    path = Path(path).expanduser()
    frame = read_csv(path)
    require_columns(frame, COLUMNS, path, "Kaggle age_gender")
    counts = [_value_count(text) for text in frame["pixels"]]
    container = os.path.abspath(path)
    anomalies = [
        Anomaly(name, f"{count} pixel values, expected {PIXELS}: labels kept, no image")
        for name, count in zip(frame["img_name"], counts)
        if count != PIXELS
    ]
    table = pd.DataFrame(
        {
            "image": [f"{container}{MEMBER_SEP}{ROW_PREFIX}{row}" if n == PIXELS else None for row, n in enumerate(counts)],
            "file": frame["img_name"],
            "age": parse_ages(frame["age"], "age", path),
            "gender": normalize_column(frame["gender"], labels.normalize_gender, "gender", path),
            "race": normalize_column(frame["ethnicity"], labels.normalize_race, "ethnicity", path),
        }
    )
    return make_table(table, DATASET, path, anomalies)


@lru_cache(maxsize=2)
def _pixel_column(path: str, size: int, mtime_ns: int) -> tuple[str, ...]:
    """The pixel strings of one CSV, read once per file version for a gallery's worth of lookups."""
    return tuple(pd.read_csv(path, usecols=["pixels"], dtype=str, keep_default_na=False)["pixels"])


def row_pixels(path: str, row: int) -> np.ndarray:
    """The 48x48 uint8 grey face in data row ``row`` of an age_gender CSV."""
    try:
        stat = os.stat(path)
        column = _pixel_column(path, stat.st_size, stat.st_mtime_ns)
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise ImageError(f"cannot read pixels from {path} ({error})") from None
    if not 0 <= row < len(column):
        raise ImageError(f"{path} has no data row {row}")
    try:
        values = np.array(column[row].split(), dtype=np.int64)
    except (ValueError, OverflowError):
        raise ImageError(f"{path} row {row}: pixel values are not whole numbers in 0..255") from None
    if values.size != PIXELS or values.min() < 0 or values.max() > 255:
        raise ImageError(f"{path} row {row}: expected {PIXELS} values in 0..255, got {values.size}")
    return values.astype(np.uint8).reshape(SIDE, SIDE)


def row_png(path: str, member: str) -> bytes:
    """A ``row=N`` member of an age_gender CSV as grey PNG bytes."""
    if not member.startswith(ROW_PREFIX) or not member[len(ROW_PREFIX):].isdigit():
        raise ImageError(f"not a CSV row reference: {member!r} (expected row=N)")
    buffer = io.BytesIO()
    Image.fromarray(row_pixels(path, int(member[len(ROW_PREFIX):]))).save(buffer, format="PNG")
    return buffer.getvalue()
