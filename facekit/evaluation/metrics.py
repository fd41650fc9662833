"""Metric functions of (y_true, y_pred or probabilities[, groups]), shared by training,
``facekit evaluate``, the report and the app. Missing labels are given as -1 (classes) or
NaN (age) and are left out of each metric, never counted as a class.

Each metric is written once, as a "batched" function that reduces the last sample axis and
keeps any leading axes. The plain functions call it on one array of known labels; the
group metrics call it on a (resamples, faces) index matrix, which makes 200 bootstrap
resamples one numpy call per group instead of 200 Python loops.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from facekit import labels
from facekit.labels import INTERVAL, age_summary

ECE_BINS = 15
CS_YEARS = 5  # cumulative score CS@5: share of faces whose age is off by at most this many years
MIN_GROUP = 30  # groups with fewer faces are flagged as too small to read much into
N_BOOT = 200
CI = 0.95


def _known(y_true: np.ndarray) -> np.ndarray:
    y_true = np.asarray(y_true)
    return ~np.isnan(y_true) if y_true.dtype.kind == "f" else y_true >= 0


# ---- batched cores: the last axis (for probabilities and intervals the one before) is faces


def _batched_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    return np.mean(y_true == y_pred, axis=-1)


def _batched_balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Mean recall over the classes present in y_true (sklearn's definition)."""
    recalls = []
    for c in np.unique(y_true):
        members = y_true == c
        support = members.sum(-1)
        hits = (members & (y_pred == c)).sum(-1)
        recalls.append(np.where(support > 0, hits / np.maximum(support, 1), np.nan))
    return np.nanmean(np.stack(recalls), axis=0)


