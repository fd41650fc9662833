"""The training loop: multi-task loss over cached backbone features or augmented images,
single process or ``torchrun`` (DistributedDataParallel), with resumable checkpoints and
per-epoch metrics.

Inputs are pooled 1792-d features (heads only), the cached activations entering
``CACHE_AT`` (fine-tuning the upper backbone blocks with their batch-norm statistics
frozen), or, with ``images: true``, the UTKFace chips themselves, cropped and augmented anew
each epoch (``facekit.training.augment``) and run through the frozen lower blocks without gradients.
From the cache one view per face is drawn at random each epoch (original or flipped);
validation averages both, as the predictor does.
"""
from __future__ import annotations

import csv
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from facekit import labels
from facekit.vision.align import CropSettings
from facekit.evaluation.metrics import head_summary
from facekit.models.model import FaceModel

HEADS = FaceModel.HEADS


@dataclass
class TrainConfig:
    """Every option of a run; a recipe YAML sets any of these fields."""

    data: str = "../shared/data/UTKFace.tar.gz"
    split: str = ""  # file,split CSV; "" = the committed UTKFace split
    out: str = "runs/facekit"
    trainable_from: str = ""  # "" trains the heads on pooled features; else a block of UPPER_BLOCKS
    hidden: int = 512
    dropout: float = 0.3
    epochs: int = 30
    batch_size: int = 256
    optimizer: str = "adamw"  # adamw | adam | sgd
    lr: float = 1e-3  # heads
    backbone_lr: float = 1e-4  # fine-tuned blocks
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    class_balanced: bool = False
    age_sigma: float = 2.0  # years, of the Gaussian-smoothed age target
    age_l1_weight: float = 0.05  # weight of |expected age - age|
    loss_weights: dict = field(default_factory=lambda: {"gender": 1.0, "race": 1.0, "age": 1.0})
    patience: int = 5  # epochs without validation improvement before stopping
    seed: int = 0
    workers: int = 0
    limit: int = 0  # train on the first N training faces only (smoke runs); 0 = all
    session_steps: int = 0  # stop after this many steps in one invocation (a session's budget); --resume goes on
    checkpoint_every: int = 50  # steps between resumable checkpoints within an epoch
    fp16_backbone: bool = True  # store fine-tuned backbone tensors in half precision
    init_from: str = ""  # a facekit checkpoint whose tensors (trained heads, fine-tuned blocks) start this run
    images: bool = False  # train on chips cropped and augmented each step (facekit.training.augment), not the cache
    crop_size: int = CropSettings().size  # pixels of the model's input; other than the default needs images

    @classmethod
    def from_yaml(cls, path: Path, **overrides) -> "TrainConfig":
        data = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown options {sorted(unknown)}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)


@dataclass
class Targets:
    """Labels aligned with the inputs: -1 / NaN where unknown."""

    gender: np.ndarray
    race: np.ndarray
    age: np.ndarray

    def subset(self, rows: np.ndarray) -> "Targets":
        return Targets(self.gender[rows], self.race[rows], self.age[rows])


class CachedFaces(Dataset):
    """Faces from a (faces, views, ...) array; a random view when training, both otherwise."""

    def __init__(self, inputs: np.ndarray, rows: np.ndarray, targets: Targets, train: bool) -> None:
        self.inputs, self.rows, self.targets, self.train = inputs, rows, targets.subset(rows), train

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int):
        row = self.rows[k]
        if self.train:
            x = torch.from_numpy(np.array(self.inputs[row, random.randrange(self.inputs.shape[1])], np.float32))
        else:
            x = torch.from_numpy(np.array(self.inputs[row], np.float32))
        t = self.targets
        return x, int(t.gender[k]), int(t.race[k]), float(t.age[k])


