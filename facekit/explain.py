"""Grad-CAM for any head and target: which parts of a face moved one output of the model.

The explained layer is chosen per backbone (``FaceModel.cam_layer``, the table in
``facekit.models.architectures``): for the shipped Inception-ResNet-v1 it is the last block of
``repeat_2`` (a Block17), the deepest layer that still has an 8x8 grid at 160 px; the later
stages (``repeat_3``, ``block8``) are only 3x3, too coarse to tell an eye from a mouth.

The explained output, per head:

- gender, race: the log-probability of the target class (calibrated). Its gradient is the
  evidence *for this class against the others*; a raw logit's would also count features
  that raise every class. Grad-CAM's map is the same for the probability itself, since a
  positive factor per face does not change a min-max normalized map.
- age: the expected age in years (the target ``expected``) or the log of one age bin's
  summed probability (the target is the bin's label, e.g. ``20-29``).

Maps are computed on the model's own crops (batched over faces) and warped back onto the
photo with the inverse of :func:`facekit.vision.align.crop_matrix`. Methods: ``gradcam`` and
``gradcam++`` from pytorch-grad-cam. The maps show where the model looked, not why a
label is right: the label can be wrong and the map will still look plausible.
"""
from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from facekit import labels
from facekit.vision.align import crop_face, crop_matrix
from facekit.models.model import FaceModel, to_batch
from facekit.predict import FacePrediction

EXPECTED_AGE = "expected"
HEAD_TARGETS: dict[str, tuple[str, ...]] = {
    "gender": labels.GENDERS,
    "race": labels.RACES,
    "race7": labels.RACE7,  # models with a 7-class head only
    "age": (EXPECTED_AGE, *labels.AGE_BIN_LABELS),
}
METHODS = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus}
# Longest side of a photo-sized heat map and overlay, in pixels: what a screen shows.
OVERLAY_SIDE = 2048


def check_target(head: str, target: str | None) -> None:
    """Raise ValueError naming the valid choices when ``head`` or ``target`` is not one."""
    if head not in HEAD_TARGETS:
        raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HEAD_TARGETS)}")
    if target is not None and target not in HEAD_TARGETS[head]:
        raise ValueError(f"unknown target {target!r} for the {head} head; choose one of {', '.join(HEAD_TARGETS[head])}")


def predicted_target(face: FacePrediction, head: str) -> str:
    """The target that explains what the model said about this face."""
    return {"gender": face.gender, "race": face.race, "race7": face.race7, "age": EXPECTED_AGE}[head]


class HeadScores(nn.Module):
    """The model with one head's explainable outputs, one column per entry of HEAD_TARGETS[head]."""

    def __init__(self, model: FaceModel, head: str) -> None:
        super().__init__()
        self.model = model
        self.head = head
        self.register_buffer("years", torch.arange(labels.AGE_CLASSES, dtype=torch.float32))
        self.bin_edges = labels.bin_edges()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.model.calibrated(self.model(images))["race" if self.head == "race7" else self.head]
        log_probs = torch.log_softmax(logits, 1)
        if self.head == "race" and logits.shape[1] == len(labels.RACE7):  # each of the 5 is a sum of the 7
            return torch.cat([torch.logsumexp(log_probs[:, [labels.RACE7.index(c) for c in labels.RACE_TO_RACE7[r]]],
                                              1, keepdim=True) for r in labels.RACES], 1)
        if self.head != "age":
            return log_probs
        expected = (log_probs.exp() * self.years).sum(1, keepdim=True)
        bins = [torch.logsumexp(log_probs[:, low:high], 1, keepdim=True)
                for low, high in zip(self.bin_edges[:-1], self.bin_edges[1:])]
        return torch.cat([expected, *bins], 1)


@dataclass(frozen=True)
class FaceExplanation:
    """One face's map: in crop pixels, with the matrix that places the crop in the photo."""

    box: tuple[float, float, float, float]
    target: str
    score: float  # the explained output: the target's probability, or the expected age in years
    cam: np.ndarray = field(repr=False)  # crop-sized heat, 0..1
    matrix: np.ndarray = field(repr=False)  # 2x3, photo pixels -> crop pixels


