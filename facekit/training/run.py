"""``run``: the one command behind a recipe, from datasets to a checkpoint the app loads.

Each dataset is read by its reader, split (the committed split of a shipped dataset, else a
seeded stratified one written into the run folder), and turned into feature-cache rows; the
datasets' faces then train together, validation is scored per dataset, temperatures are fitted
on every validation face, and the checkpoint records each dataset's hash, counts and licence.
"""
from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from facekit.data import read_dataset
from facekit.data.licences import licence_note
from facekit.data.splits import COMMITTED_SPLITS, load_split, make_split, write_split
from facekit.data.table import DatasetTable, labelled_boxes
from facekit.data.utkface import MEMBER_SEP, is_archive, iter_utkface_images
from facekit.models.model import FaceModel, ModelConfig, load_checkpoint, save_checkpoint
from facekit.training.features import CACHE_AT, FeatureCache, build_cache, build_index, table_images
from facekit.training.loop import TrainableNet, averaged_probs, distributed, face_dataset, fit, view_logits
from facekit.training.recipe import DatasetSpec, TrainConfig
from facekit.training.targets import Targets, table_targets
from facekit.training.validation import dataset_scores, fit_temperatures
from facekit.vision.align import CropSettings

@dataclass
class PreparedDataset:
    """One dataset of a run: its table with a split, where its faces are, its feature cache (runs over
    cached features only), and labels in index order."""

    name: str
    spec: DatasetSpec
    table: DatasetTable
    index: pd.DataFrame  # file, detected, det_score, box, landmarks per face
    cache: FeatureCache | None
    targets: Targets
    split: np.ndarray  # train / val / test per index row


