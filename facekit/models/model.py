"""The multi-task model: a backbone and three heads, and its one checkpoint format.

The backbone is any of ``facekit.models.architectures`` (default: Inception-ResNet-v1 with
face weights). Heads: gender (two softmax classes, or one sigmoid output trained with binary
cross-entropy), ethnicity (FairFace's 7, from which UTKFace's 5 are sums; or UTKFace's 5), and
age as a distribution over years 0..AGE_MAX, a regression of the years, or ordered age groups.
Whatever the heads, ``forward`` gives the same three outputs (two gender logits, the
ethnicity logits, logits over years), so prediction, calibration, Grad-CAM and export never
depend on the training choices; ``raw`` gives what the losses read. Each head has a
temperature fitted on validation data so probabilities are calibrated. A checkpoint is a
safetensors file with the parameters training changed plus a JSON sidecar (config, label
schema, preprocessing, temperatures, metrics, data hash, licence); a frozen Inception-ResNet-v1
is rebuilt from the cached face weights, every other backbone is stored whole.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from facekit import labels
from facekit.models.architectures import (
    ARCHITECTURES,
    DEFAULT_BACKBONE,
    NO_WEIGHTS,
    GlobalPool,
    InputAdapter,
    architecture,
    block_paths,
    build_backbone,
)
from facekit.models.backbones import FACENET_PYTORCH_WEIGHTS, MS_CELEB
from facekit.vision.align import CropSettings

FEATURE_SIZE = ARCHITECTURES[DEFAULT_BACKBONE].feature_size  # what the feature cache stores
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "assets" / "model" / "facekit-multi.safetensors"
GENDER_HEADS = ("softmax", "sigmoid")
AGE_HEADS = ("distribution", "regression", "groups")
# A regression head's output is in units of AGE_SPREAD years around AGE_CENTRE, so an untrained
# head starts at adult ages; its answer becomes a distribution over years, a Gaussian whose
# width the age temperature calibrates (width = AGE_REGRESSION_SIGMA x sqrt(temperature)).
AGE_CENTRE, AGE_SPREAD, AGE_REGRESSION_SIGMA = 35.0, 20.0, 8.0


def check_age_groups(groups: Sequence[Sequence]) -> tuple[tuple[str, int, int], ...]:
    """Ordered (label, first year, last year) groups that cover 0..AGE_MAX without gaps or overlaps."""
    groups = tuple((str(label), int(low), min(int(high), labels.AGE_MAX)) for label, low, high in groups)
    if len(groups) < 2:
        raise ValueError("an age-group head needs at least two groups, e.g. [[YOUNG, 0, 29], [OLD, 30, 130]]")
    expected = 0
    for label, low, high in groups:
        if low != expected or high < low:
            raise ValueError(f"age groups must run on from year 0 without gaps or overlaps: {label} starts at "
                             f"{low}, expected {expected}")
        expected = high + 1
    if expected <= labels.AGE_MAX:
        raise ValueError(f"the last age group must reach {labels.AGE_MAX} years (it ends at {expected - 1})")
    return groups


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network around a checkpoint's tensors."""

    backbone: str = DEFAULT_BACKBONE  # a facekit.models.architectures name
    weights: str = MS_CELEB  # what the backbone started from: weights name, file, or "none"
    trainable_from: str = ""  # first backbone block that training changed; "" = backbone frozen
    hidden: int = 512
    dropout: float = 0.3
    crop: CropSettings = field(default_factory=CropSettings)
    ethnicities: int = len(labels.RACE7)  # classes of the ethnicity head: 7, or UTKFace's 5
    gender_head: str = "softmax"  # or "sigmoid": one output, binary cross-entropy
    age_head: str = "distribution"  # or "regression" (years, MSE) or "groups" (age_groups, cross-entropy)
    age_groups: tuple = ()  # (label, first year, last year) per group, youngest first, for age_head "groups"

    def __post_init__(self) -> None:
        architecture(self.backbone)
        if self.gender_head not in GENDER_HEADS:
            raise ValueError(f"gender_head is one of {', '.join(GENDER_HEADS)}, not {self.gender_head!r}")
        if self.age_head not in AGE_HEADS:
            raise ValueError(f"age_head is one of {', '.join(AGE_HEADS)}, not {self.age_head!r}")
        if self.age_head == "groups":
            object.__setattr__(self, "age_groups", check_age_groups(self.age_groups))
        names = [name for name, _ in self.blocks()]
        if self.trainable_from and self.trainable_from not in names:
            raise ValueError(f"trainable_from {self.trainable_from!r} is not a block of {self.backbone}: "
                             f"{', '.join(names)}")

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        data = dict(data)
        data["crop"] = CropSettings(**data.get("crop", {}))
        data.setdefault("ethnicities", len(labels.RACES))  # written before the 7-class head existed
        if data.get("backbone") not in ARCHITECTURES:  # written when `backbone` named the face weights
            data["weights"] = data.pop("backbone", MS_CELEB)
        data["age_groups"] = tuple(tuple(group) for group in data.get("age_groups", ()))
        return cls(**data)

    @property
    def race_labels(self) -> tuple[str, ...]:
        return labels.race_classes(self.ethnicities)

    @property
    def channels(self) -> int:
        return architecture(self.backbone).channels

    @property
    def age_group_labels(self) -> tuple[str, ...]:
        return tuple(label for label, _, _ in self.age_groups)

    @property
    def stores_backbone(self) -> bool:
        """Whether a checkpoint holds the whole backbone: any but the default backbone on its face weights,
        which every install converts (facekit.models.backbones), so checkpoints need no download to load."""
        return not (self.backbone == DEFAULT_BACKBONE and self.weights in (MS_CELEB, *FACENET_PYTORCH_WEIGHTS))

    def blocks(self) -> list[tuple[str, tuple[str, ...]]]:
        """The backbone's blocks (name, module paths) in forward order."""
        return block_paths(self.backbone)

    def to_dict(self) -> dict:
        return asdict(self)


