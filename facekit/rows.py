"""Every table facekit writes: the columns of prediction and track rows, and the CSV and JSON writers.

One module so the CLI, the service, the app's downloads, the Ray engine and the evaluation
reports agree on names, order and types. Ids (face, track, frames) are whole numbers, empty
where a row has none; JSON never holds NaN or Infinity (it would not be JSON); CSV quotes
every text cell, so a carriage return in a file name cannot split a row, and a text cell a
spreadsheet would run as a formula (``=HYPERLINK(...)``, ``+``, ``-``, ``@``) starts with an
apostrophe, which ``read_csv`` takes off again.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Protocol, Sequence

import numpy as np
import pandas as pd

from facekit import labels
from facekit.files import atomic_write

if TYPE_CHECKING:
    from facekit.predict import ImageResult

# The 7 classes that are not also one of the 5 (p_white, p_black and p_indian mean the same in both).
RACE7_ONLY = tuple(race for race in labels.RACE7 if race not in labels.RACES)
# Each head's answer: the fields ``answer_fields`` fills, shared by face rows and track rows.
ANSWER_COLUMNS = ("gender", "p_female", "race", *(f"p_{race}" for race in labels.RACES),
                  "race7", *(f"p_{race}" for race in RACE7_ONLY), "age", "age_low", "age_high")
PREDICTION_COLUMNS = ("file", "face", "x1", "y1", "x2", "y2", "det_score", *ANSWER_COLUMNS, "age_bin",
                      "low_resolution", "error")
TRACK_COLUMNS = ("file", "track", "first_seen", "last_seen", "frames", *ANSWER_COLUMNS, "error")
ID_COLUMNS = ("face", "track", "frames")
TEXT_COLUMNS = ("file", "image", "error", "status")  # read back as text even when a name looks like a number
# What a spreadsheet reads as the start of a formula; such a text cell gets FORMULA_GUARD in front.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FORMULA_GUARD = "'"


class Answer(Protocol):
    """One face's answer as rows and labels read it: a ``FacePrediction``, or a followed face's pooled answer."""

    gender: str
    gender_probs: dict[str, float]
    race: str
    race_probs: dict[str, float]
    age: float
    age_low: float
    age_high: float


def answer_fields(answer: Answer) -> dict:
    """Each head's answer as row fields (ANSWER_COLUMNS); race7 and its probabilities are empty from a 5-class model."""
    row = {"gender": answer.gender, "p_female": round(answer.gender_probs["female"], 4), "race": answer.race}
    row.update({f"p_{race}": round(p, 4) for race, p in answer.race_probs.items()})
    race7_probs = getattr(answer, "race7_probs", None) or {}
    row["race7"] = getattr(answer, "race7", None)
    row.update({f"p_{race}": round(race7_probs[race], 4) if race7_probs else None for race in RACE7_ONLY})
    row.update({"age": answer.age, "age_low": answer.age_low, "age_high": answer.age_high})
    return row


def prediction_rows(results: Iterable["ImageResult"]) -> list[dict]:
    """Flat rows (PREDICTION_COLUMNS), one per face, or one per input without a face (``error`` says why)."""
    rows = []
    for result in results:
        if not result.faces:
            rows.append({"file": result.source, "face": None, "error": result.message})
            continue
        for index, face in enumerate(result.faces):
            x1, y1, x2, y2 = face.box
            rows.append({"file": result.source, "face": index, "x1": x1, "y1": y1, "x2": x2, "y2": y2,
                         "det_score": face.det_score, **answer_fields(face), "age_bin": face.age_bin,
                         "low_resolution": face.low_resolution, "error": ""})
    return rows


def track_rows(source: str, tracks: Sequence[Any], reason: str) -> list[dict]:
    """One row per followed face (TRACK_COLUMNS; each track a ``track.TrackSummary``), or one row with ``reason``."""
    if not tracks:
        return [{"file": source, "track": None, "error": reason}]
    return [{"file": source, "track": summary.track, "first_seen": summary.first_seen, "last_seen": summary.last_seen,
             "frames": summary.frames, **answer_fields(summary), "error": ""} for summary in tracks]


def table(rows: Sequence[dict] | pd.DataFrame) -> pd.DataFrame:
    """The rows as one DataFrame: every column any row has, in first-seen order, ids as whole numbers."""
    if isinstance(rows, pd.DataFrame):
        frame = rows.copy()
    else:
        frame = pd.DataFrame(list(rows), columns=list(dict.fromkeys(key for row in rows for key in row)))
    for column in ID_COLUMNS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("Int64")
    return frame


def _text_columns(frame: pd.DataFrame) -> list[str]:
    return [column for column in frame.columns
            if pd.api.types.is_object_dtype(frame[column]) or pd.api.types.is_string_dtype(frame[column])]


def _guard(value: Any) -> Any:
    if isinstance(value, str) and value.startswith((*FORMULA_STARTS, FORMULA_GUARD)):
        return FORMULA_GUARD + value
    return value


def csv_text(rows: Sequence[dict] | pd.DataFrame) -> str:
    """The rows as CSV text, safe to open in a spreadsheet and read back by ``read_csv`` unchanged."""
    frame = table(rows)
    for column in _text_columns(frame):
        frame[column] = frame[column].map(_guard)
    return frame.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")


def read_csv(source: os.PathLike | str | io.StringIO) -> pd.DataFrame:
    """A CSV written by ``csv_text``, its text cells as they were before the formula guard.

    Only an empty cell is missing: a file named ``NA`` or ``null`` stays a name."""
    frame = pd.read_csv(source, dtype=dict.fromkeys(TEXT_COLUMNS, str), keep_default_na=False, na_values=[""])
    for column in _text_columns(frame):
        frame[column] = frame[column].map(
            lambda value: value[1:] if isinstance(value, str) and value.startswith(FORMULA_GUARD) else value)
    return table(frame)


def finite(value: Any) -> Any:
    """NaN and infinity as None, numpy scalars as Python ones: JSON has no NaN, and a missing value reads as missing."""
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if value is pd.NA:
        return None
    return value


def json_text(value: Any, indent: int | None = 2) -> str:
    """Strict JSON (no NaN, no Infinity) of rows or any document of them."""
    return json.dumps(finite(value), indent=indent, allow_nan=False)


def write_text(path: os.PathLike | str, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path`` and rename it, so a reader never sees half a file."""
    path = Path(path)
    atomic_write(path, lambda temporary: temporary.write_text(text))
    return path
