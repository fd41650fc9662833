"""Faces cropped from their images at training time, with real image augmentation.

The feature cache fixes each face's pixels once, so its training sees only two views per
face (original, flipped). Training from the images instead lets every epoch see a new
view: the alignment jittered (shift, scale, small rotation), colour and brightness changed,
blur, flips. The crops come from the same MTCNN boxes and landmarks that the feature cache
recorded (its ``index.csv``), cut by ``facekit.vision.align.crop_face``, so without augmentation a
crop is exactly the one the cache and the predictor use; ``facekit.training.presets`` holds the
paired train and eval views.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from torch.utils.data import Dataset

from facekit.data import read_image_bytes
from facekit.training.presets import EvalPreset, TrainPreset
from facekit.vision.align import CropSettings, crop_face, resize_chip
from facekit.vision.io import load_image

if TYPE_CHECKING:
    from facekit.training.targets import Targets

@dataclass(frozen=True)
class Chips:
    """Where each face's pixels are: its image reference and cached detection (or none)."""

    images: list[str]
    boxes: list[np.ndarray | None]
    landmarks: list[np.ndarray | None]
    crop: CropSettings

    @classmethod
    def concat(cls, parts: list["Chips"]) -> "Chips":
        """Several datasets' faces as one, in order."""
        return cls([i for p in parts for i in p.images], [b for p in parts for b in p.boxes],
                   [m for p in parts for m in p.landmarks], parts[0].crop)

    @classmethod
    def from_index(cls, index: pd.DataFrame, images: dict[str, str], crop: CropSettings) -> "Chips":
        """From a feature cache's ``index.csv`` (cache order) and file name -> image reference."""
        def parse(text) -> np.ndarray | None:
            return np.array(json.loads(text), np.float64) if isinstance(text, str) else None

        return cls([images[f] for f in index["file"]], [parse(b) for b in index["box"]],
                   [parse(m) for m in index["landmarks"]], crop)

    def __len__(self) -> int:
        return len(self.images)

    def load(self, row: int, settings: CropSettings):
        """The face in row ``row`` cropped with ``settings``; where no face was found, the chip
        itself at the model's crop size (as the feature cache has it)."""
        image = load_image(read_image_bytes(self.images[row]))
        if self.boxes[row] is None:
            return resize_chip(image, self.crop)
        return crop_face(image, self.boxes[row], self.landmarks[row], settings)


class ChipFaces(Dataset):
    """``Chips`` as training inputs: one augmented view per face when training (``TrainPreset``);
    else the plain crop and its mirror (``EvalPreset``)."""

    def __init__(self, chips: Chips, rows: np.ndarray, targets: "Targets", train: bool,
                 augmentation: str = "standard") -> None:
        self.chips, self.rows, self.targets, self.train = chips, rows, targets.subset(rows), train
        self.preset = TrainPreset(chips.crop, augmentation) if train else EvalPreset(chips.crop)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int):
        face = self.chips.load(int(self.rows[k]), self.preset.crop)
        return (self.preset(face), *self.targets.item(k))