def _ece_bins(y_true: np.ndarray, probs: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin (last axis): face count, summed confidence and summed correctness."""
    confidence = probs.max(-1)
    correct = probs.argmax(-1) == y_true
    which = np.clip(np.digitize(confidence, np.linspace(0, 1, bins + 1)[1:-1]), 0, bins - 1)
    members = which[..., None] == np.arange(bins)  # (..., faces, bins)
    return members.sum(-2), (members * confidence[..., None]).sum(-2), (members * correct[..., None]).sum(-2)


def _batched_ece(y_true: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    counts, confidence, correct = _ece_bins(y_true, probs, bins)
    gap = np.abs(correct - confidence) / np.maximum(counts, 1)
    return (counts * gap).sum(-1) / np.maximum(counts.sum(-1), 1)


def _batched_mae(age_true: np.ndarray, age_pred: np.ndarray) -> np.ndarray:
    return np.mean(np.abs(age_true - age_pred), axis=-1)


def _batched_rmse(age_true: np.ndarray, age_pred: np.ndarray) -> np.ndarray:
    return np.sqrt(np.mean((age_true - age_pred) ** 2, axis=-1))


def _batched_cs(age_true: np.ndarray, age_pred: np.ndarray) -> np.ndarray:
    return np.mean(np.abs(age_true - age_pred) <= CS_YEARS, axis=-1)


def _batched_coverage(age_true: np.ndarray, interval: np.ndarray) -> np.ndarray:
    return np.mean((age_true >= interval[..., 0]) & (age_true <= interval[..., 1]), axis=-1)


def _batched_one_off(bin_true: np.ndarray, bin_pred: np.ndarray) -> np.ndarray:
    return np.mean(np.abs(bin_true - bin_pred) <= 1, axis=-1)


_GROUP_LOW = np.array([low for _, low, _ in labels.AGE_GROUPS], float)
_GROUP_HIGH = np.array([high for _, _, high in labels.AGE_GROUPS], float)


def _batched_in_group(group_true: np.ndarray, age_pred: np.ndarray) -> np.ndarray:
    """Share of faces whose predicted age lies in the years their perceived age group allows (labels.AGE_GROUPS)."""
    return np.mean((age_pred >= _GROUP_LOW[group_true]) & (age_pred <= _GROUP_HIGH[group_true]), axis=-1)


def _on_known(core: Callable[..., np.ndarray], y_true: np.ndarray, *others: np.ndarray) -> float:
    known = _known(y_true)
    if not known.any():
        return float("nan")
    return float(core(np.asarray(y_true)[known], *(np.asarray(o)[known] for o in others)))


# ---- plain metrics of known labels


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return _on_known(_batched_accuracy, y_true, y_pred)


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Accuracy that weighs each true class equally: a head that ignores a rare class shows it."""
    return _on_known(_batched_balanced_accuracy, y_true, y_pred)


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of the top-class confidence in equal-width bins (Guo et al. 2017)."""
    return _on_known(lambda t, p: _batched_ece(t, p, bins), y_true, probs)


def age_point_and_interval(age_probs: np.ndarray) -> np.ndarray:
    """(N, 3) expected age, low and high of the 80% interval, per face."""
    return np.array([age_summary(p) for p in np.asarray(age_probs)]).reshape(-1, 3)


def mean_absolute_error(age_true: np.ndarray, age_pred: np.ndarray) -> float:
    return _on_known(_batched_mae, age_true, age_pred)


def root_mean_squared_error(age_true: np.ndarray, age_pred: np.ndarray) -> float:
    """Weighs big age misses more than MAE does."""
    return _on_known(_batched_rmse, age_true, age_pred)


def cumulative_score(age_true: np.ndarray, age_pred: np.ndarray) -> float:
    """CS@5: share of faces whose predicted age is within CS_YEARS of the true age."""
    return _on_known(_batched_cs, age_true, age_pred)


def interval_coverage(age_true: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    """Share of faces whose true age lies in [low, high]; should be close to INTERVAL."""
    return _on_known(_batched_coverage, age_true, np.stack([np.asarray(low), np.asarray(high)], -1))


def one_off_accuracy(bin_true: np.ndarray, bin_pred: np.ndarray) -> float:
    """Share of faces whose predicted age bin is the true one or a neighbour."""
    return _on_known(_batched_one_off, bin_true, bin_pred)


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


# ---- per-head reports: the numbers behind the confusion matrices, P/R/F1 tables and reliability diagrams


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall and F1 of one class (one-vs-rest), and how many faces truly belong to it."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ConfusionMatrix:
    """Counts with true classes as rows and predicted classes as columns."""

    labels: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]

    @classmethod
    def from_dict(cls, data: Mapping) -> ConfusionMatrix:
        """``normalized`` is derived from the counts, so it is not read back."""
        return cls(tuple(data["labels"]), tuple(tuple(row) for row in data["counts"]))

    @property
    def normalized(self) -> tuple[tuple[float, ...], ...]:
        """Rows divided by their totals: the share of each true class given each answer (0 for empty rows)."""
        counts = np.asarray(self.counts, dtype=float)
        totals = counts.sum(1, keepdims=True)
        return tuple(tuple(row) for row in np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0))

    def to_dict(self) -> dict:
        return {"labels": list(self.labels), "counts": [list(r) for r in self.counts],
                "normalized": [[round(v, 4) for v in r] for r in self.normalized]}


@dataclass(frozen=True)
class ReliabilityBin:
    """One bar of a reliability diagram: faces whose top-class confidence fell in [low, high)."""

    low: float
    high: float
    count: int
    confidence: float  # mean top-class probability
    accuracy: float  # share where the top class was right


@dataclass(frozen=True)
class Calibration:
    ece: float
    bins: tuple[ReliabilityBin, ...]  # non-empty bins only

    def to_dict(self) -> dict:
        return {"ece": self.ece, "bins": [asdict(b) for b in self.bins]}

    @classmethod
    def from_dict(cls, data: Mapping) -> Calibration:
        return cls(data["ece"], tuple(ReliabilityBin(**b) for b in data["bins"]))


@dataclass(frozen=True)
class ClassificationMetrics:
    """One classification head on the faces whose label is known."""

    n: int
    accuracy: float | None  # None where a saved summary had no value
    balanced_accuracy: float | None
    per_class: tuple[ClassMetrics, ...]
    confusion_matrix: ConfusionMatrix
    ece: float | None = None  # set by an evaluation, from the same faces' calibration

    def to_dict(self) -> dict:
        data = {"n": self.n, "accuracy": self.accuracy, "balanced_accuracy": self.balanced_accuracy,
                "per_class": [asdict(c) for c in self.per_class], "confusion_matrix": self.confusion_matrix.to_dict()}
        return data if self.ece is None else {**data, "ece": self.ece}

    @classmethod
    def from_dict(cls, data: Mapping) -> ClassificationMetrics:
        return cls(n=data["n"], accuracy=data["accuracy"], balanced_accuracy=data["balanced_accuracy"],
                   per_class=tuple(ClassMetrics(**c) for c in data["per_class"]),
                   confusion_matrix=ConfusionMatrix.from_dict(data["confusion_matrix"]), ece=data.get("ece"))


@dataclass(frozen=True)
class DecadeError:
    decade: str  # of the true age: "0-9", ..., "90+"
    mae: float
    n: int


@dataclass(frozen=True)
class AgeMetrics:
    """The age head: errors in years, the interval's coverage, and the derived age bins."""

    n: int
    mae: float | None  # None (NaN in memory) without ages in years, e.g. FairFace's bins
    rmse: float | None
    cs5: float | None
    interval_coverage: float | None
    interval: float  # the coverage the interval promises
    bin_accuracy: float | None
    bin_one_off_accuracy: float | None
    mae_by_decade: tuple[DecadeError, ...]
    per_class: tuple[ClassMetrics, ...]  # per age bin
    confusion_matrix: ConfusionMatrix  # of the age bins

    def to_dict(self) -> dict:
        data = {k: getattr(self, k) for k in ("n", "mae", "rmse", "cs5", "interval_coverage", "interval",
                                               "bin_accuracy", "bin_one_off_accuracy")}
        data["mae_by_decade"] = [asdict(d) for d in self.mae_by_decade]
        data["per_class"] = [asdict(c) for c in self.per_class]
        data["confusion_matrix"] = self.confusion_matrix.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping) -> AgeMetrics:
        scalars = {k: data[k] for k in ("n", "mae", "rmse", "cs5", "interval_coverage", "interval", "bin_accuracy",
                                        "bin_one_off_accuracy")}
        return cls(**scalars, mae_by_decade=tuple(DecadeError(**d) for d in data["mae_by_decade"]),
                   per_class=tuple(ClassMetrics(**c) for c in data["per_class"]),
                   confusion_matrix=ConfusionMatrix.from_dict(data["confusion_matrix"]))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> ConfusionMatrix:
    known = _known(y_true)
    k = len(classes)
    flat = np.asarray(y_true)[known] * k + np.asarray(y_pred)[known]
    counts = np.bincount(flat.astype(int), minlength=k * k).reshape(k, k)
    return ConfusionMatrix(tuple(classes), tuple(tuple(int(v) for v in row) for row in counts))


