"""Demographic breakdown of a batch of predictions: who is in a set of photos, with error bars.

A function of ``rows.prediction_rows`` (a list of rows or their DataFrame), so the batch
page and ``facekit predict --summary`` report the same numbers. Shares count each face's
predicted label and carry a Wilson interval for sampling error only; the model's own errors
and biases (see the evaluation page) come on top. Next to each share is the mean
probability the model gave that label, an estimate that keeps the model's uncertainty
instead of rounding every face to one label; when the two differ a lot, the labels are
unsure.
"""
from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

import numpy as np
import pandas as pd

from facekit import labels
from facekit.data.stats import crossing, label_counts
from facekit.labels import MIN_ATTRIBUTE_FACE

CONFIDENCE = 0.95
CAVEAT = (
    "Estimates, not facts: every label is a probabilistic guess from a face, the model is "
    "more often wrong for some groups than others (see the evaluation page), and intervals "
    "cover sampling error only. Use for aggregate statistics, never for decisions about individuals."
)


def wilson_interval(successes: np.ndarray, total: int, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial share: sensible at 0, 1 and small counts, unlike p ± z·se."""
    successes = np.asarray(successes, dtype=float)
    if total <= 0:
        return np.full_like(successes, np.nan), np.full_like(successes, np.nan)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    share = successes / total
    centre = (share + z**2 / (2 * total)) / (1 + z**2 / total)
    half = z / (1 + z**2 / total) * np.sqrt(share * (1 - share) / total + z**2 / (4 * total**2))
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


@dataclass(frozen=True)
class Breakdown:
    """Counts and shares of a batch's faces by gender, ethnicity and age group."""

    inputs: int  # photos or files given
    without_face: int  # inputs that could not be read or had no face
    faces: pd.DataFrame  # one row per face (prediction_rows' columns)
    gender: pd.DataFrame  # per label: count, share, low, high, mean_prob
    race: pd.DataFrame
    age_bin: pd.DataFrame  # per age group: count, share, low, high
    age_gender: pd.DataFrame  # faces per age group (rows) and gender (columns)
    confidence: float = CONFIDENCE

    @property
    def faces_per_photo(self) -> pd.Series:
        """How many faces each input with a face holds (group photos: more than one)."""
        return self.faces.groupby("file").size()

    @property
    def low_resolution(self) -> int:
        """Faces too small for their attributes to be read reliably (``labels.MIN_ATTRIBUTE_FACE``)."""
        return int(self.faces["low_resolution"].fillna(False).astype(bool).sum()) if "low_resolution" in self.faces else 0

    def to_text(self) -> str:
        """Plain-text tables for a terminal."""
        count = len(self.faces)
        parts = [f"{count} face{'s' * (count != 1)} in {self.inputs - self.without_face} of {self.inputs} inputs "
                 f"({self.without_face} unreadable or without a face)"]
        if count:
            per_photo = self.faces_per_photo
            parts.append(f"faces per photo: {per_photo.min()} to {per_photo.max()} (mean {per_photo.mean():.1f}); "
                         f"{self.low_resolution} too small to read reliably (low_resolution: under "
                         f"{MIN_ATTRIBUTE_FACE} px tall)")
        for title, table in (("gender", self.gender), ("ethnicity", self.race), ("age group", self.age_bin)):
            shown = table.copy()
            for column in ("share", "low", "high", "mean_prob"):
                if column in shown:
                    shown[column] = shown[column].map(lambda v: f"{v:.1%}" if pd.notna(v) else "-")
            shown.index = [labels.display(str(label)) for label in shown.index]
            parts.append(f"\n{title} ({self.confidence:.0%} Wilson interval: low-high)\n{shown.to_string()}")
        pyramid = self.age_gender.rename(columns=labels.display).rename_axis(index="age group", columns=None)
        parts.append(f"\nage group x gender (faces)\n{pyramid.to_string()}")
        parts.append(f"\n{CAVEAT}")
        return "\n".join(parts) + "\n"


def _shares(faces: pd.DataFrame, column: str, confidence: float) -> pd.DataFrame:
    counts = label_counts(faces, column)
    total = int(counts.sum())
    low, high = wilson_interval(counts.to_numpy(), total, confidence)
    table = pd.DataFrame({"count": counts, "share": counts / total if total else np.nan, "low": low, "high": high})
    if column == "race":
        table["mean_prob"] = [faces[f"p_{label}"].mean() if total else np.nan for label in counts.index]
    elif column == "gender":
        p_female = faces["p_female"].mean() if total else np.nan
        table["mean_prob"] = [1 - p_female if label == "male" else p_female for label in counts.index]
    return table


def breakdown(rows: Sequence[dict] | pd.DataFrame, confidence: float = CONFIDENCE) -> Breakdown:
    """The batch's breakdown from ``prediction_rows`` (one row per face, or per input without one)."""
    frame = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows
    if frame.empty:
        frame = pd.DataFrame(columns=["file", "face", "gender", "race", "age_bin", "p_female", "error"])
    has_face = frame["face"].notna()
    faces = frame[has_face].drop(columns="error", errors="ignore").reset_index(drop=True)
    faces["face"] = faces["face"].astype(int)
    for column in ("gender", "race", "age_bin", "p_female", *(f"p_{race}" for race in labels.RACES)):
        if column not in faces:
            faces[column] = pd.Series(dtype=float if column.startswith("p_") else object)
    return Breakdown(
        inputs=int(frame["file"].nunique()),
        without_face=int(frame.loc[~has_face, "file"].nunique()),
        faces=faces,
        gender=_shares(faces, "gender", confidence),
        race=_shares(faces, "race", confidence),
        age_bin=_shares(faces, "age_bin", confidence),
        age_gender=crossing(faces, "age_bin", "gender"),
        confidence=confidence,
    )
