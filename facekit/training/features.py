"""The on-disk feature cache that makes training feasible on two CPU cores.

Every face image (a UTKFace chip, a FairFace crop, a wider-dev cut) is re-detected by MTCNN
and cropped with ``facekit.vision.align.crop_face``, exactly as a photo is at inference. Where the
dataset gives the face's box (wider-dev cuts can hold several faces), the detection that
overlaps it most is used, and the box itself is the fallback when none does; otherwise the
largest face is used and the whole image is the fallback. Fallbacks are counted. The frozen lower part of the backbone runs once per
face and per view (original, horizontally flipped); its activations at the first
trainable block and the pooled 1792-d features are stored in memory-mapped arrays. The
cache folder's name is a key of the backbone weights, crop and detector settings and the
archive, so a change to any of them builds a new cache; an interrupted build resumes.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import torch

from facekit.vision.align import crop_face, resize_chip
from facekit.cache import cache_dir
from facekit.models.backbones import load_backbone, weights_digest
from facekit.vision.detect import DetectorSettings, FaceDetector, matching_face
from facekit.vision.io import ImageError, load_image
from facekit.models.model import FEATURE_SIZE, FaceModel, ModelConfig, to_batch

VIEWS = 2  # original and horizontally flipped
# Activations are cached where this block starts: its input is 896x8x8 at 160 px, deep
# enough that fine-tuning from here costs a fraction of fine-tuning the whole network.
CACHE_AT = "repeat_2"
# The detector that made the training crops: MTCNN's own defaults, pinned here so that faster
# inference defaults (facekit.vision.detect.DetectorSettings) never change what training sees.
CACHE_DETECTOR = DetectorSettings(detector="mtcnn", min_face_size=20, scale_factor=0.709, max_side=640)


@dataclass(frozen=True)
class FeatureCache:
    """Paths and shapes of one cache; arrays open as read-only memmaps."""

    folder: Path
    faces: int
    activation_shape: tuple[int, ...]

    @property
    def index(self) -> pd.DataFrame:
        """One row per face in cache order: file, detected, det_score, box and landmarks."""
        return pd.read_csv(self.folder / "index.csv")

    def activations(self) -> np.memmap:
        return np.memmap(self.folder / "activations.f16", np.float16, "r", shape=(self.faces, VIEWS, *self.activation_shape))

    def pooled(self) -> np.memmap:
        return np.memmap(self.folder / "pooled.f32", np.float32, "r", shape=(self.faces, VIEWS, FEATURE_SIZE))


def cache_key(archive: Path, config: ModelConfig, detector: DetectorSettings) -> str:
    stat = archive.stat()
    parts = {
        "weights": weights_digest(config.weights),
        "trainable_from": config.trainable_from,
        "crop": config.crop.to_dict(),
        "detector": detector.to_dict(),
        "archive": [archive.name, stat.st_size],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def open_cache(folder: Path) -> FeatureCache:
    meta = json.loads((folder / "meta.json").read_text())
    if not meta.get("complete"):
        raise RuntimeError(f"feature cache {folder} is incomplete: rerun `facekit train features` to resume it")
    return FeatureCache(folder, meta["faces"], tuple(meta["activation_shape"]))


def _batches(items: Iterator, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def build_cache(
    archive: Path,
    files: list[str],
    images: Iterator[tuple[str, bytes]],
    config: ModelConfig,
    detector_settings: DetectorSettings = CACHE_DETECTOR,
    batch_size: int = 64,
    log=print,
    hints: dict[str, np.ndarray] | None = None,
) -> FeatureCache:
    """Fill (or resume) the cache for ``files``, reading their bytes from ``images`` in any order.

    ``hints`` maps a file to its labelled face's box (x1, y1, x2, y2) in that image.
    """
    hints = hints or {}
    folder = cache_dir() / "features" / cache_key(archive, config, detector_settings)
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / "meta.json"
    finished = _finished_cache(folder, files)
    if finished is not None:
        return finished
    model = FaceModel(config, backbone=load_backbone(config.weights)).eval()
    with torch.inference_mode():
        probe = model.lower(torch.zeros(1, 3, config.crop.size, config.crop.size))
    activation_shape = tuple(probe.shape[1:])
    faces = len(files)
    meta = {"faces": faces, "activation_shape": activation_shape, "config": config.to_dict(),
            "detector": detector_settings.to_dict(), "archive": str(archive), "complete": False}
    meta_path.write_text(json.dumps(meta, indent=2))
    position = {name: i for i, name in enumerate(files)}
    activations, pooled, done = _open_arrays(folder, faces, activation_shape)
    done_path = folder / "done.npy"
    rows_path = folder / "rows.jsonl"
    detector = FaceDetector(detector_settings)
    started, processed = time.time(), 0
    pending = ((name, data) for name, data in images if name in position and not done[position[name]])
    with rows_path.open("a") as rows_file:
        for batch in _batches(pending, batch_size):
            crops, rows = _crop_batch(batch, detector, hints, config, log)
            with torch.inference_mode():
                for view in range(VIEWS):
                    lower = model.lower(to_batch(crops, flip=bool(view)))
                    features = model.upper(lower)
                    for row, low, feat in zip(rows, lower, features):
                        i = position[row["file"]]
                        activations[i, view] = low.numpy().astype(np.float16)
                        pooled[i, view] = feat.numpy()
            for row in rows:
                done[position[row["file"]]] = True
                rows_file.write(json.dumps(row) + "\n")
            rows_file.flush()
            activations.flush()
            pooled.flush()
            np.save(done_path, done)
            processed += len(rows)
            rate = processed / (time.time() - started)
            log(f"{int(done.sum())}/{faces} faces, {rate:.1f} faces/s, ETA {(faces - done.sum()) / rate / 60:.1f} min")
    if not done.all():
        raise RuntimeError(f"{int((~done).sum())} faces were not found in the image stream")
    return _seal(folder, files, meta)


def _seal(folder: Path, files: list[str], meta: dict) -> FeatureCache:
    """Write the index of a cache whose every face is done, in ``files`` order, and mark it complete."""
    rows = (folder / "rows.jsonl").read_text().splitlines()
    table = pd.DataFrame([json.loads(line) for line in rows])
    table = table.drop_duplicates("file", keep="last").set_index("file").loc[files].reset_index()
    table.to_csv(folder / "index.csv", index=False)
    meta.update(complete=True, detected=int(table["detected"].sum()))
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    return open_cache(folder)


def _open_arrays(folder: Path, faces: int, activation_shape: tuple) -> tuple[np.memmap, np.memmap, np.ndarray]:
    """The cache's activations and pooled features (memory-mapped, created or reopened to resume) and which
    faces are done."""
    mode = "r+" if (folder / "activations.f16").exists() else "w+"
    activations = np.memmap(folder / "activations.f16", np.float16, mode, shape=(faces, VIEWS, *activation_shape))
    pooled = np.memmap(folder / "pooled.f32", np.float32, mode, shape=(faces, VIEWS, FEATURE_SIZE))
    done_path = folder / "done.npy"
    return activations, pooled, np.load(done_path) if done_path.exists() else np.zeros(faces, bool)


def _finished_cache(folder: Path, files: list[str]) -> FeatureCache | None:
    """The complete cache in ``folder``, or None while it is absent or half built; an error if it holds other faces."""
    meta_path = folder / "meta.json"
    if not meta_path.exists() or not json.loads(meta_path.read_text()).get("complete"):
        return None
    cache = open_cache(folder)
    missing = set(files) - set(cache.index["file"])
    if missing:
        raise RuntimeError(f"the feature cache {folder} was built for other faces ({len(missing)} of these are "
                           f"not in it, e.g. {sorted(missing)[0]}): delete the folder to rebuild it")
    return cache


def _detect_batch(batch: list[tuple[str, bytes]], detector: FaceDetector | None, hints: dict[str, np.ndarray],
                  log) -> list[tuple[object, dict]]:
    """(image, index row) of each readable image: the detected face matching the hint, else the hinted
    box, else none (the whole image is the face, an aligned chip); no detector: every image is a chip."""
    decoded = []
    for name, data in batch:
        try:
            decoded.append((name, load_image(data)))
        except ImageError as error:
            log(f"skipping unreadable {name}: {error}")
    found_faces = detector.detect([image for _, image in decoded]) if detector else [None] * len(decoded)
    out = []
    for (name, image), found in zip(decoded, found_faces):
        hint = hints.get(name)
        pick = matching_face(found.boxes, hint) if found is not None else None
        if pick is not None:
            row = {"file": name, "detected": True, "det_score": float(found.scores[pick]),
                   "box": found.boxes[pick].round(1).tolist(), "landmarks": found.landmarks[pick].round(1).tolist()}
        else:
            row = {"file": name, "detected": False, "det_score": None,
                   "box": hint.round(1).tolist() if hint is not None else None, "landmarks": None}
        out.append((image, row))
    return out


def _crop_batch(batch: list[tuple[str, bytes]], detector: FaceDetector, hints: dict[str, np.ndarray],
                config: ModelConfig, log) -> tuple[list[np.ndarray], list[dict]]:
    """Each readable image's face crop and its index row (``_detect_batch``)."""
    crops, rows = [], []
    for image, row in _detect_batch(batch, detector, hints, log):
        if row["box"] is None:
            crops.append(resize_chip(image, config.crop))
        else:
            landmarks = None if row["landmarks"] is None else np.array(row["landmarks"])
            crops.append(crop_face(image, np.array(row["box"]), landmarks, config.crop))
        rows.append(row)
    return crops, rows


