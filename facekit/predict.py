"""The public API: photos in, one typed ``FacePrediction`` per face out.

``Predictor`` holds the detector and the model (load once, reuse); ``predict`` is the
one-call convenience. A photo that cannot be read or has no face gives an
``ImageResult`` with an ``error`` or ``reason`` instead of raising, so a batch keeps
every good result. ``facekit.rows`` turns results into the rows of every CSV and JSON.
"""
from __future__ import annotations

import os
import threading
import time
import zipfile
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from facekit import labels
from facekit.vision.align import crop_face
from facekit.vision.detect import Detection, DetectorSettings, FaceDetector
from facekit.vision.io import ImageError, ImageSource, InputItem, load_image
from facekit.models.model import DEFAULT_MODEL, FaceModel, load_checkpoint, to_batch


@dataclass(frozen=True)
class FacePrediction:
    """One face: where it is, and each head's answer with its probabilities."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in the photo's pixels
    landmarks: tuple[tuple[float, float], ...]
    det_score: float
    gender: str
    gender_probs: dict[str, float]
    race: str
    race_probs: dict[str, float]
    age: float  # expected age in years
    age_low: float  # 80% interval
    age_high: float
    age_bin: str
    age_bin_probs: dict[str, float]
    age_probs: tuple[float, ...] = field(repr=False)  # P(age = year) for years 0..AGE_MAX
    race7: str | None = None  # FairFace's 7 classes, from models with a 7-class head
    race7_probs: dict[str, float] | None = None
    low_resolution: bool = False  # the face is under labels.MIN_ATTRIBUTE_FACE px tall: read its answers with care

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ImageResult:
    """Everything about one input: its faces, or why there are none."""

    source: str
    faces: list[FacePrediction] = field(default_factory=list)
    size: tuple[int, int] | None = None  # width, height after EXIF rotation
    error: str = ""  # the input could not be read
    reason: str = ""  # it was read but gave no face
    skipped_faces: int = 0  # faces beyond max_faces, not classified
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step

    @property
    def message(self) -> str:
        return self.error or self.reason


def head_probabilities(model: FaceModel, crops: Sequence[Image.Image], flip_average: bool = True,
                       forward: Callable[[torch.Tensor], dict[str, torch.Tensor]] | None = None) -> dict[str, np.ndarray]:
    """Calibrated probabilities per head for a batch of crops; averages the mirrored view if asked.

    ``forward`` runs the network (the model itself, or its ONNX graph); the mirrored crops ride
    in the same batch, which costs less than a second call.
    """
    batch = to_batch(crops)
    if flip_average:
        batch = torch.cat([batch, batch.flip(3)])
    with torch.inference_mode():
        logits = model.calibrated((forward or model)(batch))
    probs = {head: torch.softmax(value, 1) for head, value in logits.items()}
    if flip_average:
        probs = {head: (value[:len(crops)] + value[len(crops):]) / 2 for head, value in probs.items()}
    probs = {head: value.numpy() for head, value in probs.items()}
    if probs["race"].shape[1] == len(labels.RACE7):  # a 7-class head: UTKFace's 5 are its sums
        probs["race7"] = probs["race"]
        probs["race"] = labels.race7_to_race5(probs["race7"])
    return probs


def _race7_fields(probs: dict[str, np.ndarray], i: int) -> dict:
    if "race7" not in probs:
        return {}
    race7_p = probs["race7"][i]
    return {"race7": labels.RACE7[int(race7_p.argmax())],
            "race7_probs": {r: float(p) for r, p in zip(labels.RACE7, race7_p)}}


def face_predictions(detection: Detection, probs: dict[str, np.ndarray], offset: int = 0) -> list[FacePrediction]:
    faces = []
    for i in range(len(probs["gender"])):
        gender_p, race_p, age_p = probs["gender"][i], probs["race"][i], probs["age"][i]
        age, low, high = labels.age_summary(age_p)
        bins = labels.age_bin_probs(age_p)
        faces.append(
            FacePrediction(
                box=tuple(round(float(v), 1) for v in detection.boxes[offset + i]),
                landmarks=tuple((round(float(x), 1), round(float(y), 1)) for x, y in detection.landmarks[offset + i]),
                det_score=round(float(detection.scores[offset + i]), 4),
                gender=labels.GENDERS[int(gender_p.argmax())],
                gender_probs={g: float(p) for g, p in zip(labels.GENDERS, gender_p)},
                race=labels.RACES[int(race_p.argmax())],
                race_probs={r: float(p) for r, p in zip(labels.RACES, race_p)},
                age=round(age, 1),
                age_low=low,
                age_high=high,
                age_bin=max(bins, key=bins.get),
                age_bin_probs=bins,
                age_probs=tuple(float(p) for p in age_p),
                **_race7_fields(probs, i),
                low_resolution=bool(detection.boxes[offset + i][3] - detection.boxes[offset + i][1] < labels.MIN_ATTRIBUTE_FACE),
            )
        )
    return faces


ENGINES = ("auto", "int8", "onnx", "torch")
# A photo with more crops than this (faces and mirror images) gets the network on every core when it
# is the only photo in work; fewer go through a one-thread network (Predictor explains why).
SHARED_NETWORK_CROPS = 2  # one face and its mirror image


def _one_torch_thread() -> None:
    """A predictor worker's initializer: this thread's torch ops run on one thread.

    MTCNN's ops are too small to gain from a second thread, so one-thread workers detecting
    photos side by side use the cores better than one photo on all of them. Torch
    keeps a thread count per thread, taken from the process's count when the thread first
    asks (hence the read before the write); fixing it here, once, makes every detection run
    on one thread, so its result does not depend on which thread ran it.
    """
    torch.get_num_threads()
    torch.set_num_threads(1)


class Predictor:
    """Detector + model, loaded once. ``max_faces`` bounds the work per photo (largest first).

    ``engine="onnx"`` runs the network through its cached ONNX graph (facekit.models.export),
    faster on CPU with the same outputs; ``"int8"`` runs the graph quantized with the
    calibration ranges beside the checkpoint, faster again; ``"torch"`` runs the PyTorch
    model, which Grad-CAM and training always use. ``"auto"`` is int8 where the checkpoint has
    its calibration (the shipped one does, checked against the float graph on validation) and
    onnx otherwise.

    Photos go to ``workers`` threads (default: one per core), each with one torch thread (see
    ``_one_torch_thread``), and each photo's faces go through a one-thread copy of the network,
    so each core works on its own photo. Only a photo with more than ``SHARED_NETWORK_CROPS``
    crops (its faces and their mirror images), when it is the only photo, gets the network on
    all cores: a few crops gain nothing from more threads, and a thread that a neighbouring
    process holds up would stall the others at every layer.
    """

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        detector: DetectorSettings = DetectorSettings(),
        max_faces: int = 20,
        flip_average: bool = True,
        workers: int | None = None,
        engine: str = "auto",
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        from facekit.models.export import int8_model, int8_ranges_path, onnx_model

        loaded = load_checkpoint(checkpoint)
        self.model: FaceModel = loaded.model
        ranges = int8_ranges_path(Path(checkpoint or DEFAULT_MODEL))
        if engine == "auto":
            engine = "int8" if ranges.exists() else "onnx"
        if engine == "int8" and not ranges.exists():
            raise FileNotFoundError(f"no int8 calibration beside the checkpoint ({ranges.name}): "
                                    "run `facekit quantize` or use another engine")
        self.engine = engine
        self.workers = workers or os.cpu_count() or 1
        self.pool = _start_workers(self.workers)

        def network(threads: int) -> Callable[[torch.Tensor], dict[str, torch.Tensor]]:
            if engine == "onnx":
                return onnx_model(self.model, threads)
            if engine == "int8":
                return int8_model(self.model, ranges, threads)
            return self.model

        threads = torch.get_num_threads()
        self.forward = network(threads)
        self.forward_each = network(1) if self.workers > 1 and threads > 1 and engine != "torch" else self.forward
        self.metadata = loaded.metadata
        self.detector = FaceDetector(detector)
        self.max_faces = max_faces
        self.flip_average = flip_average

    def predict_images(self, sources: Sequence[ImageSource], names: Sequence[str] | None = None) -> list[ImageResult]:
        names = list(names) if names is not None else [_name(source, i) for i, source in enumerate(sources)]
        return list(self.pool.map(self._predict_one, sources, names, repeat(len(sources) < 2)))

    def predict(self, source: ImageSource, name: str | None = None) -> ImageResult:
        return self.predict_images([source], [name or _name(source, 0)])[0]

    def predict_items(self, items: Iterable[InputItem]) -> Iterator[ImageResult]:
        """One result per input of ``collect_inputs`` or ``collect_uploads``, in order.

        Each input is read (here, so ZIP members are read one at a time) just before a worker
        takes it, and only a few wait at once, so a folder of thousands never sits in memory;
        an input that cannot be listed or read gives a result with its error.
        """
        pending: deque[ImageResult | Future[ImageResult]] = deque()
        for item in items:
            data = _read_item(item)
            if isinstance(data, ImageResult):
                pending.append(data)
            else:
                pending.append(self.pool.submit(self._predict_one, data, item.name, False))
            while len(pending) > 2 * self.workers or (pending and isinstance(pending[0], ImageResult)):
                yield _done(pending.popleft())
        while pending:
            yield _done(pending.popleft())

    def probabilities(self, crops: Sequence[Image.Image]) -> dict[str, np.ndarray]:
        """Calibrated probabilities per head for aligned crops, with this predictor's engine and flip setting."""
        return head_probabilities(self.model, crops, self.flip_average, self.forward)

    def _predict_one(self, source: ImageSource, name: str, alone: bool) -> ImageResult:
        """One photo, start to end; ``alone``: no other photo is in work, so many faces may share the cores.
        MTCNN runs per photo: its batch mode pays off for small chips, not for full-size photos."""
        result = ImageResult(source=name)
        started = time.perf_counter()
        try:
            image = load_image(source)
        except ImageError as error:
            result.error = str(error)
            return result
        result.size = image.size
        result.timings["read"] = time.perf_counter() - started
        started = time.perf_counter()
        found = self.detector.detect([image])[0]
        result.timings["detect"] = time.perf_counter() - started
        if not len(found):
            result.reason = found.reason
            return result
        kept = min(len(found), self.max_faces)
        result.skipped_faces = len(found) - kept
        started = time.perf_counter()
        crops = [crop_face(image, found.boxes[i], found.landmarks[i], self.model.config.crop) for i in range(kept)]
        many = alone and kept * (2 if self.flip_average else 1) > SHARED_NETWORK_CROPS
        forward = self.forward if many else self.forward_each
        result.faces = face_predictions(found, head_probabilities(self.model, crops, self.flip_average, forward))
        result.timings["model"] = time.perf_counter() - started
        return result


