"""Metric functions of (y_true, y_pred or probabilities[, groups]), shared by training,
``facekit evaluate``, the report and the app. Missing labels are given as -1 (classes) or
NaN (age) and are left out of each metric, never counted as a class."""
from __future__ import annotations

import numpy as np

from facekit.predict import INTERVAL, age_summary


def _known(y_true: np.ndarray) -> np.ndarray:
    y_true = np.asarray(y_true)
    return ~np.isnan(y_true) if y_true.dtype.kind == "f" else y_true >= 0


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    known = _known(y_true)
    return float((np.asarray(y_true)[known] == np.asarray(y_pred)[known]).mean()) if known.any() else float("nan")


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """ECE of the top-class confidence in equal-width bins (Guo et al. 2017)."""
    known = _known(y_true)
    y_true, probs = np.asarray(y_true)[known], np.asarray(probs)[known]
    if not len(y_true):
        return float("nan")
    confidence = probs.max(1)
    correct = probs.argmax(1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(error)


def age_point_and_interval(age_probs: np.ndarray) -> np.ndarray:
    """(N, 3) expected age, low and high of the 80% interval, per face."""
    return np.array([age_summary(p) for p in np.asarray(age_probs)]).reshape(-1, 3)


def mean_absolute_error(age_true: np.ndarray, age_pred: np.ndarray) -> float:
    known = _known(age_true)
    return float(np.abs(np.asarray(age_true)[known] - np.asarray(age_pred)[known]).mean()) if known.any() else float("nan")


def interval_coverage(age_true: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Share of faces whose true age lies in [low, high]; should be close to INTERVAL."""
    known = _known(age_true)
    age_true = np.asarray(age_true)[known]
    return float(((age_true >= np.asarray(low)[known]) & (age_true <= np.asarray(high)[known])).mean())


def head_summary(gender: np.ndarray, race: np.ndarray, age: np.ndarray, probs: dict[str, np.ndarray]) -> dict:
    """The headline numbers of the three heads (fractions, not percents)."""
    summary = age_point_and_interval(probs["age"])
    return {
        "gender": {"accuracy": accuracy(gender, probs["gender"].argmax(1)),
                   "ece": expected_calibration_error(gender, probs["gender"])},
        "race": {"accuracy": accuracy(race, probs["race"].argmax(1)),
                 "ece": expected_calibration_error(race, probs["race"])},
        "age": {"mae": mean_absolute_error(age, summary[:, 0]),
                "interval_coverage": interval_coverage(age, summary[:, 1], summary[:, 2]),
                "interval": INTERVAL},
    }
