"""What each face teaches: label arrays from any dataset table, and the multi-task loss over them.

Datasets label faces differently, so a face trains only the heads its labels allow:
- gender where known (perceived gender counts);
- ethnicity as the *set* of the head's classes its label allows: a FairFace label is one of
  the 7 classes, a UTKFace "asian" allows East and Southeast Asian, "others" allows Latino
  and Middle Eastern; the loss maximises the probability of the set, so no label is wasted;
- age as years (UTKFace: a distribution loss around the age), or as a range of years (FairFace's
  bins, wider-dev's perceived groups: the loss maximises the age distribution's mass inside it);
  a regression head learns from years only (MSE), an age-group head from the group a face's
  years, range or group label falls in (cross-entropy).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from facekit import labels
from facekit.data.table import age_group_classes, age_ranges
from facekit.models.model import AGE_CENTRE, AGE_SPREAD


@dataclass
class Targets:
    """Labels aligned with the inputs; each head's unknowns are marked so its loss skips them."""

    gender: np.ndarray  # (n,) int, -1 unknown
    race: np.ndarray  # (n, classes) bool: the classes the label allows; all False = unknown
    age: np.ndarray  # (n,) years, NaN unknown
    age_range: np.ndarray  # (n, 2) lowest and highest year a bin or group allows, NaN unknown
    dataset: np.ndarray  # (n,) index into the run's dataset names
    age_class: np.ndarray  # (n,) int: the age-group head's class, -1 unknown (or no such head)

    FIELDS = ("gender", "race", "age", "age_range", "dataset", "age_class")

    def subset(self, rows: np.ndarray) -> "Targets":
        return Targets(*(getattr(self, name)[rows] for name in self.FIELDS))

    def __len__(self) -> int:
        return len(self.gender)

    def item(self, k: int) -> tuple:
        """One face's targets as a data loader yields them (after the input)."""
        return (int(self.gender[k]), torch.from_numpy(self.race[k]), float(self.age[k]),
                torch.from_numpy(self.age_range[k]), int(self.age_class[k]))

    @property
    def race_known(self) -> np.ndarray:
        return self.race.any(1)

    def race_index(self) -> np.ndarray:
        """The single class of each face whose label allows exactly one, else -1 (for accuracy)."""
        single = self.race.sum(1) == 1
        return np.where(single, self.race.argmax(1), -1)

    @staticmethod
    def concat(parts: list["Targets"]) -> "Targets":
        return Targets(*(np.concatenate([getattr(p, name) for p in parts]) for name in Targets.FIELDS))


def race_sets(frame: pd.DataFrame, classes: tuple[str, ...]) -> np.ndarray:
    """(n, len(classes)) bool: the head classes each face's ethnicity label allows.

    ``race7`` (FairFace's 7) is used where the table has it, else ``race`` (UTKFace's 5).
    """
    allowed = np.zeros((len(frame), len(classes)), bool)
    position = {label: i for i, label in enumerate(classes)}
    race7 = frame["race7"] if "race7" in frame else pd.Series([None] * len(frame), index=frame.index)
    for row, (fine, coarse) in enumerate(zip(race7.astype(object), frame["race"].astype(object))):
        if isinstance(fine, str) and fine:
            members = (fine,) if classes == labels.RACE7 else (labels.FAIRFACE_TO_RACE[fine],)
        elif isinstance(coarse, str) and coarse:
            members = labels.RACE_TO_RACE7[coarse] if classes == labels.RACE7 else (coarse,)
        else:
            continue
        allowed[row, [position[m] for m in members]] = True
    return allowed


def table_targets(frame: pd.DataFrame, files: list[str], classes: tuple[str, ...], dataset: int = 0,
                  age_groups: tuple[tuple[str, int, int], ...] = ()) -> Targets:
    """Label arrays of a dataset table in the order of ``files`` (a feature cache's order); ``age_groups``
    are an age-group head's groups."""
    indexed = frame.drop_duplicates("file").set_index("file").loc[files].reset_index()
    ranges = age_ranges(indexed)
    return Targets(
        gender=np.array(labels.encode(indexed["gender"], labels.GENDERS), np.int64),
        race=race_sets(indexed, classes),
        age=indexed["age"].to_numpy(np.float64),
        age_range=ranges,
        dataset=np.full(len(indexed), dataset, np.int64),
        age_class=age_group_classes(indexed, age_groups, ranges),
    )