def _start_workers(count: int) -> ThreadPoolExecutor:
    """``count`` threads, each with one torch thread; started now so that the process's own
    count, which the first of them lowers, is restored before anyone else reads it."""
    saved = torch.get_num_threads()
    pool = ThreadPoolExecutor(count, thread_name_prefix="facekit-predict", initializer=_one_torch_thread)
    everyone = threading.Barrier(count)
    list(pool.map(lambda _: everyone.wait(), range(count)))  # each waits for the others: count threads
    torch.set_num_threads(saved)
    return pool


def _read_item(item: InputItem) -> bytes | ImageResult:
    """The item's bytes, or its result when it cannot be read."""
    if item.read is None:
        return ImageResult(source=item.name, error=item.error)
    try:
        return item.read()
    except ImageError as error:
        return ImageResult(source=item.name, error=str(error))
    except (OSError, zipfile.BadZipFile, zlib.error) as error:
        return ImageResult(source=item.name, error=f"could not read ({error})")


def _done(pending: ImageResult | Future[ImageResult]) -> ImageResult:
    return pending if isinstance(pending, ImageResult) else pending.result()


def _name(source: ImageSource, index: int) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return getattr(source, "name", None) or f"image {index + 1}"


_DEFAULT: Predictor | None = None


def predict(images: ImageSource | Sequence[ImageSource]) -> list[ImageResult]:
    """Predict with the shipped model; one ``ImageResult`` per input."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Predictor()
    if isinstance(images, (str, Path, bytes, Image.Image, np.ndarray)) or hasattr(images, "read"):
        images = [images]  # type: ignore[list-item]
    return _DEFAULT.predict_images(list(images))  # type: ignore[arg-type]
