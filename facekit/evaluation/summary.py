"""The evaluation summary as typed data, and what a checkpoint's sidecar says about its training data.

``EvaluationSummary`` is what ``facekit evaluate`` computes and writes as evaluation.json;
``to_dict`` gives the JSON (keys unchanged since the first reports, so every committed report
still loads) and ``from_dict`` reads it back. Pages, reports, the card, the service and the
CLI read attributes, never string keys.

Sidecars of models trained on several datasets list one entry per dataset under ``data`` and
``metrics.validation``; older ones hold one dict. ``training_data`` and ``validation_scores``
read both as the same dataclasses, so nothing else branches on the sidecar's age.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from facekit.evaluation.metrics import AgeMetrics, Calibration, ClassificationMetrics, Gap, GroupValue
from facekit.rows import finite

FORMAT = "facekit-evaluation/1"
CLASS_HEADS = ("gender", "race", "race7", "age_class")  # classification heads a summary may hold, in reading order


@dataclass(frozen=True)
class ModelInfo:
    """Which model: its name, path (repository-relative when shipped), weights hash and sidecar."""

    name: str
    path: str
    sha256: str
    metadata: dict = field(default_factory=dict)  # the checkpoint's sidecar, as written by training

    def file(self) -> Path:
        """The weights on this machine (a relative path is named from the package's folder)."""
        from facekit.data.paths import resolve_shown

        return resolve_shown(self.path)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    source: str
    split: str
    images: int
    limit: Optional[int] = None
    sample_seed: Optional[int] = None


@dataclass(frozen=True)
class DetectorCounts:
    """How many images were read and how many had a face found; ``faces_found`` and ``hit_rate`` are None for archive crops."""

    images: int
    unreadable: int
    faces_found: Optional[int]
    hit_rate: Optional[float]
    evaluated: int
    note: str
    settings: Optional[dict] = None  # the detector's settings (DetectorSettings.to_dict); None in older reports


@dataclass(frozen=True)
class AgeGroupAge:
    """Predicted ages of the faces perceived as one age group."""

    group: str
    faces: int
    mean_age: Optional[float]
    median_age: Optional[float]


@dataclass(frozen=True)
class AgeGroupOrder:
    """Does the predicted age rise with the perceived age group, and how often is a Senior face read as old?"""

    groups: tuple[AgeGroupAge, ...]
    rising: bool
    senior_age: int
    senior_at_least: Optional[float]  # share of Senior faces predicted at least ``senior_age``

    def to_dict(self) -> dict:
        return {**asdict(self), "groups": [asdict(g) for g in self.groups]}

    @classmethod
    def from_dict(cls, data: Mapping) -> AgeGroupOrder:
        return cls(tuple(AgeGroupAge(**g) for g in data["groups"]), data["rising"], data["senior_age"],
                   data["senior_at_least"])


@dataclass(frozen=True)
class GroupSettings:
    min_size: int
    n_boot: int
    ci: float
    seed: int
    features: tuple[str, ...]  # the group features present, in display order

    @classmethod
    def from_dict(cls, data: Mapping) -> GroupSettings:
        return cls(**{**data, "features": tuple(data["features"])})


@dataclass(frozen=True)
class Timings:
    seconds: float
    per_image: float


@dataclass(frozen=True)
class EvaluationSummary:
    """One evaluation of one model on one dataset: what evaluation.json holds.

    A head, ``age_group`` or the group analysis is None when the dataset gives it nothing to
    measure (no labels, or no face evaluated); ``notes`` say why.
    """

    model: ModelInfo
    dataset: DatasetInfo
    crop: str
    detector: DetectorCounts
    notes: tuple[str, ...] = ()
    gender: Optional[ClassificationMetrics] = None
    race: Optional[ClassificationMetrics] = None
    race7: Optional[ClassificationMetrics] = None  # a 7-class head measured on 7-class labels
    age_class: Optional[ClassificationMetrics] = None  # an age-group head measured on its own groups
    age_group: Optional[AgeGroupOrder] = None
    age: Optional[AgeMetrics] = None
    calibration: Mapping[str, Calibration] = field(default_factory=dict)  # by head: gender, race, race7, age_bin
    groups: tuple[GroupValue, ...] = ()
    gaps: tuple[Gap, ...] = ()
    group_settings: Optional[GroupSettings] = None
    engine: Optional[str] = None
    created: Optional[str] = None  # ISO time, UTC
    timings: Optional[Timings] = None
    command: Optional[str] = None  # the command that regenerates it

    def head(self, name: str) -> Optional[ClassificationMetrics | AgeMetrics]:
        """A head's metrics by name: gender, race, race7, age_class, or age (whose classes are the age bins)."""
        return getattr(self, name) if name in (*CLASS_HEADS, "age") else None

    @property
    def features(self) -> tuple[str, ...]:
        return self.group_settings.features if self.group_settings else ()

    def to_dict(self) -> dict:
        data: dict = {"format": FORMAT, "model": asdict(self.model), "dataset": asdict(self.dataset), "crop": self.crop,
                      "detector": asdict(self.detector), "notes": list(self.notes)}
        for name in (*CLASS_HEADS, "age_group", "age"):
            if getattr(self, name) is not None:
                data[name] = getattr(self, name).to_dict()
        if self.group_settings is not None:
            data["calibration"] = {head: c.to_dict() for head, c in self.calibration.items()}
            data["groups"] = [g.to_dict() for g in self.groups]
            data["gaps"] = [g.to_dict() for g in self.gaps]
            data["group_settings"] = {**asdict(self.group_settings), "features": list(self.features)}
        for name in ("engine", "created", "timings", "command"):
            value = getattr(self, name)
            if value is not None:
                data[name] = asdict(value) if name == "timings" else value
        return finite(data)

    @classmethod
    def from_dict(cls, data: Mapping) -> EvaluationSummary:
        """A summary from its JSON; ValueError when it is not one."""
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} summary")
        optional = {
            **{head: ClassificationMetrics.from_dict(data[head]) for head in CLASS_HEADS if head in data},
            "age_group": AgeGroupOrder.from_dict(data["age_group"]) if "age_group" in data else None,
            "age": AgeMetrics.from_dict(data["age"]) if "age" in data else None,
            "group_settings": GroupSettings.from_dict(data["group_settings"]) if "group_settings" in data else None,
            "timings": Timings(**data["timings"]) if "timings" in data else None,
        }
        return cls(model=ModelInfo(**data["model"]), dataset=DatasetInfo(**data["dataset"]), crop=data["crop"],
                   detector=DetectorCounts(**data["detector"]), notes=tuple(data.get("notes", [])),
                   calibration={head: Calibration.from_dict(c) for head, c in data.get("calibration", {}).items()},
                   groups=tuple(GroupValue.from_dict(g) for g in data.get("groups", [])),
                   gaps=tuple(Gap.from_dict(g) for g in data.get("gaps", [])),
                   **{name: data.get(name) for name in ("engine", "created", "command")}, **optional)


