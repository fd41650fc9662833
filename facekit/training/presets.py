"""Paired preprocessing: what a face looks like to the network in training and at evaluation.

Evaluation (and inference) sees the plain aligned crop and its mirror image, standardized;
training sees one random view of a crop cut with extra context, so the alignment jitter
below finds real pixels rather than repeated borders.
"""
from __future__ import annotations

import torch
from PIL import Image
from torchvision.transforms import v2

from facekit.models.model import standardize, to_batch
from facekit.vision.align import CropSettings

# Extra pixels around the crop, as a share of its side on each edge: the jitter below moves,
# shrinks and rotates the crop by up to ~15% of its half-side, and must find real pixels there.
CONTEXT = 0.25


def context_settings(crop: CropSettings) -> CropSettings:
    """The crop with ``CONTEXT`` more on each edge; its centre ``crop.size`` square is ``crop`` itself."""
    size = crop.size + 2 * round(crop.size * CONTEXT)
    # crop_matrix scales the face to size / (1 + 2 margin): keep that scale at the larger size.
    margin = (size * (1 + 2 * crop.margin) / crop.size - 1) / 2
    return CropSettings(size=size, margin=margin, align=crop.align)


AUGMENTATIONS = ("standard", "real_photos")
# A UTKFace-geometry crop's face (chin to brow) spans about this share of the crop's side.
FACE_SHARE = 0.6
# Face heights, in pixels, that "real_photos" shrinks a face to and back: crowd and webcam sizes.
SHRUNK_FACE = (24, 80)


class Shrink:
    """Down to a face of ``SHRUNK_FACE`` pixels and back up: the blur and blockiness of a small face."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        face = float(torch.empty(1).uniform_(*SHRUNK_FACE))
        small = max(8, round(face / FACE_SHARE * self.size / max(image.shape[-2:])))
        down = v2.functional.resize(image, [small, small], antialias=True)
        return v2.functional.resize(down, list(image.shape[-2:]), antialias=True)


class TrainPreset:
    """A random view of a context crop (PIL in, standardized CHW float out): alignment jitter,
    small rotation, flip, colour, a little greyscale and blur; ``real_photos`` adds what photos
    from crowds, phones and the web do to a face: shrunk and blown up again, JPEG at quality
    20-95, sensor noise, part of it hidden."""

    def __init__(self, crop: CropSettings, augmentation: str = "standard") -> None:
        if augmentation not in AUGMENTATIONS:
            raise ValueError(f"augmentation is one of {', '.join(AUGMENTATIONS)}, not {augmentation!r}")
        self.crop = context_settings(crop)
        steps = [
            v2.PILToTensor(),
            v2.RandomAffine(degrees=10, translate=(0.03, 0.03), scale=(0.9, 1.1),
                            interpolation=v2.InterpolationMode.BILINEAR),
            v2.CenterCrop(crop.size),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.03),
            v2.RandomGrayscale(0.05),
            v2.RandomApply([v2.GaussianBlur(5, sigma=(0.3, 1.5))], p=0.2),
        ]
        if augmentation == "real_photos":
            steps += [
                v2.RandomApply([Shrink(crop.size)], p=0.4),
                v2.RandomApply([v2.JPEG(quality=(20, 95))], p=0.5),
                v2.ToDtype(torch.float32, scale=True),
                v2.RandomApply([v2.GaussianNoise(sigma=0.03)], p=0.3),
                v2.RandomErasing(p=0.2, scale=(0.02, 0.12), value=0.5),
            ]
        self.transform = v2.Compose(steps)

    def __call__(self, face: Image.Image) -> torch.Tensor:
        return standardize(self.transform(face)[None].float())[0]


class EvalPreset:
    """The crop and its mirror image, standardized as the predictor does: (2, 3, size, size)."""

    def __init__(self, crop: CropSettings) -> None:
        self.crop = crop

    def __call__(self, face: Image.Image) -> torch.Tensor:
        return torch.cat([to_batch([face]), to_batch([face], flip=True)])