def build_index(
    source: Path,
    files: list[str],
    images: Iterator[tuple[str, bytes]],
    detect: bool = True,
    hints: dict[str, np.ndarray] | None = None,
    log=print,
    batch_size: int = 64,
) -> pd.DataFrame:
    """Where each face is, without any network: the feature cache's ``index.csv`` alone (file, detected,
    det_score, box, landmarks), for runs that crop their faces from the images each step. With ``detect``
    False every image is taken as the face itself (a dataset of aligned chips). Cached and resumable
    like the feature cache, under a key of the source (path, size, time), the detector settings and ``detect``."""
    hints = hints or {}
    stat = source.stat()
    key = hashlib.sha256(json.dumps({"detector": CACHE_DETECTOR.to_dict() if detect else None,
                                     "source": [str(source.resolve()), stat.st_size, stat.st_mtime_ns]}, sort_keys=True).encode()).hexdigest()[:12]
    folder = cache_dir() / "detections" / key
    folder.mkdir(parents=True, exist_ok=True)
    index_path, rows_path = folder / "index.csv", folder / "rows.jsonl"
    if index_path.exists():
        index = pd.read_csv(index_path)
        if not set(files) - set(index["file"]):
            return index.set_index("file").loc[files].reset_index()
        index_path.unlink()  # made for fewer faces: the rows file resumes it
    done = {json.loads(line)["file"] for line in rows_path.read_text().splitlines()} if rows_path.exists() else set()
    wanted = set(files)
    detector = FaceDetector(CACHE_DETECTOR) if detect else None
    started, processed = time.time(), 0
    pending = ((name, data) for name, data in images if name in wanted and name not in done)
    with rows_path.open("a") as rows_file:
        for batch in _batches(pending, batch_size):
            for _, row in _detect_batch(batch, detector, hints, log):
                rows_file.write(json.dumps(row) + "\n")
                done.add(row["file"])
            rows_file.flush()
            processed += len(batch)
            if detect:
                rate = processed / (time.time() - started)
                log(f"{len(done & wanted)}/{len(wanted)} faces located, {rate:.1f} faces/s")
    rows = pd.DataFrame([json.loads(line) for line in rows_path.read_text().splitlines()])
    missing = wanted - set(rows["file"])
    if missing:
        raise RuntimeError(f"{len(missing)} faces were not found in the image stream (or were unreadable), "
                           f"e.g. {sorted(missing)[0]}")
    rows.drop_duplicates("file", keep="last").to_csv(index_path, index=False)
    return pd.read_csv(index_path).set_index("file").loc[files].reset_index()


def table_images(frame: pd.DataFrame) -> Iterator[tuple[str, bytes]]:
    """(file, bytes) of each face of a dataset table that has an image, in table order."""
    from facekit.data import read_image_bytes

    for name, image in zip(frame["file"], frame["image"]):
        if image is not None:
            yield name, read_image_bytes(image)