@dataclass(frozen=True)
class Explanation:
    """A head's maps for every face of one photo."""

    head: str
    method: str
    size: tuple[int, int]  # the photo's width, height
    faces: tuple[FaceExplanation, ...]
    seconds: float  # wall time of the map computation, all faces

    def photo_heat(self, max_side: int | None = OVERLAY_SIDE) -> tuple[np.ndarray, np.ndarray]:
        """(heat, coverage): each face's map warped onto the photo, max over faces, both 0..1.

        ``coverage`` is 1 where some face's crop lies, so an overlay can leave the rest of
        the photo untouched rather than paint it "cold". Both are at most ``max_side`` pixels on
        their long side (the photo scaled down, never up), so a 60-megapixel photo's overlay
        costs what a screen shows, not what the camera took.
        """
        width, height = self.size
        scale = min(1.0, max_side / max(width, height)) if max_side else 1.0
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        heat = np.zeros((height, width), np.float32)
        coverage = np.zeros((height, width), np.float32)
        for face in self.faces:
            inverse = cv2.invertAffineTransform(face.matrix) * scale  # crop -> photo -> scaled photo
            side = face.cam.shape[0]
            corners = np.array([[0, 0, 1], [side, 0, 1], [0, side, 1], [side, side, 1]], np.float64) @ inverse.T
            x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
            x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int), (width, height))
            if x1 <= x0 or y1 <= y0:
                continue
            shifted = inverse.copy()
            shifted[:, 2] -= (x0, y0)  # warp into the face's region only, not the whole photo
            region = (int(x1 - x0), int(y1 - y0))
            face_heat = cv2.warpAffine(face.cam.astype(np.float32), shifted, region, flags=cv2.INTER_LINEAR)
            face_cover = cv2.warpAffine(np.ones_like(face.cam, np.float32), shifted, region, flags=cv2.INTER_LINEAR)
            np.maximum(heat[y0:y1, x0:x1], face_heat, out=heat[y0:y1, x0:x1])
            np.maximum(coverage[y0:y1, x0:x1], face_cover, out=coverage[y0:y1, x0:x1])
        return heat, coverage


class Explainer:
    """Grad-CAM on a private copy of a model: loaded once, safe to call from several threads.

    The copy has its parameters frozen (no weight gradients are computed) and carries the
    library's hooks, so the model that serves predictions is never touched. Gradients start
    at the target block's input, so the backward pass stops there.
    """

    def __init__(self, model: FaceModel, batch_size: int = 16) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.layer = self.model.cam_layer()  # see the module docstring
        # The frozen copy builds no graph below this block: its input becomes the gradients' leaf.
        self.layer.register_forward_pre_hook(lambda _, inputs: (inputs[0].detach().requires_grad_(True),))
        self.batch_size = batch_size
        self._lock = threading.Lock()

    def explain(
        self,
        image: Image.Image,
        faces: Sequence[FacePrediction],
        head: str,
        target: str | None = None,
        method: str = "gradcam",
    ) -> Explanation:
        """Maps of ``head`` for each face; ``target=None`` explains each face's own prediction."""
        if head == "race7" and self.model.config.ethnicities != len(labels.RACE7):
            raise ValueError("this model's ethnicity head has UTKFace's 5 classes: explain the race head")
        check_target(head, target)
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        started = time.perf_counter()
        settings = self.model.config.crop
        matrices = [crop_matrix(np.asarray(face.box), np.asarray(face.landmarks), settings) for face in faces]
        crops = [crop_face(image, np.asarray(face.box), np.asarray(face.landmarks), settings) for face in faces]
        targets = [target or predicted_target(face, head) for face in faces]
        columns = [HEAD_TARGETS[head].index(name) for name in targets]
        cams, outputs = self._cams(crops, head, columns, METHODS[method])
        explained = tuple(
            FaceExplanation(box=face.box, target=name, cam=cam, matrix=matrix,
                            score=float(value if name == EXPECTED_AGE else np.exp(value)))
            for face, name, value, cam, matrix in zip(faces, targets, outputs, cams, matrices)
        )
        return Explanation(head=head, method=method, size=image.size, faces=explained,
                           seconds=time.perf_counter() - started)

    def _cams(self, crops: list[Image.Image], head: str, columns: list[int], cam_class: type) -> tuple[list, np.ndarray]:
        wrapper = HeadScores(self.model, head)
        cams: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        with self._lock:
            # Not ``with cam:``: the library's __exit__ swallows IndexError.
            cam = cam_class(model=wrapper, target_layers=[self.layer])
            try:
                for start in range(0, len(crops), self.batch_size):
                    chunk = columns[start:start + self.batch_size]
                    targets = [ClassifierOutputTarget(column) for column in chunk]
                    cams.extend(cam(to_batch(crops[start:start + self.batch_size]), targets))
                    scores.append(cam.outputs.detach().numpy()[np.arange(len(chunk)), chunk])
            finally:
                cam.activations_and_grads.release()
        return cams, np.concatenate(scores) if scores else np.zeros(0)
