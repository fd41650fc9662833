"""How a dataset is spread over ages, genders and ethnicities, and how unequal that spread is.

Pure functions of a table's frame: the explorer page, the CLI summary and the reports show
the same numbers. Counts cover the known labels; unknown values are counted apart.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional

import pandas as pd

from facekit import labels
from facekit.data.table import CATEGORIES, DatasetTable

COLUMN_NAMES = {"gender": "gender", "race": "ethnicity", "race7": "ethnicity (7)", "age_bin": "age group"}


@dataclass(frozen=True)
class Imbalance:
    """How far a distribution over groups is from equal shares, with a one-sentence reading."""

    groups: int
    smallest: str
    smallest_share: float
    largest: str
    largest_share: float
    ratio: float  # largest / smallest count; inf when a group is empty
    entropy: float  # Shannon entropy / log(groups): 1 = all groups equal, 0 = one group only
    reading: str


def label_counts(frame: pd.DataFrame, column: str) -> pd.Series:
    """Faces per label in schema order, zero-count labels included, unknowns left out."""
    values = frame[column]
    if column in CATEGORIES:
        values = values.astype(pd.CategoricalDtype(CATEGORIES[column], ordered=column == "age_bin"))
        return values.value_counts(sort=False).reindex(list(CATEGORIES[column]), fill_value=0)
    return values.value_counts(sort=False).sort_index()


def crossing(frame: pd.DataFrame, rows: str, columns: str) -> pd.DataFrame:
    """Faces per (row label, column label), every label of both schemas present, unknowns left out."""
    table = pd.crosstab(frame[rows], frame[columns], dropna=True)
    row_labels = list(CATEGORIES.get(rows, table.index))
    column_labels = list(CATEGORIES.get(columns, table.columns))
    return table.reindex(index=row_labels, columns=column_labels, fill_value=0)


def age_summary(frame: pd.DataFrame) -> Optional[dict[str, float]]:
    """min, median, mean and max age in years; None when the dataset has no ages in years (FairFace)."""
    ages = frame["age"].dropna()
    if ages.empty:
        return None
    return {"min": float(ages.min()), "median": float(ages.median()), "mean": float(ages.mean()), "max": float(ages.max())}


def _verdict(ratio: float) -> str:
    """Words for the largest/smallest ratio: people read "6x as many" more easily than an entropy."""
    if ratio <= 1.25:
        return "close to balanced"
    if ratio <= 2:
        return "mildly imbalanced"
    if ratio <= 4:
        return "clearly imbalanced"
    return "strongly imbalanced"


def imbalance(counts: pd.Series, what: str = "group") -> Optional[Imbalance]:
    """Smallest share, largest/smallest ratio and normalized entropy of a count per group.

    None with fewer than two groups or no faces: there is nothing to be unequal.
    """
    total = int(counts.sum())
    if len(counts) < 2 or total == 0:
        return None
    shares = counts / total
    smallest, largest = shares.idxmin(), shares.idxmax()
    ratio = math.inf if counts[smallest] == 0 else float(counts[largest] / counts[smallest])
    entropy = -sum(p * math.log(p) for p in shares if p > 0) / math.log(len(counts))
    if counts[smallest] == 0:
        size = f"the {what} {labels.display(str(smallest))} has no faces at all"
    else:
        size = (
            f"the smallest {what} ({labels.display(str(smallest))}) is {shares[smallest]:.1%} of the faces and the "
            f"largest ({labels.display(str(largest))}) has {ratio:.1f}x as many"
        )
    reading = (
        f"{_verdict(ratio).capitalize()}: {size}; with {len(counts)} equal groups each would be "
        f"{1 / len(counts):.1%}."
    )
    return Imbalance(
        groups=len(counts),
        smallest=str(smallest),
        smallest_share=float(shares[smallest]),
        largest=str(largest),
        largest_share=float(shares[largest]),
        ratio=ratio,
        entropy=float(entropy),
        reading=reading,
    )


def intersection_counts(frame: pd.DataFrame, first: str = "gender", second: str = "race") -> pd.Series:
    """Counts of each (first, second) pair as one flat series, e.g. 'female / black', for ``imbalance``."""
    table = crossing(frame, first, second).stack()
    table.index = [f"{labels.display(a)} / {labels.display(b)}" for a, b in table.index]
    return table


def compare(frames: Mapping[str, pd.DataFrame], column: str) -> pd.DataFrame:
    """Long table (dataset, label, count, share) of one column across datasets, for figures on shared axes."""
    parts = []
    for name, frame in frames.items():
        counts = label_counts(frame, column)
        total = counts.sum()
        parts.append(
            pd.DataFrame(
                {
                    "dataset": name,
                    "label": counts.index.astype(str),
                    "count": counts.to_numpy(),
                    "share": counts.to_numpy() / total if total else 0.0,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def summarize(table: DatasetTable) -> dict:
    """A JSON-ready summary (the CLI's ``data summary --json``): counts, ages and anomalies."""
    frame = table.frame
    return {
        "dataset": table.dataset,
        "source": table.source,
        "faces": len(frame),
        "with_age": int(frame["age"].notna().sum()),
        "with_age_bin": int(frame["age_bin"].notna().sum()),
        "with_gender": int(frame["gender"].notna().sum()),
        "with_race": int(frame["race"].notna().sum()),
        "with_image": int(frame["image"].notna().sum()),
        "gender": {k: int(v) for k, v in label_counts(frame, "gender").items()},
        "race": {k: int(v) for k, v in label_counts(frame, "race").items()},
        "age_bin": {k: int(v) for k, v in label_counts(frame, "age_bin").items()},
        "age": age_summary(frame),
        "anomalies": [{"file": a.file, "reason": a.reason} for a in table.anomalies],
    }


def summary_text(summary: dict, max_anomalies: int = 20) -> str:
    """``summarize``'s numbers as a few readable lines, with the imbalance readings (the CLI's default output)."""

    def counts_line(counts: dict[str, int]) -> str:
        total = sum(counts.values()) or 1
        return " · ".join(f"{labels.display(k)} {v:,} ({v / total:.1%})" for k, v in counts.items())

    lines = [
        f"{summary['dataset']}: {summary['faces']:,} faces ({summary['source']})",
        f"  known: age {summary['with_age']:,} · age group {summary['with_age_bin']:,} · gender "
        f"{summary['with_gender']:,} · ethnicity {summary['with_race']:,} · with image {summary['with_image']:,}",
    ]
    if summary["age"]:
        age = summary["age"]
        lines.append(f"age (years): min {age['min']:g}, median {age['median']:g}, max {age['max']:g}")
    for key, name in (("gender", "gender"), ("race", "ethnicity"), ("age_bin", "age group")):
        if any(summary[key].values()):
            lines.append(f"{name}: {counts_line(summary[key])}")
            result = imbalance(pd.Series(summary[key]), "group")
            if result is not None:
                lines.append(f"  {result.reading}")
    anomalies = summary["anomalies"]
    if anomalies:
        lines.append(f"anomalies ({len(anomalies):,}):")
        lines.extend(f"  {a['file']}: {a['reason']}" for a in anomalies[:max_anomalies])
        if len(anomalies) > max_anomalies:
            lines.append(f"  ... and {len(anomalies) - max_anomalies:,} more (--json lists them all)")
    return "\n".join(lines)
