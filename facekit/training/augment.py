"""Faces cropped from the UTKFace chips at training time, with real image augmentation.

The feature cache fixes each face's pixels once, so its training sees only two views per
face (original, flipped). Training from the images instead lets every epoch see a new
view: the alignment jittered (shift, scale, small rotation), colour and brightness changed,
blur, flips. The crops come from the same MTCNN boxes and landmarks that the feature cache
recorded (its ``index.csv``), cut by ``facekit.vision.align.crop_face``, so without augmentation a
crop is exactly the one the cache and the predictor use. The chips are UTKFace's:
non-commercial research use only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from facekit.vision.align import CropSettings, crop_face, resize_chip
from facekit.data import read_image_bytes
from facekit.vision.io import load_image
from facekit.models.model import standardize, to_batch

if TYPE_CHECKING:
    from facekit.training.loop import Targets

# Extra pixels around the crop, as a share of its side on each edge: the jitter below moves,
# shrinks and rotates the crop by up to ~15% of its half-side, and must find real pixels there.
CONTEXT = 0.25


def context_settings(crop: CropSettings) -> CropSettings:
    """The crop with ``CONTEXT`` more on each edge; its centre ``crop.size`` square is ``crop`` itself."""
    size = crop.size + 2 * round(crop.size * CONTEXT)
    # crop_matrix scales the face to size / (1 + 2 margin): keep that scale at the larger size.
    margin = (size * (1 + 2 * crop.margin) / crop.size - 1) / 2
    return CropSettings(size=size, margin=margin, align=crop.align)


def train_transform(size: int) -> v2.Compose:
    """Random view of a context crop (PIL in, uint8 CHW out): alignment jitter, flip, colour, blur."""
    return v2.Compose([
        v2.PILToTensor(),
        v2.RandomAffine(degrees=10, translate=(0.03, 0.03), scale=(0.9, 1.1),
                        interpolation=v2.InterpolationMode.BILINEAR),
        v2.CenterCrop(size),
        v2.RandomHorizontalFlip(),
        v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03),
        v2.RandomGrayscale(0.05),
        v2.RandomApply([v2.GaussianBlur(5, sigma=(0.3, 1.5))], p=0.2),
    ])


@dataclass(frozen=True)
class Chips:
    """Where each face's pixels are: its image reference and cached detection (or none)."""

    images: list[str]
    boxes: list[np.ndarray | None]
    landmarks: list[np.ndarray | None]
    crop: CropSettings

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
    """``Chips`` as training inputs: one augmented view per face when training; else
    (original, flipped) plain crops, standardized as the predictor does."""

    def __init__(self, chips: Chips, rows: np.ndarray, targets: "Targets", train: bool) -> None:
        self.chips, self.rows, self.targets, self.train = chips, rows, targets.subset(rows), train
        self.context = context_settings(chips.crop)
        self.transform = train_transform(chips.crop.size)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int):
        row = int(self.rows[k])
        if self.train:
            x = standardize(self.transform(self.chips.load(row, self.context))[None].float())[0]
        else:
            crop = self.chips.load(row, self.chips.crop)
            x = torch.cat([to_batch([crop]), to_batch([crop], flip=True)])
        t = self.targets
        return x, int(t.gender[k]), int(t.race[k]), float(t.age[k])
