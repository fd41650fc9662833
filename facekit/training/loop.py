"""The training loop: ``train_one_epoch``, ``evaluate`` and ``fit`` (epochs, resume, early stop,
history), single process or under ``torchrun`` (DistributedDataParallel).

Inputs are pooled 1792-d features (heads only), the cached activations entering
``CACHE_AT`` (fine-tuning the upper backbone blocks with their batch-norm statistics
frozen), or, with ``images: true``, faces cropped and augmented anew each epoch
(``facekit.training.augment``) and run through the frozen lower blocks without gradients.
From the cache one view per face is drawn at random each epoch (original or flipped);
validation averages both, as the predictor does. Faces of several datasets are drawn with
per-dataset weights, with replacement, in an order fixed by the seed and the epoch.
"""
from __future__ import annotations

import csv
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from facekit.files import atomic_write
from facekit.models.architectures import pretrained
from facekit.models.model import FaceModel
from facekit.training import checkpoint
from facekit.training.history import CURVES_FILE, HISTORY_FILE
from facekit.training.recipe import TrainConfig
from facekit.training.targets import Targets, balanced_weights, multitask_loss
from facekit.training.validation import DatasetScores, dataset_scores, validation_score

HEADS = FaceModel.HEADS


class CachedFaces(Dataset):
    """Faces from one or more (faces, views, ...) arrays, addressed by one row number across them;
    a random view when training, both otherwise."""

    def __init__(self, inputs: np.ndarray | Sequence[np.ndarray], rows: np.ndarray, targets: Targets,
                 train: bool) -> None:
        self.sources = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
        self.starts = np.cumsum([0] + [len(s) for s in self.sources])
        self.rows, self.targets, self.train = rows, targets.subset(rows), train

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int):
        row = int(self.rows[k])
        source = int(np.searchsorted(self.starts, row, side="right") - 1)
        views = self.sources[source][row - self.starts[source]]
        x = views[random.randrange(len(views))] if self.train else views
        return (torch.from_numpy(np.array(x, np.float32)), *self.targets.item(k))


def face_dataset(inputs, rows: np.ndarray, targets: Targets, train: bool, augmentation: str = "standard") -> Dataset:
    """The dataset over ``inputs``: cache arrays (``CachedFaces``) or ``augment.Chips`` (whose
    training views follow ``augmentation``, a ``presets.AUGMENTATIONS`` name)."""
    from facekit.training.augment import ChipFaces, Chips

    if isinstance(inputs, Chips):
        return ChipFaces(inputs, rows, targets, train, augmentation)
    return CachedFaces(inputs, rows, targets, train)


class WeightedDraws(Sampler[int]):
    """``len(weights)`` draws with replacement, each index with probability proportional to its
    weight, in an order fixed by ``seed`` and the epoch; under DDP each rank takes every
    ``world``-th draw, so the ranks see disjoint parts of the same order."""

    def __init__(self, weights: np.ndarray, seed: int, world: int = 1, rank: int = 0) -> None:
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.seed, self.world, self.rank, self.epoch = seed, world, rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return math.ceil(len(self.weights) / self.world)

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        draws = torch.multinomial(self.weights, len(self.weights), replacement=True, generator=generator)
        return iter(draws[self.rank::self.world].tolist())