def standardize(batch: torch.Tensor) -> torch.Tensor:
    """Per-image standardization ('prewhitening'): every backbone's input, the one the Keras FaceNet was trained on."""
    flat = batch.flatten(1)
    mean = flat.mean(1)
    std = flat.std(1).clamp_min(1.0 / np.sqrt(flat.shape[1]))
    return (batch - mean[:, None, None, None]) / std[:, None, None, None]


def to_batch(crops: Sequence[Image.Image], flip: bool = False) -> torch.Tensor:
    """Crops (PIL, already size x size) as the standardized NCHW float tensor the backbone takes."""
    array = np.stack([np.asarray(crop.convert("RGB"), dtype=np.float32) for crop in crops])
    tensor = torch.from_numpy(array).permute(0, 3, 1, 2)
    if flip:
        tensor = tensor.flip(3)
    return standardize(tensor)


class MultiTaskHeads(nn.Module):
    """One shared hidden layer (BN + dropout), then gender, ethnicity and age outputs.

    ``forward`` gives the raw outputs the losses read; ``logits`` turns them into the model's
    common outputs: two gender logits, ethnicity logits, and logits over the years 0..AGE_MAX.
    """

    def __init__(self, config: "ModelConfig", in_features: int) -> None:
        super().__init__()
        self.config = config
        hidden = config.hidden
        self.shared = nn.Sequential(
            nn.Dropout(config.dropout / 2),
            nn.Linear(in_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout),
        )
        self.gender = nn.Linear(hidden, 1 if config.gender_head == "sigmoid" else len(labels.GENDERS))
        self.race = nn.Linear(hidden, config.ethnicities)
        age_outputs = {"distribution": labels.AGE_CLASSES, "regression": 1, "groups": len(config.age_groups)}
        self.age = nn.Linear(hidden, age_outputs[config.age_head])
        years = torch.arange(labels.AGE_CLASSES, dtype=torch.float32)
        self.register_buffer("years", years, persistent=False)
        group_of_year = torch.zeros(labels.AGE_CLASSES, dtype=torch.long)
        log_width = torch.zeros(labels.AGE_CLASSES)
        for index, (_, low, high) in enumerate(config.age_groups):
            group_of_year[low:high + 1] = index
            log_width[low:high + 1] = math.log(high - low + 1)
        self.register_buffer("group_of_year", group_of_year, persistent=False)
        self.register_buffer("log_group_width", log_width, persistent=False)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = self.shared(features)
        return {"gender": self.gender(hidden), "race": self.race(hidden), "age": self.age(hidden)}

    def expected_age(self, raw_age: torch.Tensor) -> torch.Tensor:
        """A regression head's answer in years."""
        return AGE_CENTRE + AGE_SPREAD * raw_age[:, 0]

    def logits(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The common outputs. A sigmoid gender output z becomes the logits (0, z), whose softmax is
        (1 - sigmoid(z), sigmoid(z)); a regression becomes a Gaussian over years around its answer; a
        group's probability is spread evenly over its years."""
        gender, age = raw["gender"], raw["age"]
        if self.config.gender_head == "sigmoid":
            gender = torch.cat([torch.zeros_like(gender), gender], 1)
        if self.config.age_head == "regression":
            distance = (self.years[None] - self.expected_age(age)[:, None]) / AGE_REGRESSION_SIGMA
            age = -0.5 * distance ** 2
        elif self.config.age_head == "groups":
            age = age[:, self.group_of_year] - self.log_group_width[None]
        return {"gender": gender, "race": raw["race"], "age": age}


class FaceModel(nn.Module):
    """Backbone + heads. ``lower`` runs the frozen part, ``upper`` the rest up to pooled features."""

    HEADS = ("gender", "race", "age")

    def __init__(self, config: ModelConfig = ModelConfig(), backbone: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone if backbone is not None else build_backbone(config.backbone, config.weights)
        self.adapter = InputAdapter(config.channels)
        self.pool = GlobalPool(architecture(config.backbone).pool_relu)
        self.heads = MultiTaskHeads(config, architecture(config.backbone).feature_size)
        # Calibration temperatures, one per head, fitted after training (1 = uncalibrated).
        self.register_buffer("temperature", torch.ones(len(self.HEADS)))

    def block_modules(self, start: str | None, stop: str | None) -> list[nn.Module]:
        """The backbone's blocks from ``start`` (None: the input) up to ``stop`` (None: the last), as modules."""
        named = [("input", (self.adapter,))] + [
            (name, tuple(self.backbone.get_submodule(path) for path in paths)) for name, paths in self.config.blocks()]
        names = [name for name, _ in named]
        first = names.index(start) if start else 0
        last = names.index(stop) if stop else len(names)
        return [modules[0] if len(modules) == 1 else nn.Sequential(*modules) for _, modules in named[first:last]]

    def cam_layer(self) -> nn.Module:
        """The module whose output Grad-CAM explains: ``Architecture.cam_block``'s last layer, or the last
        member of that layer where it is a sequence, so the backward pass stops as early as it can."""
        paths = dict(self.config.blocks())[architecture(self.config.backbone).cam_block]
        layer = self.backbone.get_submodule(paths[-1])
        return layer[-1] if isinstance(layer, nn.Sequential) else layer

    def lower(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen part: standardized images -> activations entering ``trainable_from``."""
        for block in self.block_modules(None, self.config.trainable_from or None):
            images = block(images)
        return images

    def upper(self, activations: torch.Tensor) -> torch.Tensor:
        """Trainable part of the backbone: activations -> pooled features."""
        if self.config.trainable_from:
            for block in self.block_modules(self.config.trainable_from, None):
                activations = block(activations)
        return self.pool(activations)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.upper(self.lower(images))

    def raw(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """The heads' own outputs (what the training losses read)."""
        return self.heads(self.features(images))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.heads.logits(self.raw(images))

    def calibrated(self, logits: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Logits divided by each head's temperature."""
        return {head: logits[head] / self.temperature[i] for i, head in enumerate(self.HEADS)}

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The tensors a checkpoint stores: heads, temperatures and the backbone's fine-tuned blocks, or the
        whole backbone where ``ModelConfig.stores_backbone`` says so."""
        prefixes = ["heads.", "temperature"]
        if self.config.stores_backbone:
            prefixes.append("backbone.")
        elif self.config.trainable_from:
            names = [name for name, _ in self.config.blocks()]
            for _, paths in self.config.blocks()[names.index(self.config.trainable_from):]:
                prefixes += [f"backbone.{path}." for path in paths]
        return {k: v.detach().contiguous() for k, v in self.state_dict().items() if k.startswith(tuple(prefixes))}


@dataclass
class Checkpoint:
    """A loaded model and the metadata of its sidecar."""

    model: FaceModel
    metadata: dict


def sidecar_path(weights: Path) -> Path:
    return Path(weights).with_suffix(".json")


def save_checkpoint(model: FaceModel, path: Path, metadata: dict, half_backbone: bool = False) -> None:
    """Write ``path`` (safetensors) and its JSON sidecar; metadata gains config and label schema.

    ``half_backbone`` stores fine-tuned backbone tensors in float16 (half the size in the
    repository); loading casts them back to float32.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sidecar = {
        "format": "facekit-checkpoint/1",
        "config": model.config.to_dict(),
        "labels": {"gender": list(labels.GENDERS), "race": list(model.config.race_labels), "age_max": labels.AGE_MAX,
                   **({"age_groups": [list(g) for g in model.config.age_groups]} if model.config.age_groups else {})},
        "preprocessing": {"crop": model.config.crop.to_dict(), "channels": model.config.channels,
                          "normalization": "per-image standardization"},
        "temperature": dict(zip(FaceModel.HEADS, model.temperature.tolist())),
        **metadata,
    }
    tensors = model.trainable_state()
    if half_backbone:
        tensors = {k: v.half() if k.startswith("backbone.") and v.is_floating_point() else v for k, v in tensors.items()}
    save_file(tensors, str(path))
    sidecar_path(path).write_text(json.dumps(sidecar, indent=2, default=str))


def load_checkpoint(path: Path | str | None = None, backbone: nn.Module | None = None) -> Checkpoint:
    """The one loader: rebuild the model from the sidecar's config and overlay the tensors."""
    path = Path(path) if path else DEFAULT_MODEL
    if not path.exists() or not sidecar_path(path).exists():
        raise FileNotFoundError(f"no facekit checkpoint at {path} (need the .safetensors file and its .json sidecar)")
    metadata = json.loads(sidecar_path(path).read_text())
    schema = metadata.get("labels", {})
    config = ModelConfig.from_dict(metadata["config"])
    if schema.get("gender") != list(labels.GENDERS) or schema.get("race") != list(config.race_labels):
        raise ValueError(f"{path} was trained with another label schema: {schema}")
    whole = config.stores_backbone  # built untrained, then overwritten
    if backbone is None and whole:
        backbone = build_backbone(config.backbone, NO_WEIGHTS)
    model = FaceModel(config, backbone=backbone)
    tensors = load_file(str(path))
    unknown = set(tensors) - set(model.state_dict())
    missing = set(model.trainable_state()) - set(tensors) if whole else set()
    if unknown or missing:
        raise ValueError(f"{path} does not fit its own config: tensors it should not hold {sorted(unknown)[:3]}, "
                         f"tensors it lacks {sorted(missing)[:3]}")
    model.load_state_dict(tensors, strict=False)
    return Checkpoint(model=model.eval(), metadata=metadata)
