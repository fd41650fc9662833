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
from facekit.data.utkface import is_archive, iter_utkface_images
from facekit.models.model import FaceModel, ModelConfig, load_checkpoint, save_checkpoint
from facekit.training.features import CACHE_AT, FeatureCache, build_cache, table_images
from facekit.training.loop import TrainableNet, averaged_probs, distributed, face_dataset, fit, view_logits
from facekit.training.recipe import DatasetSpec, TrainConfig
from facekit.training.targets import Targets, table_targets
from facekit.training.validation import dataset_scores, fit_temperatures
from facekit.vision.align import CropSettings

@dataclass
class PreparedDataset:
    """One dataset of a run: its table with a split, its feature cache, and labels in cache order."""

    name: str
    spec: DatasetSpec
    table: DatasetTable
    cache: FeatureCache
    targets: Targets
    split: np.ndarray  # train / val / test per cache row


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


def prepare(spec: DatasetSpec, index: int, out: Path, classes: tuple[str, ...], log) -> PreparedDataset:
    table = read_with_split(spec, out)
    frame = table.frame
    files = sorted(frame.loc[frame["split"] != "test", "file"])  # test faces never train: no need to cache them
    source = Path(spec.data).expanduser()
    images = iter_utkface_images(source) if is_archive(source) else table_images(frame.sort_values("file"))
    cache = build_cache(source, files, images, ModelConfig(trainable_from=CACHE_AT), log=log,
                        hints=labelled_boxes(frame))
    cached = cache.index["file"].tolist()  # every cached face, in cache order (a cache may hold test faces too)
    split = frame.set_index("file").loc[cached, "split"].astype(str).to_numpy()
    return PreparedDataset(table.dataset, spec, table, cache, table_targets(frame, cached, classes, index), split)


def data_sha256(source: Path, frame: pd.DataFrame) -> str:
    """sha256 of what a run read: an archive's bytes, or a label file's bytes and every image it used."""
    digest = hashlib.sha256()
    paths = [source] if source.is_file() else []
    if not is_archive(source):
        paths += [Path(p) for p in sorted(frame["image"].dropna())]
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def model_inputs(datasets: list[PreparedDataset], config: TrainConfig, crop: CropSettings):
    """What the loop reads: cache arrays (activations or pooled features) or the images themselves."""
    if not config.images:
        return [d.cache.activations() if config.trainable_from else d.cache.pooled() for d in datasets], CACHE_AT
    from facekit.training.augment import Chips

    if not config.trainable_from:
        raise ValueError("images: true needs trainable_from (heads alone train faster on cached pooled features)")
    return Chips.concat([Chips.from_index(d.cache.index, dict(zip(d.table.frame["file"], d.table.frame["image"])),
                                          crop) for d in datasets]), ""


def run(config: TrainConfig, resume: bool = False, log: Callable[[str], None] = print) -> Path:
    """Feature caches, training, temperatures, checkpoint; returns the checkpoint (or ``last.pt``
    when the session's step budget ran out first)."""
    rank, world = distributed()
    out = Path(config.out).expanduser()
    if config.crop_size != CropSettings().size and not config.images:
        raise ValueError(f"crop_size {config.crop_size} needs images: true (the feature cache is cut at "
                         f"{CropSettings().size} px)")
    model_config = ModelConfig(trainable_from=config.trainable_from, hidden=config.hidden, dropout=config.dropout,
                               crop=CropSettings(size=config.crop_size), ethnicities=config.ethnicities)
    started = time.time()
    quiet = log if rank == 0 else (lambda _: None)
    datasets = [prepare(spec, i, out, model_config.race_labels, quiet) for i, spec in enumerate(config.dataset_specs())]
    timings = {"feature_cache_seconds": round(time.time() - started, 1)}
    names = [d.name for d in datasets]
    targets = Targets.concat([d.targets for d in datasets])
    split = np.concatenate([d.split for d in datasets])
    weights = np.concatenate([np.full(len(d.split), d.spec.weight) for d in datasets])
    train_rows, val_rows = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    inputs, input_block = model_inputs(datasets, config, model_config.crop)
    model = FaceModel(model_config)
    if config.init_from:
        start = load_checkpoint(Path(config.init_from).expanduser(), backbone=model.backbone).model
        model.heads.load_state_dict(start.heads.state_dict())
        log(f"initialised from {config.init_from} (heads and any fine-tuned blocks it holds)")
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
                                                          names)]
        save_checkpoint(model, path, {
            "training": {"config": config.to_dict(), "best_epoch": result.best_epoch, "world_size": world,
                         "timings": timings},
            "data": [{"dataset": d.name, "source": Path(d.spec.data).name, "weight": d.spec.weight,
                      "sha256": data_sha256(Path(d.spec.data).expanduser(), d.table.frame),
                      "faces": len(d.split), "train": int((d.split == "train").sum()),
                      "val": int((d.split == "val").sum()), "detector_found": int(d.cache.index["detected"].sum())}
                     for d in datasets],
            "metrics": {"validation": validation},
            "licence": licence_note(names),
        }, half_backbone=config.fp16_backbone)
        log(f"saved {path}: validation {json.dumps(validation)}")
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    return path