class TrainableNet(nn.Module):
    """The part of ``FaceModel`` that training runs: the blocks from ``input_block`` ("" for
    standardized images) to ``trainable_from``, frozen, then the trainable blocks, the pooling and
    the heads; it returns the heads' raw outputs (what the losses read)."""

    def __init__(self, model: FaceModel, input_block: str) -> None:
        super().__init__()
        self.model = model
        start = model.config.trainable_from
        self.frozen = nn.ModuleList(model.block_modules(input_block or None, start) if start else [])
        self.trainable = nn.ModuleList(model.block_modules(start, None) if start else [])
        # Learnt weights keep their batch-norm statistics; a network trained from scratch learns its own.
        self.keep_statistics = pretrained(model.config.weights)
        for p in model.backbone.parameters():
            p.requires_grad_(False)
        for p in self.trainable.parameters():
            p.requires_grad_(True)
        # oneDNN's convolutions run much faster in channels-last layout on CPU (the stem too).
        self.frozen.to(memory_format=torch.channels_last)
        self.trainable.to(memory_format=torch.channels_last)

    def train(self, mode: bool = True) -> "TrainableNet":
        super().train(mode)
        self.frozen.eval()
        if self.keep_statistics:
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
            x = self.model.pool(x)
        return self.model.heads(x)

    def logits(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The model's common outputs (``MultiTaskHeads.logits``), as the predictor reads them."""
        return self.model.heads.logits(self(x))


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def make_optimizer(model: FaceModel, net: TrainableNet, config: TrainConfig) -> torch.optim.Optimizer:
    groups = [{"params": list(model.heads.parameters()), "lr": config.lr}]
    if len(net.trainable):
        groups.append({"params": list(net.trainable.parameters()), "lr": config.backbone_lr})
    return {
        "adamw": lambda: torch.optim.AdamW(groups, weight_decay=config.weight_decay),
        "adam": lambda: torch.optim.Adam(groups, weight_decay=config.weight_decay),
        "sgd": lambda: torch.optim.SGD(groups, momentum=0.9, nesterov=True, weight_decay=config.weight_decay),
    }[config.optimizer]()


def view_logits(net: TrainableNet, dataset: Dataset, batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Logits per head for every face and view: (faces, views, classes)."""
    net.eval()
    out: dict[str, list[torch.Tensor]] = {head: [] for head in HEADS}
    with torch.inference_mode():
        for x, *_ in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            logits = net.logits(x.flatten(0, 1))
            for head in HEADS:
                out[head].append(logits[head].unflatten(0, (-1, x.shape[1])))
    return {head: torch.cat(parts) for head, parts in out.items()}


def averaged_probs(logits: dict[str, torch.Tensor], temperature: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """Softmax per view (after each head's temperature), averaged over views, as the predictor does."""
    temps = temperature.tolist() if temperature is not None else [1.0] * len(HEADS)
    return {head: torch.softmax(logits[head] / t, 2).mean(1).numpy() for head, t in zip(HEADS, temps)}


def evaluate(net: TrainableNet, dataset: Dataset, names: list[str],
             temperature: torch.Tensor | None = None) -> list[DatasetScores]:
    """Validation numbers per dataset for ``dataset`` (built with ``train=False``)."""
    return dataset_scores(dataset.targets, averaged_probs(view_logits(net, dataset), temperature), names,
                          net.model.config.age_groups)


@dataclass
class RunState:
    """Where a run is: saved in ``last.pt`` so ``--resume`` continues exactly there."""

    epoch: int = 0
    step: int = 0  # steps done in the current epoch
    sums: dict = field(default_factory=dict)  # loss sums per head in the current epoch
    seconds: float = 0.0  # training time spent in the current epoch before an interruption
    best_score: float = float("inf")
    best_epoch: int = -1
    bad_epochs: int = 0
    best_scores: list = field(default_factory=list)  # DatasetScores.to_dict() of the best epoch


def train_one_epoch(trained: nn.Module, loader: DataLoader, optimizer, scheduler, state: RunState,
                    config: TrainConfig, class_weights: dict, save: Callable[[], None],
                    steps_left: int, rng: dict | None) -> int:
    """One epoch from ``state.step`` on; returns the steps left in this invocation's budget (-1: none).

    Batches done before an interruption are loaded again (so the data order matches an
    uninterrupted run) and skipped; the RNG is restored as it was after the last one.
    """
    from tqdm import tqdm

    started = time.time() - state.seconds
    bar = tqdm(loader, desc=f"epoch {state.epoch + 1}/{config.epochs}", disable=not _is_main(), leave=False)
    for step, (x, gender, race, age, age_range, age_class) in enumerate(bar):
        if config.stop_after_steps and step >= config.stop_after_steps and state.epoch == config.epochs - 1:
            break  # the last epoch cut short on purpose: the caller validates and saves
        if step < state.step:
            if step == state.step - 1 and rng is not None:
                checkpoint.restore_rng(rng)
            continue
        loss, parts = multitask_loss(trained(x), gender, race, age.float(), age_range.float(), age_class, config,
                                     class_weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        for head, value in parts.items():
            state.sums[head] = state.sums.get(head, 0.0) + value
        state.step = step + 1
        steps_left -= 1
        bar.set_postfix(loss=f"{loss.item():.3f}")
        if steps_left == 0 or (config.checkpoint_every and state.step % config.checkpoint_every == 0):
            state.seconds = time.time() - started
            save()
        if steps_left == 0:
            break
    state.seconds = time.time() - started
    return steps_left


def _is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def distributed() -> tuple[int, int]:
    """(rank, world size); joins the process group when started by ``torchrun``."""
    if "RANK" in os.environ and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass
class FitResult:
    best_epoch: int
    validation: list  # DatasetScores.to_dict() per dataset at the best epoch
    finished: bool  # False when the session's step budget ran out: --resume goes on


def fit(model: FaceModel, inputs, input_block: str, targets: Targets, train_rows: np.ndarray, val_rows: np.ndarray,
        config: TrainConfig, resume: bool = False, log: Callable[[str], None] = print,
        names: list[str] | None = None, draw_weights: np.ndarray | None = None) -> FitResult:
    """Train ``model`` in place, keeping the best epoch's weights; rank 0 writes ``config.out``.

    ``inputs``: cache arrays of activations entering ``input_block`` (or pooled features), or
    ``augment.Chips`` with ``input_block`` "". ``names`` label ``targets.dataset``;
    ``draw_weights`` (one per training row) set how often each face is drawn. The epoch loop stays
    here, with the run state it shares (save, resume, budget, early stop), as in torchvision's
    reference ``main``; each step is in ``train_one_epoch`` and ``_end_epoch``.
    """
    rank, world = distributed()
    names = names or ["data"]
    out = Path(config.out).expanduser()
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / "config.json", lambda p: p.write_text(json.dumps(config.to_dict(), indent=2)))
    seed_everything(config.seed + rank)
    if config.limit:
        train_rows = train_rows[: config.limit]
        draw_weights = None if draw_weights is None else draw_weights[: config.limit]
    net = TrainableNet(model, input_block)
    loader, sampler = _train_loader(inputs, train_rows, targets, config, draw_weights, world, rank)
    val_set = face_dataset(inputs, val_rows, targets, train=False)
    class_weights = {"gender": balanced_weights(targets.gender[train_rows], 2)} if config.class_balanced else {}
    optimizer = make_optimizer(model, net, config)
    steps_per_epoch = len(loader)
    scheduler = _schedule(optimizer, config, steps_per_epoch)
    trained = nn.parallel.DistributedDataParallel(net) if world > 1 else net
    state, rng = _resume(out, net, optimizer, scheduler, log) if resume else (RunState(), None)

    def save() -> None:
        if rank == 0:
            checkpoint.save_last(out, {"net": net.state_dict(), "optimizer": optimizer.state_dict(),
                                       "scheduler": scheduler.state_dict(), "state": state.__dict__,
                                       "config": config.to_dict(), "rng": checkpoint.rng_state()})

    if rng is not None and state.step == 0:
        checkpoint.restore_rng(rng)
    steps_left = config.session_steps or -1
    finished = True
    for epoch in range(state.epoch, config.epochs):
        sampler.set_epoch(epoch)  # the same order whether or not the run resumed
        trained.train()
        steps_left = train_one_epoch(trained, loader, optimizer, scheduler, state, config, class_weights, save,
                                     steps_left, rng)
        cut_short = bool(config.stop_after_steps) and state.step >= config.stop_after_steps
        if steps_left == 0 and state.step < steps_per_epoch and not cut_short:
            finished = False
            log(f"session budget reached at epoch {epoch + 1}, step {state.step}: --resume continues")
            break
        _end_epoch(net, val_set, names, state, max(state.step, 1), out, rank, log)
        save()
        if state.bad_epochs >= config.patience:
            log(f"early stop: no improvement for {config.patience} epochs (best epoch {state.best_epoch})")
            break
        if steps_left == 0:
            finished = state.epoch == config.epochs
            break
    if world > 1:
        dist.barrier()
    best = out / checkpoint.BEST
    if best.exists():
        net.load_state_dict(torch.load(best, map_location="cpu", weights_only=True))
    return FitResult(state.best_epoch, state.best_scores, finished)


def _train_loader(inputs, train_rows: np.ndarray, targets: Targets, config: TrainConfig,
                  draw_weights: np.ndarray | None, world: int, rank: int) -> tuple[DataLoader, WeightedDraws]:
    """The training batches: faces drawn by weight (each rank its share of every epoch's draws)."""
    train_set = face_dataset(inputs, train_rows, targets, train=True, augmentation=config.augmentation)
    weights = np.ones(len(train_rows)) if draw_weights is None else draw_weights
    sampler = WeightedDraws(weights, config.seed, world, rank)
    loader = DataLoader(train_set, batch_size=config.batch_size, sampler=sampler, num_workers=config.workers,
                        drop_last=len(train_set) > config.batch_size)
    return loader, sampler


def _schedule(optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int):
    """Linear warm-up, then cosine to the last step; a last epoch cut short (``stop_after_steps``) ends the
    cosine there, so its last steps anneal."""
    warmup = int(config.warmup_epochs * steps_per_epoch)
    total = steps_per_epoch * (config.epochs - 1) + (config.stop_after_steps or steps_per_epoch)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, warmup, total))


def _resume(out: Path, net: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
            log: Callable[[str], None]) -> tuple[RunState, dict | None]:
    """Load the run's last checkpoint into the net, optimizer and schedule; its state and saved random state."""
    saved = checkpoint.load_last(out, log)
    if saved is None:
        return RunState(), None
    net.load_state_dict(saved["net"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    state = RunState(**saved["state"])
    log(f"resumed from {out} at epoch {state.epoch + 1}, step {state.step}")
    return state, saved["rng"]


def _end_epoch(net: TrainableNet, val_set: Dataset, names: list[str], state: RunState, steps: int, out: Path,
               rank: int, log: Callable[[str], None]) -> None:
    """Validate, log and record the epoch in the history; keep its weights as ``best.pt`` if it is the best."""
    scores = evaluate(net, val_set, names)
    score = validation_score(scores)
    improved = score < state.best_score
    row = {"epoch": state.epoch + 1, "seconds": round(state.seconds, 1),
           **{f"train_loss_{h}": round(v / steps, 4) for h, v in state.sums.items()}}
    for s in scores:
        prefix = "val" if len(scores) == 1 else f"val_{s.dataset}"
        row.update({f"{prefix}_{k}": v for k, v in s.to_dict().items() if k not in ("dataset", "faces") and v is not None})
    row["val_score"] = score
    state.epoch, state.step, state.sums, state.seconds = state.epoch + 1, 0, {}, 0.0
    state.bad_epochs = 0 if improved else state.bad_epochs + 1
    if improved:
        state.best_score, state.best_epoch, state.best_scores = score, state.epoch, [s.to_dict() for s in scores]
    if rank == 0:
        log(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        append_history(out, row)
        if improved:
            checkpoint.save_tensors(out / checkpoint.BEST, net.state_dict())


def append_history(out: Path, row: dict) -> None:
    """The epoch's row into ``history.json`` and ``metrics.csv`` (a resumed epoch replaces its row)."""
    path = out / HISTORY_FILE
    history = json.loads(path.read_text()) if path.exists() else []
    history = [h for h in history if h["epoch"] < row["epoch"]] + [row]
    atomic_write(path, lambda p: p.write_text(json.dumps(history, indent=2)))
    columns = list(dict.fromkeys(k for h in history for k in h))

    def write_csv(target: Path) -> None:
        with target.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows({k: h.get(k) for k in columns} for h in history)

    atomic_write(out / CURVES_FILE, write_csv)
