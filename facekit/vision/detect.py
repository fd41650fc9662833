"""Find every face in a photo: boxes, five landmarks and scores, via facenet-pytorch's MTCNN.

Its nets and weights are facenet-pytorch's; the pipeline around them is
``facekit.vision.mtcnn_fast.detect_face``, which gives facenet-pytorch's result bit for bit, faster.

Detection looks for faces down to a size given in the original photo's pixels, on a copy
shrunk to at most ``max_side`` (bounded time and memory for huge photos); boxes and
landmarks are mapped back so crops come from the full-resolution original. Photos of different sizes are batched by grouping equal sizes, since MTCNN's own
batch mode needs one size per call. No face is a normal result with a reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
from facenet_pytorch import MTCNN
from PIL import Image

from facekit.vision.mtcnn_fast import detect_face, pool_channels_last, trace_nets


# The smallest face MTCNN is asked to find in the copy it searches: its own default, below which
# its first stage sees too few pixels to be reliable.
SEARCH_MIN = 20


@dataclass(frozen=True)
class DetectorSettings:
    """What the detector looks for, and how hard.

    ``min_face_size``: the smallest face height, in pixels of the original photo, that is looked
    for; smaller faces are skipped, which is what keeps a photo fast. ``max_side``: the searched
    copy is shrunk to at most this many pixels on its longer side (time and memory stay bounded
    for huge photos); where that shrinks a ``min_face_size`` face below ``SEARCH_MIN`` pixels,
    the smallest face found grows to ``SEARCH_MIN`` times the shrink factor (see
    ``smallest_face``). ``score_threshold``: the least final MTCNN score a face needs.
    ``thresholds``: MTCNN's three stages' own score thresholds. ``scale_factor``: the ratio
    between levels of MTCNN's image pyramid (smaller: fewer levels, faster, sizes coarser).
    Boxes and landmarks always map back to the original photo's pixels.
    """

    min_face_size: int = 40
    score_threshold: float = 0.9
    max_side: int = 1280
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    scale_factor: float = 0.709

    def shrink_factor(self, width: int, height: int) -> float:
        """How much the searched copy of a ``width`` x ``height`` photo is shrunk (1 = not at all)."""
        return max(1.0, max(width, height) / self.max_side)

    def smallest_face(self, width: int, height: int) -> float:
        """The smallest face height, in original pixels, that is looked for in this photo."""
        factor = self.shrink_factor(width, height)
        return float(self.min_face_size) if factor == 1.0 else max(float(self.min_face_size), SEARCH_MIN * factor)

    def to_dict(self) -> dict:
        return {
            "min_face_size": self.min_face_size,
            "score_threshold": self.score_threshold,
            "max_side": self.max_side,
            "thresholds": list(self.thresholds),
            "scale_factor": self.scale_factor,
        }


@dataclass(frozen=True)
class Detection:
    """Faces found in one photo, largest first, in the original photo's pixel coordinates."""

    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))  # x1, y1, x2, y2
    landmarks: np.ndarray = field(default_factory=lambda: np.zeros((0, 5, 2), np.float32))
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    reason: str = ""  # why there is no face, when there is none

    def __len__(self) -> int:
        return len(self.boxes)


def box_iou(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """IoU of each of ``boxes`` (n, 4) with one ``box`` (4,), all as x1, y1, x2, y2."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    x1, y1 = np.maximum(boxes[:, 0], box[0]), np.maximum(boxes[:, 1], box[1])
    x2, y2 = np.minimum(boxes[:, 2], box[2]), np.minimum(boxes[:, 3], box[3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) + (box[2] - box[0]) * (box[3] - box[1]) - inter
    return inter / np.maximum(union, 1e-9)


# A detection is a labelled face when it overlaps the labelled box at least this much: looser than
# detection benchmarks' 0.5, since a dataset's box and MTCNN's box frame a face differently.
MATCH_IOU = 0.3


def matching_face(boxes: np.ndarray, labelled: np.ndarray | None) -> int | None:
    """Which detected box is the labelled face: the largest (index 0) without a label box, else the one
    overlapping it most if it overlaps at least ``MATCH_IOU``; None when no detection is that face."""
    if len(boxes) == 0:
        return None
    if labelled is None:
        return 0
    overlap = box_iou(boxes, labelled)
    best = int(overlap.argmax())
    return best if overlap[best] >= MATCH_IOU else None


class FaceDetector:
    """MTCNN with facekit's defaults; call it on one PIL image or a list of them."""

    def __init__(self, settings: DetectorSettings = DetectorSettings()) -> None:
        self.settings = settings
        self.mtcnn = MTCNN(
            keep_all=True,
            min_face_size=settings.min_face_size,
            thresholds=list(settings.thresholds),
            factor=settings.scale_factor,
            device=torch.device("cpu"),
        ).eval()
        pool_channels_last(self.mtcnn.rnet)
        pool_channels_last(self.mtcnn.onet)
        trace_nets(self.mtcnn)

    def __call__(self, images: Image.Image | Sequence[Image.Image]) -> Detection | list[Detection]:
        if isinstance(images, Image.Image):
            return self.detect([images])[0]
        return self.detect(list(images))

    def detect(self, images: list[Image.Image]) -> list[Detection]:
        shrunk, factors = zip(*(self._shrink(image) for image in images)) if images else ((), ())
        results: list[Detection | None] = [None] * len(images)
        by_size: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(shrunk):
            search = self.settings.smallest_face(*images[index].size) / factors[index]  # in the copy's pixels
            if min(image.size) < search:  # MTCNN's image pyramid would be empty: it raises
                width, height = images[index].size
                results[index] = Detection(reason=f"image too small or too narrow to hold a face ({width}x{height} pixels)")
                continue
            by_size.setdefault((image.size, search), []).append(index)
        for (_, search), indices in by_size.items():
            pixels = np.stack([np.asarray(shrunk[i]) for i in indices])
            with torch.inference_mode():
                boxes, points = detect_face(
                    pixels, search, self.mtcnn.pnet, self.mtcnn.rnet, self.mtcnn.onet,
                    self.settings.thresholds, self.settings.scale_factor,
                )
            for i, b, p in zip(indices, boxes, points):
                results[i] = self._to_detection(b[:, :4], b[:, 4], p, factors[i])
        return results  # type: ignore[return-value]

    def _shrink(self, image: Image.Image) -> tuple[Image.Image, float]:
        image = image.convert("RGB")
        factor = self.settings.shrink_factor(*image.size)
        if factor == 1.0:
            return image, 1.0
        size = (max(1, round(image.width / factor)), max(1, round(image.height / factor)))
        return image.resize(size, Image.BILINEAR, reducing_gap=2.0), factor

    def _to_detection(self, boxes, scores, points, factor: float) -> Detection:
        if len(boxes) == 0:
            return Detection(reason="no face found")
        boxes = np.asarray(boxes, np.float32) * factor
        points = np.asarray(points, np.float32) * factor
        scores = np.asarray(scores, np.float32)
        keep = scores >= self.settings.score_threshold
        if not keep.any():
            best = float(scores.max())
            return Detection(reason=f"no face above the score threshold {self.settings.score_threshold} (best {best:.2f})")
        boxes, points, scores = boxes[keep], points[keep], scores[keep]
        order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable")
        return Detection(boxes=boxes[order], landmarks=points[order], scores=scores[order])