class TrainableNet(nn.Module):
    """The part of ``FaceModel`` that training runs: the blocks from ``input_block`` ("" for
    standardized images) to ``trainable_from``, frozen, then the trainable blocks and heads."""

    def __init__(self, model: FaceModel, input_block: str) -> None:
        super().__init__()
        self.model = model
        start = model.config.trainable_from
        self.frozen = nn.ModuleList(model._blocks(input_block or None, start) if start else [])
        self.trainable = nn.ModuleList(model._blocks(start, None) if start else [])
        for p in model.backbone.parameters():
            p.requires_grad_(False)
        for p in self.trainable.parameters():
            p.requires_grad_(True)
        # oneDNN's convolutions run ~2.5x faster in channels-last layout on CPU (the stem too).
        self.frozen.to(memory_format=torch.channels_last)
        self.trainable.to(memory_format=torch.channels_last)

    def train(self, mode: bool = True) -> "TrainableNet":
        super().train(mode)
        self.model.backbone.eval()  # batch-norm statistics stay as pretrained (the blocks have no dropout)
        return self

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if len(self.trainable):
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                for block in self.frozen:
                    x = block(x)
            for block in self.trainable:
                x = block(x)
            x = self.model.backbone.avgpool_1a(x).flatten(1)
        return self.model.heads(x)