def age_targets(age: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian-smoothed distribution over years 0..AGE_MAX centred on each true age."""
    years = torch.arange(labels.AGE_CLASSES, dtype=torch.float32)
    target = torch.exp(-0.5 * ((years[None] - age.clamp(0, labels.AGE_MAX)[:, None]) / sigma) ** 2)
    return target / target.sum(1, keepdim=True)


def set_nll(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Mean of -log P(class in the allowed set) over rows; a single-class set is cross-entropy."""
    log_probs = F.log_softmax(logits, 1)
    return -torch.logsumexp(log_probs.masked_fill(~allowed, float("-inf")), 1).mean()


def multitask_loss(
    outputs: dict[str, torch.Tensor],
    gender: torch.Tensor,
    race: torch.Tensor,
    age: torch.Tensor,
    age_range: torch.Tensor,
    age_class: torch.Tensor,
    config,
    class_weights: dict[str, torch.Tensor | None],
) -> tuple[torch.Tensor, dict[str, float]]:
    """Each head's loss over the faces that label it, weighted by ``config.loss_weights``.

    ``outputs`` are the heads' raw outputs (``MultiTaskHeads.forward``). Gender: cross-entropy,
    or binary cross-entropy for a sigmoid head (with ``config.label_smoothing``). Ethnicity: the
    set loss, mixed with the mean negative log-probability over all classes for label smoothing.
    Age: see ``age_loss``.
    """
    parts: dict[str, torch.Tensor] = {}
    known = gender >= 0
    if known.any() and config.gender_head == "sigmoid":
        target = gender[known].float() * (1 - config.label_smoothing) + config.label_smoothing / 2
        weight = class_weights.get("gender")
        parts["gender"] = F.binary_cross_entropy_with_logits(
            outputs["gender"][known, 0], target, weight=None if weight is None else weight[gender[known]])
    elif known.any():
        parts["gender"] = F.cross_entropy(outputs["gender"][known], gender[known], weight=class_weights.get("gender"),
                                          label_smoothing=config.label_smoothing)
    known = race.any(1)
    if known.any():
        logits, allowed = outputs["race"][known], race[known]
        loss = set_nll(logits, allowed)
        if config.label_smoothing:
            uniform = -F.log_softmax(logits, 1).mean()
            loss = (1 - config.label_smoothing) * loss + config.label_smoothing * uniform
        parts["race"] = loss
    age_part = age_loss(outputs["age"], age, age_range, age_class, config)
    if age_part is not None:
        parts["age"] = age_part
    total = sum(config.loss_weights.get(head, 1.0) * value for head, value in parts.items())
    return total, {head: float(value.detach()) for head, value in parts.items()}


def age_loss(raw: torch.Tensor, age: torch.Tensor, age_range: torch.Tensor, age_class: torch.Tensor,
             config) -> torch.Tensor | None:
    """The age head's loss over the faces that label it, None where none does.

    Distribution head: years give the distribution loss + ``age_l1_weight`` x |expected - true|,
    ranges give -log of the mass inside the range. Regression head: mean squared error of the
    years, in units of ``AGE_SPREAD``. Group head: cross-entropy of the group.
    """
    if config.age_head == "regression":
        years = ~torch.isnan(age)
        if not years.any():
            return None
        return F.mse_loss(raw[years, 0], (age[years] - AGE_CENTRE) / AGE_SPREAD)
    if config.age_head == "groups":
        known = age_class >= 0
        return F.cross_entropy(raw[known], age_class[known]) if known.any() else None
    age_parts = []
    log_probs = F.log_softmax(raw, 1)
    years = ~torch.isnan(age)
    if years.any():
        distribution = -(age_targets(age[years], config.age_sigma) * log_probs[years]).sum(1)
        expected = (log_probs[years].exp() * torch.arange(labels.AGE_CLASSES, dtype=torch.float32)).sum(1)
        age_parts.append(distribution + config.age_l1_weight * (expected - age[years]).abs())
    ranged = ~torch.isnan(age_range[:, 0]) & ~years
    if ranged.any():
        grid = torch.arange(labels.AGE_CLASSES, dtype=torch.float32)[None]
        inside = (grid >= age_range[ranged, :1]) & (grid <= age_range[ranged, 1:])
        age_parts.append(-torch.logsumexp(log_probs[ranged].masked_fill(~inside, float("-inf")), 1))
    return torch.cat(age_parts).mean() if age_parts else None


def balanced_weights(target: np.ndarray, classes: int) -> torch.Tensor:
    """Inverse-frequency class weights (mean 1 over the classes present)."""
    counts = np.bincount(target[target >= 0], minlength=classes).astype(np.float64)
    return torch.tensor(counts.sum() / (classes * np.maximum(counts, 1)), dtype=torch.float32)
