"""Crop a detected face the way the model was trained to see it.

Training and inference share this one function: the model is trained on UTKFace chips
re-detected by MTCNN and cropped here, and every photo at inference goes through the
same detector and crop. The crop is a similarity transform (rotation, scale, shift)
that maps the five MTCNN landmarks onto a template: the median landmark position of
MTCNN on UTKFace's aligned chips (the median over 300 chips). With ``margin=0`` a crop of a
photo therefore has the geometry of a UTKFace chip; ``margin`` zooms out by that share of
the crop's side on each edge.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

# Median MTCNN landmarks on UTKFace chips, as fractions of the chip's side:
# left eye, right eye, nose, left mouth corner, right mouth corner.
LANDMARK_TEMPLATE = np.array(
    [[0.252, 0.206], [0.695, 0.204], [0.473, 0.465], [0.281, 0.672], [0.665, 0.671]], dtype=np.float64
)


@dataclass(frozen=True)
class CropSettings:
    """How a face becomes the model's input; stored in every checkpoint."""

    size: int = 160
    margin: float = 0.0
    align: bool = True  # False: a square around the box instead of the landmark transform

    def to_dict(self) -> dict:
        return {"size": self.size, "margin": self.margin, "align": self.align}


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares 2x3 similarity matrix mapping ``source`` points onto ``target`` (Umeyama)."""
    source_mean, target_mean = source.mean(0), target.mean(0)
    src, dst = source - source_mean, target - target_mean
    covariance = dst.T @ src / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rotation = u @ np.diag(sign) @ vt
    scale = (singular * sign).sum() / src.var(0).sum()
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = target_mean - scale * rotation @ source_mean
    return matrix


def crop_matrix(box: np.ndarray, landmarks: np.ndarray | None, settings: CropSettings) -> np.ndarray:
    """The 2x3 matrix from photo pixels to crop pixels for one face."""
    size = settings.size
    if settings.align and landmarks is not None:
        template = 0.5 + (LANDMARK_TEMPLATE - 0.5) / (1.0 + 2.0 * settings.margin)
        return similarity_transform(np.asarray(landmarks, dtype=np.float64), template * size)
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * settings.margin)
    scale = size / side
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return np.array([[scale, 0, size / 2 - scale * cx], [0, scale, size / 2 - scale * cy]])


def crop_face(
    image: Image.Image,
    box: np.ndarray,
    landmarks: np.ndarray | None,
    settings: CropSettings = CropSettings(),
) -> Image.Image:
    """The model's view of one face: a ``size``x``size`` RGB crop; borders repeat edge pixels.

    A face much larger than the crop is first shrunk with an area filter so the warp does
    not alias (a 2000 px face in a phone photo would otherwise come out grainy).
    """
    matrix = crop_matrix(np.asarray(box), landmarks, settings)
    # Only the region the crop reads from (plus the interpolation's margin) is converted to an array,
    # so a face of a 60-megapixel photo costs its own pixels, not a copy of the whole photo.
    inverse = cv2.invertAffineTransform(matrix)
    side = settings.size
    source = np.array([[0, 0, 1], [side, 0, 1], [0, side, 1], [side, side, 1]], np.float64) @ inverse.T
    x0, y0 = np.maximum(np.floor(source.min(0)).astype(int) - 2, 0)
    x1, y1 = np.minimum(np.ceil(source.max(0)).astype(int) + 2, image.size)
    if x1 > x0 and y1 > y0:
        pixels = np.asarray(image.crop((int(x0), int(y0), int(x1), int(y1))).convert("RGB"))
        shift = np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], dtype=np.float64)
        matrix = (np.vstack([matrix, [0, 0, 1]]) @ shift)[:2]
    else:  # the crop lies wholly outside the photo: the edge pixels repeat
        pixels = np.asarray(image.convert("RGB"))
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:
        # Shrink the region to ~2x the crop's resolution with an area filter, then warp.
        shrink = 2.0 * scale
        new_size = (max(1, round(pixels.shape[1] * shrink)), max(1, round(pixels.shape[0] * shrink)))
        pixels = cv2.resize(pixels, new_size, interpolation=cv2.INTER_AREA)
        unshrink = np.diag([1 / shrink, 1 / shrink, 1.0])
        matrix = (np.vstack([matrix, [0, 0, 1]]) @ unshrink)[:2]
    crop = cv2.warpAffine(
        pixels, matrix, (settings.size, settings.size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return Image.fromarray(crop)


def resize_chip(image: Image.Image, settings: CropSettings = CropSettings()) -> Image.Image:
    """The fallback for an archive chip where the detector found no face: the chip itself."""
    return image.convert("RGB").resize((settings.size, settings.size), Image.BILINEAR)