def age_targets(age: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian-smoothed distribution over years 0..AGE_MAX centred on each true age."""
    years = torch.arange(labels.AGE_CLASSES, dtype=torch.float32)
    target = torch.exp(-0.5 * ((years[None] - age.clamp(0, labels.AGE_MAX)[:, None]) / sigma) ** 2)
    return target / target.sum(1, keepdim=True)


def multitask_loss(
    outputs: dict[str, torch.Tensor],
    gender: torch.Tensor,
    race: torch.Tensor,
    age: torch.Tensor,
    config: TrainConfig,
    class_weights: dict[str, torch.Tensor | None],
) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy for gender and ethnicity (unknown labels masked), distribution loss + L1 for age."""
    parts: dict[str, torch.Tensor] = {}
    for head, target in (("gender", gender), ("race", race)):
        known = target >= 0
        if known.any():
            parts[head] = F.cross_entropy(outputs[head][known], target[known], weight=class_weights.get(head),
                                          label_smoothing=config.label_smoothing)
    known = ~torch.isnan(age)
    if known.any():
        log_probs = F.log_softmax(outputs["age"][known], 1)
        distribution = -(age_targets(age[known], config.age_sigma) * log_probs).sum(1).mean()
        expected = (log_probs.exp() * torch.arange(labels.AGE_CLASSES, dtype=torch.float32)).sum(1)
        parts["age"] = distribution + config.age_l1_weight * (expected - age[known]).abs().mean()
    total = sum(config.loss_weights.get(head, 1.0) * value for head, value in parts.items())
    return total, {head: float(value.detach()) for head, value in parts.items()}


def balanced_weights(target: np.ndarray, classes: int) -> torch.Tensor:
    counts = np.bincount(target[target >= 0], minlength=classes).astype(np.float64)
    return torch.tensor(counts.sum() / (classes * np.maximum(counts, 1)), dtype=torch.float32)


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def face_dataset(inputs, rows: np.ndarray, targets: Targets, train: bool) -> Dataset:
    """The dataset over ``inputs``: a cache array (``CachedFaces``) or ``augment.Chips``."""
    from facekit.training.augment import ChipFaces, Chips

    if isinstance(inputs, Chips):
        return ChipFaces(inputs, rows, targets, train)
    return CachedFaces(inputs, rows, targets, train)


def view_logits(net: TrainableNet, dataset: Dataset, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Logits per head for every face and view: (faces, views, classes)."""
    net.eval()
    out: dict[str, list[torch.Tensor]] = {head: [] for head in HEADS}
    with torch.inference_mode():
        for x, *_ in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            logits = net(x.flatten(0, 1))
            for head in HEADS:
                out[head].append(logits[head].unflatten(0, (-1, x.shape[1])))
    return {head: torch.cat(parts) for head, parts in out.items()}


def averaged_probs(logits: dict[str, torch.Tensor], temperature: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """Softmax per view (after each head's temperature), averaged over views, as the predictor does."""
    temps = temperature.tolist() if temperature is not None else [1.0] * len(HEADS)
    return {head: torch.softmax(logits[head] / t, 2).mean(1).numpy() for head, t in zip(HEADS, temps)}


def validation_score(summary: dict) -> float:
    """One number to early-stop on: error rates plus age MAE in decades (lower is better)."""
    return (1 - summary["gender"]["accuracy"]) + (1 - summary["race"]["accuracy"]) + summary["age"]["mae"] / 10


def _distributed() -> tuple[int, int]:
    if "RANK" in os.environ and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def fit(
    model: FaceModel,
    inputs,
    input_block: str,
    targets: Targets,
    train_rows: np.ndarray,
    val_rows: np.ndarray,
    config: TrainConfig,
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Train ``model`` in place; return the best validation summary. Rank 0 writes ``config.out``.

    ``inputs``: a cache array of activations entering ``input_block`` (or pooled features), or
    ``augment.Chips`` with ``input_block`` "".
    """
    rank, world = _distributed()
    out = Path(config.out).expanduser()
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(asdict(config), indent=2))
    seed_everything(config.seed + rank)
    if config.limit:
        train_rows = train_rows[: config.limit]
    net = TrainableNet(model, input_block)
    train_set = face_dataset(inputs, train_rows, targets, train=True)
    val_set = face_dataset(inputs, val_rows, targets, train=False)
    sampler = DistributedSampler(train_set, world, rank, shuffle=True, seed=config.seed) if world > 1 else None
    generator = torch.Generator().manual_seed(config.seed)
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=sampler is None, sampler=sampler,
                        num_workers=config.workers, generator=generator, drop_last=len(train_set) > config.batch_size)
    class_weights = {}
    if config.class_balanced:
        class_weights = {"gender": balanced_weights(targets.gender[train_rows], len(labels.GENDERS)),
                         "race": balanced_weights(targets.race[train_rows], len(labels.RACES))}
    groups = [{"params": list(model.heads.parameters()), "lr": config.lr}]
    if len(net.trainable):
        groups.append({"params": list(net.trainable.parameters()), "lr": config.backbone_lr})
    optimizer = {
        "adamw": lambda: torch.optim.AdamW(groups, weight_decay=config.weight_decay),
        "adam": lambda: torch.optim.Adam(groups, weight_decay=config.weight_decay),
        "sgd": lambda: torch.optim.SGD(groups, momentum=0.9, nesterov=True, weight_decay=config.weight_decay),
    }[config.optimizer]()
    steps_per_epoch = len(loader)
    total = steps_per_epoch * config.epochs
    warmup = int(config.warmup_epochs * steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, warmup, total))
    trained = net
    if world > 1:
        trained = nn.parallel.DistributedDataParallel(net, find_unused_parameters=False)
    state = {"epoch": 0, "step": 0, "sums": {}, "seconds": 0.0, "best_score": float("inf"), "best_epoch": -1,
             "bad_epochs": 0, "best_summary": None}
    last = out / "last.pt"
    rng = None
    if resume and last.exists():
        saved = torch.load(last, map_location="cpu", weights_only=False)
        net.load_state_dict(saved["net"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state.update(saved["state"])
        rng = saved["rng"]
        log(f"resumed from {last} at epoch {state['epoch'] + 1}, step {state['step']}")

    def save_last() -> None:
        if rank == 0:
            torch.save({"net": net.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "state": state, "config": asdict(config),
                        "rng": {"python": random.getstate(), "numpy": np.random.get_state(),
                                "torch": torch.get_rng_state()}}, last)

    def restore_rng() -> None:
        random.setstate(rng["python"])
        np.random.set_state(rng["numpy"])
        torch.set_rng_state(rng["torch"])

    from tqdm import tqdm

    if rng is not None and state["step"] == 0:
        restore_rng()
    steps_left = config.session_steps or -1
    finished = True
    for epoch in range(state["epoch"], config.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        generator.manual_seed(config.seed + epoch)  # the same order whether or not the run resumed
        trained.train()
        started = time.time() - state["seconds"]
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", disable=rank != 0, leave=False)
        for step, (x, gender, race, age) in enumerate(bar):
            if step < state["step"]:  # done before the interruption: load (as the run did), skip
                if step == state["step"] - 1:
                    restore_rng()  # as it was right after this batch was drawn
                continue
            outputs = trained(x)
            loss, parts = multitask_loss(outputs, gender, race, age.float(), config, class_weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            for head, value in parts.items():
                state["sums"][head] = state["sums"].get(head, 0.0) + value
            state["step"] = step + 1
            steps_left -= 1
            bar.set_postfix(loss=f"{loss.item():.3f}")
            if steps_left == 0 or (config.checkpoint_every and state["step"] % config.checkpoint_every == 0):
                state["seconds"] = time.time() - started
                save_last()
            if steps_left == 0:
                break
        if steps_left == 0 and state["step"] < steps_per_epoch:
            finished = False
            log(f"session budget reached at epoch {epoch + 1}, step {state['step']}: --resume continues")
            break
        summary = head_summary(targets.gender[val_rows], targets.race[val_rows], targets.age[val_rows],
                               averaged_probs(view_logits(net, val_set)))
        score = validation_score(summary)
        improved = score < state["best_score"]
        row = {"epoch": epoch + 1, "seconds": round(time.time() - started, 1),
               **{f"train_loss_{h}": round(v / steps_per_epoch, 4) for h, v in state["sums"].items()},
               "val_gender_accuracy": summary["gender"]["accuracy"], "val_race_accuracy": summary["race"]["accuracy"],
               "val_age_mae": summary["age"]["mae"], "val_age_coverage": summary["age"]["interval_coverage"],
               "val_score": score}
        state.update(epoch=epoch + 1, step=0, sums={}, seconds=0.0, bad_epochs=0 if improved else state["bad_epochs"] + 1)
        if improved:
            state.update(best_score=score, best_epoch=epoch + 1, best_summary=summary)
        if rank == 0:
            log(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
            _append_metrics(out, row)
            if improved:
                torch.save(net.state_dict(), out / "best.pt")
        save_last()
        if state["bad_epochs"] >= config.patience:
            if rank == 0:
                log(f"early stop: no improvement for {config.patience} epochs (best epoch {state['best_epoch']})")
            break
        if steps_left == 0:
            finished = state["epoch"] == config.epochs
            break
    if world > 1:
        dist.barrier()
    best = out / "best.pt"
    if best.exists():
        net.load_state_dict(torch.load(best, map_location="cpu", weights_only=True))
    return {"best_epoch": state["best_epoch"], "validation": state["best_summary"], "finished": finished}


def _append_metrics(out: Path, row: dict) -> None:
    path = out / "metrics.csv"
    history = json.loads((out / "history.json").read_text()) if (out / "history.json").exists() else []
    history = [h for h in history if h["epoch"] < row["epoch"]] + [row]
    (out / "history.json").write_text(json.dumps(history, indent=2))
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(row))
        writer.writeheader()
        for entry in history:
            writer.writerow({k: entry.get(k) for k in row})


def fit_temperatures(logits: dict[str, torch.Tensor], targets: Targets) -> torch.Tensor:
    """Per-head temperatures on validation logits: NLL for gender and ethnicity, and for age the
    temperature whose 80% interval covers 80% of faces (what the interval promises)."""
    from facekit.evaluation.metrics import age_point_and_interval, interval_coverage

    temps = []
    grid = torch.linspace(0.5, 3.0, 101)
    for head, target in (("gender", targets.gender), ("race", targets.race)):
        known = torch.from_numpy(target >= 0)
        y, z = torch.from_numpy(target)[known], logits[head][known]
        losses = [F.nll_loss(torch.log(torch.softmax(z / t, 2).mean(1) + 1e-12), y) for t in grid]
        temps.append(float(grid[int(torch.stack(losses).argmin())]))
    low, high = 0.3, 5.0
    for _ in range(20):  # coverage grows with temperature: bisect to 80%
        middle = (low + high) / 2
        summary = age_point_and_interval(torch.softmax(logits["age"] / middle, 2).mean(1).numpy())
        coverage = interval_coverage(targets.age, summary[:, 1], summary[:, 2])
        low, high = (middle, high) if coverage < 0.8 else (low, middle)
    temps.append((low + high) / 2)
    return torch.tensor(temps)


LICENCE_NOTE = ("Trained on UTKFace, available for non-commercial research purposes only; the copyright "
                "of the images belongs to their original owners. Use of this model inherits that restriction.")


def data_sha256(path: Path) -> str:
    """sha256 of a data file, or of a folder's relative file names and contents in sorted order."""
    import hashlib

    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file != path:
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def utkface_targets(frame, files: list[str]) -> Targets:
    """Label arrays in the order of ``files`` (the feature cache's order)."""
    indexed = frame.set_index("file").loc[files]
    return Targets(np.array(labels.encode(indexed["gender"], labels.GENDERS), np.int64),
                   np.array(labels.encode(indexed["race"], labels.RACES), np.int64),
                   indexed["age"].to_numpy(np.float64))


def run(config: TrainConfig, resume: bool = False, log: Callable[[str], None] = print) -> Path:
    """The one command behind a recipe: feature cache, training, temperatures, checkpoint."""
    from facekit.data import SPLIT_PATH, iter_utkface_images, load_split, read_utkface
    from facekit.training.features import CACHE_AT, build_cache
    from facekit.models.model import ModelConfig, save_checkpoint

    rank, world = _distributed()
    archive = Path(config.data)
    table = load_split(read_utkface(archive), config.split or SPLIT_PATH)
    frame = table.frame
    files = sorted(frame["file"])
    if config.crop_size != CropSettings().size and not config.images:
        raise ValueError(f"crop_size {config.crop_size} needs images: true (the feature cache is cut at "
                         f"{CropSettings().size} px)")
    model_config = ModelConfig(trainable_from=config.trainable_from, hidden=config.hidden, dropout=config.dropout,
                               crop=CropSettings(size=config.crop_size))
    timings: dict[str, float] = {}
    started = time.time()
    cache = build_cache(archive, files, iter_utkface_images(archive), ModelConfig(trainable_from=CACHE_AT),
                        log=log if rank == 0 else (lambda _: None))
    timings["feature_cache_seconds"] = round(time.time() - started, 1)
    index = cache.index
    cached_files = index["file"].tolist()
    targets = utkface_targets(frame, cached_files)
    split = frame.set_index("file").loc[cached_files, "split"].to_numpy()
    train_rows, val_rows = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    if config.images:
        from facekit.training.augment import Chips

        if not config.trainable_from:
            raise ValueError("images: true needs trainable_from (heads alone train faster on cached pooled features)")
        inputs, input_block = Chips.from_index(index, dict(zip(frame["file"], frame["image"])), model_config.crop), ""
    else:
        inputs = cache.activations() if config.trainable_from else cache.pooled()
        input_block = CACHE_AT
    model = FaceModel(model_config)
    if config.init_from:
        from facekit.models.model import load_checkpoint

        start = load_checkpoint(Path(config.init_from).expanduser(), backbone=model.backbone).model
        model.heads.load_state_dict(start.heads.state_dict())
        log(f"initialised from {config.init_from} (heads and any fine-tuned blocks it holds)")
    started = time.time()
    result = fit(model, inputs, input_block, targets, train_rows, val_rows, config, resume=resume, log=log)
    timings["training_seconds"] = round(time.time() - started, 1)
    if not result["finished"]:
        return Path(config.out).expanduser() / "last.pt"
    out = Path(config.out).expanduser() / "model.safetensors"
    if rank == 0:
        val_set = face_dataset(inputs, val_rows, targets, train=False)
        logits = view_logits(TrainableNet(model, input_block), val_set)
        model.temperature.copy_(fit_temperatures(logits, val_set.targets))
        validation = head_summary(val_set.targets.gender, val_set.targets.race, val_set.targets.age,
                                  averaged_probs(logits, model.temperature))
        save_checkpoint(model, out, {
            "training": {"config": asdict(config), "best_epoch": result["best_epoch"], "world_size": world,
                         "timings": timings},
            "data": {"dataset": "UTKFace", "archive": archive.name, "sha256": data_sha256(archive),
                     "faces": len(files), "train": int(len(train_rows)), "val": int(len(val_rows)),
                     "detector_found": int(index["detected"].sum())},
            "metrics": {"validation": validation},
            "licence": LICENCE_NOTE,
        }, half_backbone=config.fp16_backbone)
        log(f"saved {out}: validation {json.dumps(validation)}")
    if world > 1:
        dist.barrier()
    return out
