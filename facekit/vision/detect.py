"""Find every face in a photo: boxes, five landmarks and scores.

Two detectors: RetinaFace (``facekit.vision.retinaface``, the default), which finds more of the
small, turned and crowded faces of group photos in less time, and facenet-pytorch's MTCNN, whose
pipeline is ``facekit.vision.mtcnn_fast.detect_face`` (facenet-pytorch's result bit for bit,
faster). Landmarks always come from MTCNN's O-Net, on RetinaFace's boxes too, the landmarks the
attribute model's crops were made from.

RetinaFace reads a photo in up to two passes. The quick pass runs the small graph on a copy
shrunk as far as the minimum face size allows; a portrait, where it is sure of one face and
sees no other candidate, is done. Anything else may be a group photo whose small faces it
cannot see, and the crowd pass reads it again with the larger graph at full size: its faces are
the answer whenever it finds any. Every search copy is at most ``max_side`` pixels on its
longer side (bounded time and memory for huge photos); boxes and landmarks are mapped back so
crops come from the full-resolution original. MTCNN's photos of different sizes are batched by
grouping equal sizes, since its batch mode needs one size per call. No face is a normal result
with a reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
import torch
from facenet_pytorch import MTCNN
from PIL import Image

from facekit.vision.mtcnn_fast import detect_face, onet_landmarks, pool_channels_last, trace_nets
from facekit.vision.retinaface import SMALLEST_ANCHOR, CrowdRetinaFace, RetinaFace

DETECTORS = ("retinaface", "mtcnn")
# The smallest face each detector is asked to find in the copy it searches: MTCNN's own default,
# below which its first stage sees too few pixels; RetinaFace's smallest anchor.
SEARCH_MIN = {"mtcnn": 20, "retinaface": SMALLEST_ANCHOR}
# The final score a face needs unless the settings say otherwise: MTCNN's O-Net probability as
# facenet-pytorch's examples use it; RetinaFace's, chosen on wider-dev's group photos against
# their false boxes (docs/benchmarks.md).
DEFAULT_SCORE = {"mtcnn": 0.9, "retinaface": 0.7}
# RetinaFace's boxes from this score on are candidates: a photo where none passes the threshold can
# say how close the best came, as MTCNN's can, and a doubtful second face sends a photo to the crowd pass.
CANDIDATE_SCORE = 0.3
# The height a ``min_face_size`` face has in the quick pass's copy: a smaller copy is quicker, and
# under about this height the quick graph starts to miss faces it finds at full size (docs/benchmarks.md).
QUICK_FACE = 28


@dataclass(frozen=True)
class DetectorSettings:
    """What the detector looks for, and how hard.

    ``detector``: ``"retinaface"`` or ``"mtcnn"``. ``min_face_size``: the smallest face height,
    in pixels of the original photo, that every photo is searched for (MTCNN skips smaller
    faces, which is what keeps its photos fast; RetinaFace's quick pass shrinks the photo as far
    as this allows). ``crowd_pass``: RetinaFace reads a photo again with its larger graph, at
    full size and for faces down to its ``SMALLEST_ANCHOR`` pixels, unless the quick pass found
    one face and no other candidate of ``CANDIDATE_SCORE`` (False: the quick pass is always the
    answer, for speed). ``max_side``: every searched copy is shrunk to at most this many pixels
    on its longer side (time and memory stay bounded for huge photos); where that shrinks a
    ``min_face_size`` face below the detector's ``SEARCH_MIN`` pixels, the smallest face looked
    for grows to that ``SEARCH_MIN`` times the shrink factor (see ``smallest_face``).
    ``score_threshold``: the least final score a face needs, in either pass (None: the
    detector's ``DEFAULT_SCORE``). ``thresholds``: MTCNN's three stages' own score thresholds.
    ``scale_factor``: the ratio between levels of MTCNN's image pyramid (smaller: fewer levels,
    faster, sizes coarser). Boxes and landmarks always map back to the original photo's pixels;
    landmarks come from MTCNN's O-Net with either detector.
    """

    detector: str = "retinaface"
    min_face_size: int = 40
    score_threshold: float | None = None
    max_side: int = 1280
    crowd_pass: bool = True
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    scale_factor: float = 0.709

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, not {self.detector!r}")
        if self.score_threshold is None:
            object.__setattr__(self, "score_threshold", DEFAULT_SCORE[self.detector])

    def shrink_factor(self, width: int, height: int) -> float:
        """How much the searched copy of a ``width`` x ``height`` photo is shrunk (1 = not at all)."""
        return max(1.0, max(width, height) / self.max_side)

    def smallest_face(self, width: int, height: int) -> float:
        """The smallest face height, in original pixels, that is looked for in this photo."""
        factor = self.shrink_factor(width, height)
        search = SEARCH_MIN[self.detector]
        return float(self.min_face_size) if factor == 1.0 else max(float(self.min_face_size), search * factor)

    def quick_scale(self) -> float:
        """How much RetinaFace's quick pass shrinks the search copy (1 = not at all): until a
        ``min_face_size`` face is ``QUICK_FACE`` pixels tall, never enlarging it."""
        return min(1.0, QUICK_FACE / self.min_face_size)

    def to_dict(self) -> dict:
        return {
            "detector": self.detector,
            "min_face_size": self.min_face_size,
            "score_threshold": self.score_threshold,
            "max_side": self.max_side,
            "crowd_pass": self.crowd_pass,
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
    crowd_pass: bool = False  # whether RetinaFace's crowd pass read the photo (see DetectorSettings)

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
    """The detector the settings name, with MTCNN's O-Net for landmarks; call it on one PIL image or a list."""

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
        self.retinaface = RetinaFace() if settings.detector == "retinaface" else None
        self.crowd = CrowdRetinaFace() if self.retinaface is not None and settings.crowd_pass else None

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
            if min(image.size) < search:  # no face fits (MTCNN's image pyramid would be empty: it raises)
                width, height = images[index].size
                results[index] = Detection(reason=f"image too small or too narrow to hold a face ({width}x{height} pixels)")
                continue
            if self.retinaface is not None:
                results[index] = self._retinaface(np.asarray(image), factors[index])
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

    def _retinaface(self, pixels: np.ndarray, factor: float) -> Detection:
        """The quick pass, then the crowd pass unless it found one face and no other candidate (``DetectorSettings``);
        O-Net's landmarks on the search copy (``_to_detection`` applies the score threshold)."""
        threshold, threads = self.settings.score_threshold, torch.get_num_threads()
        quick = self.settings.quick_scale()
        copy = pixels if quick == 1.0 else np.asarray(Image.fromarray(pixels).resize(
            (max(1, round(pixels.shape[1] * quick)), max(1, round(pixels.shape[0] * quick))), Image.BILINEAR))
        boxes, scores = self.retinaface(copy, min(threshold, CANDIDATE_SCORE), threads=threads)
        boxes = boxes * np.array([pixels.shape[1] / copy.shape[1], pixels.shape[0] / copy.shape[0]] * 2, np.float32)
        crowd = self.crowd is not None and not (len(scores) == 1 and scores[0] >= threshold)
        if crowd:
            crowd_boxes, crowd_scores = self.crowd(pixels, threshold, threads=threads)
            if len(crowd_boxes):
                boxes, scores = crowd_boxes, crowd_scores
        points = np.zeros((len(boxes), 5, 2), np.float32)
        passed = scores >= threshold
        with torch.inference_mode():
            points[passed] = onet_landmarks(pixels, boxes[passed], self.mtcnn.onet)
        found = self._to_detection(boxes, scores, points, factor)
        return replace(found, crowd_pass=crowd)

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
