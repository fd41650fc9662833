"""The one table every dataset reader returns, and the small helpers readers share to build it.

Whatever the source format, a reader gives a ``DatasetTable``: the same columns with labels
from ``facekit.labels`` (as categoricals, so every class shows up in counts even at zero),
unknown values as NA, and the defects it survived listed as ``Anomaly`` records instead of
being dropped silently or crashing the read.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
import pandas as pd

from facekit import labels
from facekit.errors import UserError, first_line

# Columns every reader gives, in this order; reader-specific ones (race7, age_group, split...) follow.
COLUMNS: tuple[str, ...] = ("image", "file", "age", "age_bin", "gender", "race", "dataset")
CATEGORIES: dict[str, tuple[str, ...]] = {
    "age_bin": labels.AGE_BIN_LABELS,
    "gender": labels.GENDERS,
    "race": labels.RACES,
    "race7": labels.FAIRFACE_RACES,
}


class DatasetError(UserError):
    """A dataset that cannot be read as asked; the message is one line a person can act on."""


@dataclass(frozen=True)
class Anomaly:
    """A defect a reader survived: which file (or CSV) and what was odd about it."""

    file: str
    reason: str


@dataclass
class DatasetTable:
    """A dataset as one DataFrame of faces (columns ``COLUMNS`` first) plus what was odd in it.

    ``image`` is a reference for ``facekit.data.read_image_bytes``: a file path,
    ``archive.tar.gz::member`` or ``age_gender.csv::row=N``; NA when there is no image.
    """

    frame: pd.DataFrame
    dataset: str
    source: str
    anomalies: list[Anomaly] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def has_images(self) -> bool:
        return bool(self.frame["image"].notna().any())


def make_table(frame: pd.DataFrame, dataset: str, source: object, anomalies: Iterable[Anomaly]) -> DatasetTable:
    """Give a reader's frame the shared schema: missing columns as NA, ages as float, labels as categoricals.

    ``age_bin`` is derived from ``age`` when the reader gives years only, so every table can
    be compared bin by bin with FairFace.
    """
    frame = frame.reset_index(drop=True)
    for column in COLUMNS:
        if column not in frame:
            frame[column] = pd.NA
    frame["age"] = pd.to_numeric(frame["age"]).astype(float)
    if frame["age_bin"].isna().all():
        frame["age_bin"] = frame["age"].map(labels.age_to_bin)
    for column, categories in CATEGORIES.items():
        if column in frame:
            values = frame[column].astype(object).where(frame[column].notna(), None)
            unknown = set(values.dropna()) - set(categories)
            if unknown:  # a reader bug, not a data problem: readers normalize before this
                raise ValueError(f"column {column!r} has values outside the label schema: {sorted(unknown)}")
            frame[column] = pd.Categorical(values, categories=categories, ordered=column == "age_bin")
    frame["image"] = frame["image"].astype(object).where(frame["image"].notna(), None)
    frame["dataset"] = dataset
    order = list(COLUMNS) + [column for column in frame.columns if column not in COLUMNS]
    return DatasetTable(frame[order], dataset, str(source), list(anomalies))


def read_csv(path: Path, nrows: Optional[int] = None) -> pd.DataFrame:
    """A CSV as text columns with lower-case names; anything unreadable is a one-line DatasetError."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, nrows=nrows)
    except FileNotFoundError:
        raise DatasetError(f"no such file: {path}") from None
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{path}: empty file, no CSV header") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as error:
        raise DatasetError(f"{path}: not a readable CSV ({first_line(error)})") from None
    frame.columns = [str(column).strip().lower() for column in frame.columns]
    return frame


def require_columns(frame: pd.DataFrame, required: Iterable[str], path: Path, kind: str) -> None:
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise DatasetError(
            f"{path}: a {kind} CSV needs column(s) {', '.join(missing)}; it has {', '.join(frame.columns)}"
        )


def normalize_column(
    values: pd.Series, normalize: Callable[[object], Optional[str]], column: str, path: Path
) -> pd.Series:
    """Map each distinct value through a ``labels.normalize_*`` function once; a bad value names its line."""
    mapping: dict[object, Optional[str]] = {}
    for value in values.unique():
        try:
            mapping[value] = normalize(value)
        except ValueError as error:
            line = int((values == value).to_numpy().argmax()) + 2  # 1-based, after the header
            raise DatasetError(f"{path}: column '{column}', line {line}: {error}") from None
    return values.map(mapping)