# ---- is this report of these weights?


@lru_cache(maxsize=16)
def _file_sha256(path: str, modified: float, size: int) -> str:
    """``modified`` and ``size`` only key the cache: retrained weights are hashed again."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def weights_sha256(path: os.PathLike | str) -> Optional[str]:
    """sha256 of a weights file, or None when it is not on this machine."""
    path = Path(path)
    if not path.is_file():
        return None
    stat = path.stat()
    return _file_sha256(str(path.resolve()), stat.st_mtime, stat.st_size)


def made_from(summary: EvaluationSummary, checkpoint: Optional[os.PathLike | str] = None) -> Optional[bool]:
    """Was this report made from these weights (default: the file it names)? None when the file is not here.

    The weights' hash decides: a checkpoint retrained under the same name is another model.
    """
    digest = weights_sha256(checkpoint if checkpoint is not None else summary.model.file())
    return None if digest is None else digest == summary.model.sha256


# ---- the sidecar's training data and validation scores, old and new


@dataclass(frozen=True)
class TrainingData:
    """One dataset a model was trained on."""

    dataset: str
    source: str  # the file or folder it was read from
    weight: float  # how often its faces were drawn, relative to the others
    sha256: Optional[str]
    faces: Optional[int]
    train: Optional[int]
    val: Optional[int]
    detector_found: Optional[int]  # faces MTCNN found; the archive chip is used for the rest


@dataclass(frozen=True)
class DatasetScores:
    """One dataset's validation numbers (fractions, years); NaN in training, None once saved, where it has no such label."""

    dataset: str
    faces: Optional[int]
    gender_accuracy: Optional[float]
    race_accuracy: Optional[float]  # over the head's classes, faces whose label names one class
    race5_accuracy: Optional[float]  # UTKFace's 5 (sums of the 7), every face with an ethnicity label
    age_mae: Optional[float]  # faces with years
    age_in_range: Optional[float]  # faces with a bin or group: expected age inside the range it allows
    age_coverage: Optional[float]  # faces with years: inside the 80% interval
    age_group_accuracy: Optional[float] = None  # an age-group head: faces whose age falls in one of its groups

    def error(self) -> float:
        """Errors of the heads this dataset labels, added; age counts as its group error for an age-group
        head, else as MAE in decades, else as the share outside the bin or range."""
        if self.age_group_accuracy is not None and not np.isnan(self.age_group_accuracy):
            age = 1 - self.age_group_accuracy
        else:
            age = self.age_mae / 10 if not np.isnan(self.age_mae) else 1 - self.age_in_range
        parts = [1 - self.gender_accuracy,
                 1 - (self.race_accuracy if not np.isnan(self.race_accuracy) else self.race5_accuracy), age]
        return float(sum(p for p in parts if not np.isnan(p)))

    def to_dict(self) -> dict:
        return finite(asdict(self))


def training_data(metadata: Mapping) -> tuple[TrainingData, ...]:
    """The sidecar's ``data``: a list per dataset, or one dict (with ``archive``) in single-dataset checkpoints."""
    data = metadata.get("data") or []
    if isinstance(data, Mapping):
        data = [{**data, "source": data.get("archive", data.get("source", "")), "weight": 1.0}]
    names = {f.name for f in fields(TrainingData)}
    return tuple(TrainingData(**{name: entry.get(name) for name in names}) for entry in data)


def validation_scores(metadata: Mapping) -> tuple[DatasetScores, ...]:
    """The sidecar's ``metrics.validation``: a list per dataset, or one dict by head in single-dataset checkpoints."""
    validation = metadata.get("metrics", {}).get("validation") or []
    names = {f.name for f in fields(DatasetScores)}
    if isinstance(validation, Mapping):
        data = training_data(metadata)
        race = validation.get("race", {}).get("accuracy")
        validation = [{"dataset": data[0].dataset if data else "validation", "faces": data[0].val if data else None,
                       "gender_accuracy": validation.get("gender", {}).get("accuracy"), "race_accuracy": race,
                       "race5_accuracy": race, "age_mae": validation.get("age", {}).get("mae"),
                       "age_coverage": validation.get("age", {}).get("interval_coverage")}]
    return tuple(DatasetScores(**{name: entry.get(name) for name in names}) for entry in validation)