def per_class_metrics(matrix: ConfusionMatrix) -> tuple[ClassMetrics, ...]:
    """P/R/F1 from a confusion matrix; 0 where undefined (no predictions or no faces), as sklearn's zero_division=0."""
    counts = np.asarray(matrix.counts, dtype=float)
    hits, predicted, support = np.diag(counts), counts.sum(0), counts.sum(1)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    return tuple(ClassMetrics(label, float(p), float(r), float(f), int(s))
                 for label, p, r, f, s in zip(matrix.labels, precision, recall, f1, support))


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> ClassificationMetrics:
    """Everything about one head's class answers (indices into ``classes``, -1 for unknown truth)."""
    matrix = confusion_matrix(y_true, y_pred, classes)
    return ClassificationMetrics(n=int(_known(y_true).sum()), accuracy=accuracy(y_true, y_pred),
                                 balanced_accuracy=balanced_accuracy(y_true, y_pred),
                                 per_class=per_class_metrics(matrix), confusion_matrix=matrix)


def calibration(y_true: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> Calibration:
    """Reliability-diagram data and ECE from the same bins, so the diagram and the number agree."""
    known = _known(y_true)
    y_true, probs = np.asarray(y_true)[known], np.asarray(probs)[known]
    counts, confidence, correct = _ece_bins(y_true, probs, bins)
    edges = np.linspace(0, 1, bins + 1)
    rows = tuple(ReliabilityBin(float(edges[b]), float(edges[b + 1]), int(counts[b]),
                                float(confidence[b] / counts[b]), float(correct[b] / counts[b]))
                 for b in range(bins) if counts[b])
    return Calibration(expected_calibration_error(y_true, probs, bins), rows)


def age_decade(age: float) -> str:
    decade = min(int(age // 10), 9)
    return "90+" if decade == 9 else f"{decade * 10}-{decade * 10 + 9}"


def age_metrics(age_true: np.ndarray, age_pred: np.ndarray, low: np.ndarray, high: np.ndarray,
                bin_true: np.ndarray, bin_pred: np.ndarray) -> AgeMetrics:
    """Years-based numbers on faces with a known age; bin numbers on faces with a known bin (FairFace has bins only)."""
    age_true, age_pred = np.asarray(age_true, float), np.asarray(age_pred, float)
    known = _known(age_true)
    errors: dict[str, list[float]] = {}
    for true, error in zip(age_true[known], np.abs(age_true - age_pred)[known]):
        errors.setdefault(age_decade(true), []).append(float(error))
    order = sorted(errors, key=lambda d: int(d.split("-")[0].rstrip("+")))
    by_decade = tuple(DecadeError(d, float(np.mean(errors[d])), len(errors[d])) for d in order)
    bins = classification_metrics(bin_true, bin_pred, labels.AGE_BIN_LABELS)
    return AgeMetrics(n=int(known.sum()), mae=mean_absolute_error(age_true, age_pred),
                      rmse=root_mean_squared_error(age_true, age_pred), cs5=cumulative_score(age_true, age_pred),
                      interval_coverage=interval_coverage(age_true, low, high), interval=INTERVAL,
                      bin_accuracy=bins.accuracy, bin_one_off_accuracy=one_off_accuracy(bin_true, bin_pred),
                      mae_by_decade=by_decade, per_class=bins.per_class, confusion_matrix=bins.confusion_matrix)


# ---- group metrics: the same cores by group (fairlearn's MetricFrame), with bootstrap CIs


@dataclass(frozen=True)
class GroupMetric:
    """A metric ready for group analysis: per-face truth and prediction and its batched core."""

    name: str  # "<head>.<metric>", e.g. "race.accuracy"
    y_true: np.ndarray  # -1 / NaN where unknown
    y_pred: np.ndarray  # (faces,) or (faces, k): probabilities, or an age interval
    core: Callable[[np.ndarray, np.ndarray], np.ndarray]
    higher_is_better: bool = True


@dataclass(frozen=True)
class GroupValue:
    metric: str
    feature: str  # "all" or a group feature: "gender", "race", "race7", "skin", "age_group", "face_size", ...
    group: str
    value: float | None  # None where a saved summary had no value (NaN in memory)
    ci_low: float | None
    ci_high: float | None
    n: int
    small: bool  # fewer than the minimum group size: shown, but read with care

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> GroupValue:
        return cls(**data)


@dataclass(frozen=True)
class Gap:
    """The largest difference between groups of one feature, among groups of at least the minimum size."""

    metric: str
    feature: str
    worst_group: str
    worst: float
    best_group: str
    best: float
    difference: float  # max - min (fairlearn's between_groups difference)
    ratio: float | None  # min / max; None once saved when the max is 0
    groups_compared: int
    small_groups: tuple[str, ...]  # left out of the gap, still listed among the values

    def to_dict(self) -> dict:
        return {**asdict(self), "small_groups": list(self.small_groups)}

    @classmethod
    def from_dict(cls, data: Mapping) -> Gap:
        return cls(**{**data, "small_groups": tuple(data["small_groups"])})


@dataclass(frozen=True)
class GroupAnalysis:
    values: tuple[GroupValue, ...]
    gaps: tuple[Gap, ...]
    min_size: int
    n_boot: int


def head_group_metrics(gender: np.ndarray, gender_probs: np.ndarray, race: np.ndarray, race_probs: np.ndarray,
                       age: np.ndarray, age_pred: np.ndarray, low: np.ndarray, high: np.ndarray,
                       age_bin: np.ndarray, age_bin_pred: np.ndarray,
                       age_group: np.ndarray | None = None,
                       age_class: tuple[np.ndarray, np.ndarray] | None = None) -> list[GroupMetric]:
    """The metrics every evaluation breaks down by group; ``age_group`` (indexes of labels.AGE_GROUPS, -1
    unknown) adds ``age.in_group``, the share of faces whose predicted age is in their perceived group;
    ``age_class`` (true class, probabilities) of a model's own age groups adds their accuracies."""
    interval = np.stack([np.asarray(low, float), np.asarray(high, float)], -1)
    metrics = []
    for head, y, probs in (("gender", gender, gender_probs), ("race", race, race_probs)):
        y, probs = np.asarray(y), np.asarray(probs)
        metrics += [GroupMetric(f"{head}.accuracy", y, probs.argmax(1), _batched_accuracy),
                    GroupMetric(f"{head}.balanced_accuracy", y, probs.argmax(1), _batched_balanced_accuracy),
                    GroupMetric(f"{head}.ece", y, probs, _batched_ece, higher_is_better=False)]
    age = np.asarray(age, float)
    return metrics + [
        GroupMetric("age.mae", age, np.asarray(age_pred, float), _batched_mae, higher_is_better=False),
        GroupMetric("age.rmse", age, np.asarray(age_pred, float), _batched_rmse, higher_is_better=False),
        GroupMetric("age.cs5", age, np.asarray(age_pred, float), _batched_cs),
        GroupMetric("age.interval_coverage", age, interval, _batched_coverage),
        GroupMetric("age.bin_accuracy", np.asarray(age_bin), np.asarray(age_bin_pred), _batched_accuracy),
        GroupMetric("age.bin_one_off_accuracy", np.asarray(age_bin), np.asarray(age_bin_pred), _batched_one_off),
    ] + ([GroupMetric("age.in_group", np.asarray(age_group), np.asarray(age_pred, float), _batched_in_group)]
         if age_group is not None and (np.asarray(age_group) >= 0).any() else []) + (
        [GroupMetric("age_class.accuracy", np.asarray(age_class[0]), np.asarray(age_class[1]).argmax(1),
                     _batched_accuracy),
         GroupMetric("age_class.balanced_accuracy", np.asarray(age_class[0]), np.asarray(age_class[1]).argmax(1),
                     _batched_balanced_accuracy)]
        if age_class is not None and (np.asarray(age_class[0]) >= 0).any() else [])


def _group_column(values: Sequence[str] | pd.Series) -> pd.Series:
    """Group names as a Series, missing ones as "unknown"; a categorical keeps its order for display."""
    series = pd.Series(values).reset_index(drop=True)
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.add_categories(["unknown"]).fillna("unknown") if series.isna().any() else series
    return series.astype(object).where(series.notna(), "unknown").astype(str)


def _group_order(values: pd.Series) -> list[str]:
    present = set(values)
    if isinstance(values.dtype, pd.CategoricalDtype):
        return [str(c) for c in values.cat.categories if c in present]
    return sorted(present)


def bootstrap_ci(metric: GroupMetric, rows: np.ndarray, rng: np.random.Generator, n_boot: int = N_BOOT,
                 level: float = CI) -> tuple[float, float]:
    """Percentile CI of the metric on ``rows`` (faces with a known label), all resamples in one call."""
    if len(rows) == 0:
        return float("nan"), float("nan")
    resampled = rows[rng.integers(0, len(rows), size=(n_boot, len(rows)))]
    values = metric.core(metric.y_true[resampled], metric.y_pred[resampled])
    low, high = np.nanquantile(values, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)


def _score(metric: GroupMetric, known: np.ndarray, rows: np.ndarray, _: np.ndarray) -> float:
    """A metric on the faces ``rows`` whose label is known: how MetricFrame sees it (rows as y_true)."""
    rows = np.asarray(rows)[known[rows]]
    return float(metric.core(metric.y_true[rows], metric.y_pred[rows])) if len(rows) else float("nan")


def _count(known: np.ndarray, rows: np.ndarray, _: np.ndarray) -> int:
    return int(known[np.asarray(rows)].sum())


def group_metrics(metrics: Sequence[GroupMetric], features: Mapping[str, Sequence[str] | pd.Series],
                  min_size: int = MIN_GROUP, n_boot: int = N_BOOT, seed: int = 0) -> GroupAnalysis:
    """Every metric overall and by every feature's groups (values from fairlearn's MetricFrame),
    with seeded bootstrap CIs and the largest gap between groups of at least ``min_size`` faces.

    MetricFrame gets face row numbers as y_true and y_pred, so one frame per feature serves
    all metrics, each using only the faces whose own label is known. A face with an unknown
    group value is put in the group "unknown" rather than dropped.
    """
    from fairlearn.metrics import MetricFrame

    rng = np.random.default_rng(seed)
    rows = np.arange(len(metrics[0].y_true)) if metrics else np.arange(0)
    known = {m.name: _known(m.y_true) for m in metrics}
    scorers: dict[str, Callable] = {}
    for metric in metrics:
        scorers[metric.name] = partial(_score, metric, known[metric.name])
        scorers[f"n {metric.name}"] = partial(_count, known[metric.name])
    found: list[GroupValue] = []
    gaps: list[Gap] = []
    for metric in metrics:
        members = rows[known[metric.name]]
        if len(members):
            found.append(GroupValue(metric.name, "all", "all", _score(metric, known[metric.name], rows, rows),
                                    *bootstrap_ci(metric, members, rng, n_boot), len(members), len(members) < min_size))
    for feature, values in features.items():
        column = _group_column(values)
        by_group = MetricFrame(metrics=scorers, y_true=rows, y_pred=rows,
                               sensitive_features=pd.Series(column.astype(str), name=feature)).by_group
        order = _group_order(column)
        for metric in metrics:
            sizes = by_group[f"n {metric.name}"]
            for group in order:
                n = int(sizes[group])
                if n:
                    members = rows[(column == group).to_numpy() & known[metric.name]]
                    found.append(GroupValue(metric.name, feature, group, float(by_group.loc[group, metric.name]),
                                            *bootstrap_ci(metric, members, rng, n_boot), n, n < min_size))
            gap = _largest_gap(metric, feature, by_group[metric.name], sizes, min_size)
            if gap is not None:
                gaps.append(gap)
    return GroupAnalysis(tuple(found), tuple(gaps), min_size, n_boot)


def _largest_gap(metric: GroupMetric, feature: str, values: pd.Series, sizes: pd.Series, min_size: int) -> Gap | None:
    """fairlearn's between-groups difference and ratio, over the groups large enough to compare."""
    large = values[(sizes >= min_size) & values.notna()].astype(float)
    if len(large) < 2:
        return None
    worst, best = (large.idxmin(), large.idxmax()) if metric.higher_is_better else (large.idxmax(), large.idxmin())
    low, high = large.min(), large.max()
    return Gap(metric.name, feature, str(worst), float(large[worst]), str(best), float(large[best]),
               float(high - low), float(low / high) if high else float("nan"), len(large),
               tuple(str(g) for g in sizes.index if 0 < sizes[g] < min_size))