def parse_numbers(values: pd.Series, column: str, path: Path, what: str, maximum: float = np.inf) -> pd.Series:
    """Non-negative finite numbers up to ``maximum`` as floats (empty = NaN); any other cell is a DatasetError
    naming its line and saying it is not ``what``."""
    text = values.astype(str).str.strip()
    numbers = pd.to_numeric(text.where(text != ""), errors="coerce")
    bad = (numbers.isna() & (text != "")) | (numbers < 0) | (numbers > maximum) | np.isinf(numbers)
    if bad.any():
        line = int(bad.to_numpy().argmax())
        raise DatasetError(f"{path}: column '{column}', line {line + 2}: {text.iloc[line]!r} is not {what}")
    return numbers.astype(float)


def parse_ages(values: pd.Series, column: str, path: Path) -> pd.Series:
    """Ages in years (empty = NaN); text, a negative number, infinity or an age over ``labels.MAX_AGE_YEARS``
    is a DatasetError naming its line."""
    return parse_numbers(values, column, path, "an age in years", labels.MAX_AGE_YEARS)


def resolve_images(
    names: pd.Series, base: Path, anomalies: list[Anomaly], *, expected: bool, source: Path
) -> pd.Series:
    """Absolute paths of the named images that exist under ``base``, NA for the others.

    Each folder is listed once instead of one stat per row (FairFace has ~100k rows). When no
    image exists at all the table is labels only: one note (if images were ``expected``), not
    one anomaly per row.
    """
    base_text = os.path.abspath(base)
    paths = [os.path.normpath(os.path.join(base_text, str(name))) for name in names]  # str ops: ~100k rows
    listing: dict[str, set[str]] = {}
    exists = []
    for path in paths:
        folder, name = os.path.split(path)
        if folder not in listing:
            listing[folder] = set(os.listdir(folder)) if os.path.isdir(folder) else set()
        exists.append(name in listing[folder])
    if not any(exists):
        if expected and len(paths):
            anomalies.append(Anomaly(source.name, f"no images found under {base_text}: labels only"))
        return pd.Series([None] * len(paths), index=names.index, dtype=object)
    anomalies.extend(Anomaly(str(name), "image file not found") for name, ok in zip(names, exists) if not ok)
    return pd.Series([path if ok else None for path, ok in zip(paths, exists)], index=names.index, dtype=object)


def labelled_boxes(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each face's labelled box (x1, y1, x2, y2) in its image, where the table gives one (``x, y, w, h``)."""
    if not {"x", "y", "w", "h"} <= set(frame.columns):
        return {}
    boxes = frame[["x", "y", "w", "h"]].to_numpy(np.float32, copy=True)
    boxes[:, 2:] += boxes[:, :2]
    return {name: box for name, box in zip(frame["file"], boxes) if np.isfinite(box).all()}


def age_ranges(frame: pd.DataFrame) -> np.ndarray:
    """(n, 2) years each face's age bin or perceived age group allows; NaN where it has years or nothing."""
    ranges = np.full((len(frame), 2), np.nan)
    years_known = frame["age"].notna().to_numpy()
    bins = {label: (low, min(high, labels.AGE_MAX)) for label, low, high in labels.AGE_BINS}
    groups = {label: (low, min(high, labels.AGE_MAX)) for label, low, high in labels.AGE_GROUPS}
    for column, table in (("age_bin", bins), ("age_group", groups)):
        if column not in frame:
            continue
        for row, value in enumerate(frame[column].astype(object)):
            # A label of other groups (seed 003's YOUNG/MIDDLE/OLD) gives no range: an age-group head reads it by name.
            if not years_known[row] and value in table and np.isnan(ranges[row, 0]):
                ranges[row] = table[value]
    return ranges


def age_group_classes(frame: pd.DataFrame, groups: tuple[tuple[str, int, int], ...],
                      ranges: np.ndarray) -> np.ndarray:
    """(n,) each face's class of an age-group head's ``groups`` (``labels.age_group_index``) from its group
    label, years or ``ranges`` (``age_ranges``); -1 where none holds it. Training and evaluation read it alike."""
    named = frame["age_group"].astype(object) if "age_group" in frame else [None] * len(frame)
    if not groups:
        return np.full(len(frame), -1, np.int64)
    return np.array([labels.age_group_index(groups, years, label, tuple(span))
                     for years, label, span in zip(frame["age"].to_numpy(np.float64), named, ranges)], np.int64)
