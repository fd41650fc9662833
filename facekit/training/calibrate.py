"""A checkpoint's int8 activation ranges, measured on its training photos (``facekit quantize``).

With training because the ranges are part of the model and come from the training split;
``facekit.models.export`` only reads them to build the int8 graph.
"""
from __future__ import annotations

from pathlib import Path

import torch

from facekit.data import read_image_bytes
from facekit.evaluation.evaluate import select_faces
from facekit.models.export import calibrate_int8, int8_ranges_path
from facekit.models.model import DEFAULT_MODEL, load_checkpoint, to_batch
from facekit.vision.align import crop_face
from facekit.vision.detect import FaceDetector
from facekit.vision.io import load_image


def calibrate_checkpoint(checkpoint: Path | None = None, data: Path | None = None, faces: int = 256, seed: int = 0,
                         log=lambda _: None) -> Path:
    """Calibrate a checkpoint's int8 graph on ``faces`` training-split photos, cropped as at inference.

    Training photos, never validation or test ones: the ranges are part of the model. Each
    batch holds the crops and their mirrors, as the predictor runs them.
    """
    checkpoint = Path(checkpoint or DEFAULT_MODEL)
    model = load_checkpoint(checkpoint).model
    _, frame = select_faces(data, "train", faces, seed)
    detector = FaceDetector()
    crops = []
    for ref in frame["image"]:
        image = load_image(read_image_bytes(ref))
        found = detector.detect([image])[0]
        if len(found):
            crops.append(crop_face(image, found.boxes[0], found.landmarks[0], model.config.crop))
    log(f"calibrating on {len(crops)} faces of {len(frame)} training photos")
    return calibrate_int8(model, mirrored_batches(crops), int8_ranges_path(checkpoint))


def mirrored_batches(crops: list, size: int = 32):
    """Batches of face crops, each followed by its mirrors, as the predictor runs them."""
    for start in range(0, len(crops), size):
        batch = to_batch(crops[start:start + size])
        yield torch.cat([batch, batch.flip(3)])