def read_with_split(spec: DatasetSpec, out: Path) -> DatasetTable:
    """The dataset's table with a ``split`` column; faces without an image are left out."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the CLI's reader reports these; a run needs the table only
        table = read_dataset(spec.data)
    path = spec.split or COMMITTED_SPLITS.get(table.dataset)
    if path is None:
        path = out / "splits" / f"{table.dataset}.csv"
        if not path.exists():
            write_split(make_split(table), path)
    table = load_split(table, path)
    frame = table.frame[table.frame["image"].notna()].reset_index(drop=True)
    return DatasetTable(frame, table.dataset, table.source, table.anomalies)


def prepare(spec: DatasetSpec, index: int, out: Path, config: TrainConfig, model_config: ModelConfig,
            log) -> PreparedDataset:
    """Read, split and locate one dataset's faces: a feature cache for runs over cached features, else the
    detections alone (``build_index``)."""
    table = read_with_split(spec, out)
    frame = table.frame
    files = sorted(frame.loc[frame["split"] != "test", "file"])  # test faces never train: no need to cache them
    source = Path(spec.data).expanduser()
    images = iter_utkface_images(source) if is_archive(source) else table_images(frame.sort_values("file"))
    cache = None
    if config.from_images():
        faces = build_index(source, files, images, detect=config.detect, hints=labelled_boxes(frame), log=log)
    else:
        if not config.detect:
            raise ValueError("detect: false needs images: true (the feature cache crops detected faces)")
        cache = build_cache(source, files, images, ModelConfig(trainable_from=CACHE_AT), log=log,
                            hints=labelled_boxes(frame))
        faces = cache.index
    located = faces["file"].tolist()  # every face, in index order (a cache may hold test faces too)
    split = frame.set_index("file").loc[located, "split"].astype(str).to_numpy()
    targets = table_targets(frame, located, model_config.race_labels, index, model_config.age_groups)
    return PreparedDataset(table.dataset, spec, table, faces, cache, targets, split)


def data_sha256(source: Path, frame: pd.DataFrame) -> str:
    """sha256 of what a run read: an archive's or a CSV's bytes (with the images inside), or a label file's
    bytes and every image file it used."""
    digest = hashlib.sha256()
    paths = [source] if source.is_file() else []
    paths += [Path(p) for p in sorted(frame["image"].dropna()) if MEMBER_SEP not in str(p)]
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def model_inputs(datasets: list[PreparedDataset], config: TrainConfig, crop: CropSettings):
    """What the loop reads: cache arrays (activations or pooled features) or the images themselves."""
    if not config.from_images():
        return [d.cache.activations() if config.trainable_from else d.cache.pooled() for d in datasets], CACHE_AT
    from facekit.training.augment import Chips

    if not config.model_config().trainable_from:
        raise ValueError("images: true needs trainable_from (heads alone train faster on cached pooled features)")
    return Chips.concat([Chips.from_index(d.index, dict(zip(d.table.frame["file"], d.table.frame["image"])),
                                          crop) for d in datasets]), ""


def initialise(model: FaceModel, start: Path, log) -> None:
    """Start ``model`` from a checkpoint of the same backbone: its backbone tensors (fine-tuned blocks, or the
    whole of another backbone) and every head layer of the same shape; a head of another kind starts afresh."""
    saved = load_checkpoint(start).model
    if saved.config.backbone != model.config.backbone:
        raise ValueError(f"init_from {start} is a {saved.config.backbone} model, this run trains a "
                         f"{model.config.backbone}")
    model.backbone.load_state_dict(saved.backbone.state_dict())
    own = model.heads.state_dict()
    fitting = {k: v for k, v in saved.heads.state_dict().items() if k in own and own[k].shape == v.shape}
    model.heads.load_state_dict(fitting, strict=False)
    fresh = sorted({k.split(".")[0] for k in set(own) - set(fitting)})
    log(f"initialised from {start} (its backbone and heads{'; new: ' + ', '.join(fresh) if fresh else ''})")


def run(config: TrainConfig, resume: bool = False, log: Callable[[str], None] = print) -> Path:
    """Feature caches, training, temperatures, checkpoint; returns the checkpoint (or ``last.pt``
    when the session's step budget ran out first)."""
    rank, world = distributed()
    out = Path(config.out).expanduser()
    model_config = config.model_config()
    if model_config.crop != CropSettings() and not config.from_images():
        raise ValueError(f"crop_size {config.crop_size} needs images: true (the feature cache is cut at "
                         f"{CropSettings().size} px)")
    started = time.time()
    quiet = log if rank == 0 else (lambda _: None)
    datasets = [prepare(spec, i, out, config, model_config, quiet) for i, spec in enumerate(config.dataset_specs())]
    timings = {"feature_cache_seconds": round(time.time() - started, 1)}
    names = [d.name for d in datasets]
    targets = Targets.concat([d.targets for d in datasets])
    split = np.concatenate([d.split for d in datasets])
    weights = np.concatenate([np.full(len(d.split), d.spec.weight) for d in datasets])
    train_rows, val_rows = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    inputs, input_block = model_inputs(datasets, config, model_config.crop)
    model = FaceModel(model_config)
    if config.init_from:
        initialise(model, Path(config.init_from).expanduser(), log)
    started = time.time()
    result = fit(model, inputs, input_block, targets, train_rows, val_rows, config, resume=resume, log=log,
                 names=names, draw_weights=weights[train_rows])
    timings["training_seconds"] = round(time.time() - started, 1)
    if not result.finished:
        return out / "last.pt"
    path = out / "model.safetensors"
    if rank == 0:
        val_set = face_dataset(inputs, val_rows, targets, train=False)
        logits = view_logits(TrainableNet(model, input_block), val_set)
        model.temperature.copy_(fit_temperatures(logits, val_set.targets))
        validation = [s.to_dict() for s in dataset_scores(val_set.targets, averaged_probs(logits, model.temperature),
                                                          names, model_config.age_groups)]
        save_checkpoint(model, path, {
            "training": {"config": config.to_dict(), "best_epoch": result.best_epoch, "world_size": world,
                         "timings": timings},
            "data": [{"dataset": d.name, "source": Path(d.spec.data).name, "weight": d.spec.weight,
                      "sha256": data_sha256(Path(d.spec.data).expanduser(), d.table.frame),
                      "faces": len(d.split), "train": int((d.split == "train").sum()),
                      "val": int((d.split == "val").sum()), "detector_found": int(d.index["detected"].sum())}
                     for d in datasets],
            "metrics": {"validation": validation},
            "licence": licence_note(names),
        }, half_backbone=config.fp16_backbone)
        log(f"saved {path}: validation {json.dumps(validation)}")
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return path
