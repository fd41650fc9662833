"""Dataset metrics on small hand-made tables whose answers can be worked out by hand."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from facekit.data.stats import age_summary, compare, crossing, imbalance, intersection_counts, label_counts, summarize
from facekit.data.table import Anomaly, make_table


def table(rows: list[tuple], anomalies=()):
    frame = pd.DataFrame(rows, columns=["file", "age", "gender", "race"])
    return make_table(frame, "test", "hand-made", anomalies)


ROWS = [
    ("a", 5, "male", "white"),
    ("b", 25, "male", "white"),
    ("c", 35, "female", "white"),
    ("d", 71, "female", "black"),
    ("e", None, "female", None),
]


def test_label_counts_keep_schema_order_and_zero_groups() -> None:
    counts = label_counts(table(ROWS).frame, "race")
    assert counts.to_dict() == {"white": 3, "black": 1, "asian": 0, "indian": 0, "others": 0}
    assert label_counts(table(ROWS).frame, "age_bin")["70+"] == 1


def test_crossing_has_every_label_pair() -> None:
    cross = crossing(table(ROWS).frame, "race", "gender")
    assert cross.shape == (5, 2)
    assert cross.loc["white", "male"] == 2 and cross.loc["black", "female"] == 1 and cross.loc["asian"].sum() == 0
    pairs = intersection_counts(table(ROWS).frame)
    assert pairs["Male / White"] == 2 and len(pairs) == 10


def test_imbalance_figures() -> None:
    even = imbalance(pd.Series({"x": 50, "y": 50}))
    assert even.ratio == 1 and even.entropy == pytest.approx(1) and even.reading.startswith("Close to balanced")
    skewed = imbalance(pd.Series({"x": 90, "y": 10}), "gender")
    assert skewed.smallest == "y" and skewed.smallest_share == pytest.approx(0.1) and skewed.ratio == pytest.approx(9)
    expected = -(0.9 * math.log(0.9) + 0.1 * math.log(0.1)) / math.log(2)
    assert skewed.entropy == pytest.approx(expected)
    assert "Strongly imbalanced" in skewed.reading and "10.0%" in skewed.reading and "9.0x" in skewed.reading
    empty_group = imbalance(pd.Series({"x": 10, "y": 0}))
    assert empty_group.ratio == math.inf and "no faces at all" in empty_group.reading
    assert imbalance(pd.Series({"x": 0, "y": 0})) is None and imbalance(pd.Series({"x": 4})) is None


def test_age_summary_and_compare() -> None:
    assert age_summary(table(ROWS).frame) == {"min": 5.0, "median": 30.0, "mean": 34.0, "max": 71.0}
    assert age_summary(table([("a", None, "male", None)]).frame) is None
    long = compare({"one": table(ROWS).frame, "two": table(ROWS[:2]).frame}, "gender")
    assert list(long["dataset"]) == ["one", "one", "two", "two"]
    assert long.loc[long["dataset"] == "one", "share"].tolist() == pytest.approx([0.4, 0.6])
    assert long.loc[long["dataset"] == "two", "count"].tolist() == [2, 0]


def test_summarize_is_json_ready() -> None:
    summary = summarize(table(ROWS, [Anomaly("e", "no race field")]))
    assert summary["faces"] == 5 and summary["with_race"] == 4 and summary["with_age"] == 4
    assert summary["gender"] == {"male": 2, "female": 3}
    assert summary["race"]["white"] == 3
    assert summary["age"]["median"] == 30.0
    assert summary["anomalies"] == [{"file": "e", "reason": "no race field"}]
