"""Validation during training: each dataset scored on its own, one number to choose by, and the
temperatures that calibrate each head on the validation faces of every dataset together."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from facekit import labels
from facekit.evaluation.metrics import accuracy, age_point_and_interval, interval_coverage, mean_absolute_error
from facekit.evaluation.summary import DatasetScores
from facekit.training.targets import Targets, set_nll


def _race5(targets: Targets, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """UTKFace-5 labels and predictions from the head's classes (7 or 5)."""
    classes = labels.race_classes(targets.race.shape[1])
    first = np.where(targets.race_known, targets.race.argmax(1), -1)
    truth = np.array([labels.RACES.index(labels.FAIRFACE_TO_RACE.get(classes[i], classes[i])) if i >= 0 else -1
                      for i in first])
    predicted = labels.race7_to_race5(probs) if classes == labels.RACE7 else probs
    return truth, predicted.argmax(1)


def dataset_scores(targets: Targets, probs: dict[str, np.ndarray], names: list[str],
                   age_groups: tuple = ()) -> list[DatasetScores]:
    """Validation numbers per dataset of ``names`` (indexed by ``targets.dataset``); ``age_groups``, an
    age-group head's groups, add the accuracy of the group."""
    point = age_point_and_interval(probs["age"])
    race5_true, race5_pred = _race5(targets, probs["race"])
    inside = (point[:, 0] >= targets.age_range[:, 0]) & (point[:, 0] <= targets.age_range[:, 1] + 1)
    ranged = ~np.isnan(targets.age_range[:, 0])
    group_pred = (labels.age_group_probs(probs["age"], age_groups).argmax(1) if age_groups
                  else np.full(len(targets), -1))
    scores = []
    for index, name in enumerate(names):
        rows = targets.dataset == index
        if not rows.any():
            continue
        has_range = rows & ranged
        scores.append(DatasetScores(
            dataset=name,
            faces=int(rows.sum()),
            gender_accuracy=accuracy(targets.gender[rows], probs["gender"][rows].argmax(1)),
            race_accuracy=accuracy(targets.race_index()[rows], probs["race"][rows].argmax(1)),
            race5_accuracy=accuracy(race5_true[rows], race5_pred[rows]),
            age_mae=mean_absolute_error(targets.age[rows], point[rows, 0]),
            age_in_range=float(inside[has_range].mean()) if has_range.any() else float("nan"),
            age_coverage=interval_coverage(targets.age[rows], point[rows, 1], point[rows, 2]),
            age_group_accuracy=accuracy(targets.age_class[rows], group_pred[rows]) if age_groups else float("nan"),
        ))
    return scores


def validation_score(scores: list[DatasetScores]) -> float:
    """One number to early-stop and choose recipes on (lower is better): the datasets' errors, averaged,
    so a small dataset counts as much as a large one."""
    return float(np.mean([s.error() for s in scores]))


def fit_temperatures(logits: dict[str, torch.Tensor], targets: Targets) -> torch.Tensor:
    """Per-head temperatures on validation logits (faces, views, classes): NLL for gender and
    ethnicity (the set likelihood), and for age the temperature whose 80% interval covers 80%
    of the faces with years (what the interval promises); 1 where no face has the label."""
    grid = torch.linspace(0.5, 3.0, 101)
    temps = []
    known = torch.from_numpy(targets.gender >= 0)
    y, z = torch.from_numpy(targets.gender)[known], logits["gender"][known]
    temps.append(_best(grid, lambda t: F.nll_loss(torch.log(torch.softmax(z / t, 2).mean(1) + 1e-12), y))
                 if known.any() else 1.0)
    known = torch.from_numpy(targets.race_known)
    allowed, z = torch.from_numpy(targets.race)[known], logits["race"][known]
    temps.append(_best(grid, lambda t: set_nll(torch.log(torch.softmax(z / t, 2).mean(1) + 1e-12), allowed))
                 if known.any() else 1.0)
    years = ~np.isnan(targets.age)
    if not years.any():
        temps.append(1.0)
        return torch.tensor(temps)
    low, high = 0.3, 5.0
    for _ in range(20):  # coverage grows with temperature: bisect to 80%
        middle = (low + high) / 2
        summary = age_point_and_interval(torch.softmax(logits["age"][years] / middle, 2).mean(1).numpy())
        coverage = interval_coverage(targets.age[years], summary[:, 1], summary[:, 2])
        low, high = (middle, high) if coverage < 0.8 else (low, middle)
    temps.append((low + high) / 2)
    return torch.tensor(temps)


def _best(grid: torch.Tensor, loss) -> float:
    return float(grid[int(torch.stack([loss(t) for t in grid]).argmin())])
