"""The multi-task model: a pretrained face backbone and three heads, and its one checkpoint format.

Heads: gender (2 classes), ethnicity (FairFace's 7, from which UTKFace's 5 are sums; older
checkpoints have a 5-class head), and age as a probability distribution
over years 0..AGE_MAX, from which the expected age and an 80% interval are read. Each
classification head has a temperature fitted on validation data so probabilities are
calibrated. A checkpoint is a safetensors file with the parameters training changed plus a
JSON sidecar (config, label schema, preprocessing, temperatures, metrics, data hash,
licence); the frozen backbone is rebuilt from the cached pretrained weights.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from facekit import labels
from facekit.vision.align import CropSettings
from facekit.models.backbones import MS_CELEB, load_backbone

FEATURE_SIZE = 1792  # InceptionResnetV1's pooled features
# Upper blocks of InceptionResnetV1 in forward order; fine-tuning starts at one of them.
UPPER_BLOCKS = ("repeat_1", "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8")
DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "assets" / "model" / "facekit-multi.safetensors"


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network around a checkpoint's tensors."""

    backbone: str = MS_CELEB
    trainable_from: str = ""  # first backbone block that training changed; "" = backbone frozen
    hidden: int = 512
    dropout: float = 0.3
    crop: CropSettings = field(default_factory=CropSettings)
    ethnicities: int = len(labels.RACE7)  # classes of the ethnicity head: 7, or UTKFace's 5

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        data = dict(data)
        data["crop"] = CropSettings(**data.get("crop", {}))
        data.setdefault("ethnicities", len(labels.RACES))  # written before the 7-class head existed
        return cls(**data)

    @property
    def race_labels(self) -> tuple[str, ...]:
        return labels.race_classes(self.ethnicities)

    def to_dict(self) -> dict:
        return asdict(self)


def standardize(batch: torch.Tensor) -> torch.Tensor:
    """Per-image standardization ('prewhitening'), the input the Keras FaceNet was trained on."""
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
    """One shared hidden layer (BN + dropout), then gender, ethnicity and age outputs."""

    def __init__(self, in_features: int = FEATURE_SIZE, hidden: int = 512, dropout: float = 0.3,
                 ethnicities: int = len(labels.RACE7)) -> None:
        super().__init__()
        self.shared = nn.Sequential(
            nn.Dropout(dropout / 2),
            nn.Linear(in_features, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
        )
        self.gender = nn.Linear(hidden, len(labels.GENDERS))
        self.race = nn.Linear(hidden, ethnicities)
        self.age = nn.Linear(hidden, labels.AGE_CLASSES)

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        hidden = self.shared(features)
        return {"gender": self.gender(hidden), "race": self.race(hidden), "age": self.age(hidden)}


class FaceModel(nn.Module):
    """Backbone + heads. ``lower`` runs the frozen part, ``upper`` the rest up to pooled features."""

    HEADS = ("gender", "race", "age")

    def __init__(self, config: ModelConfig = ModelConfig(), backbone: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone if backbone is not None else load_backbone(config.backbone)
        self.heads = MultiTaskHeads(FEATURE_SIZE, config.hidden, config.dropout, config.ethnicities)
        # Calibration temperatures, one per head, fitted after training (1 = uncalibrated).
        self.register_buffer("temperature", torch.ones(len(self.HEADS)))

    def _blocks(self, start: str | None, stop: str | None) -> Iterable[nn.Module]:
        b = self.backbone
        stem = [b.conv2d_1a, b.conv2d_2a, b.conv2d_2b, b.maxpool_3a, b.conv2d_3b, b.conv2d_4a, b.conv2d_4b]
        named = [("stem", nn.Sequential(*stem))] + [(name, getattr(b, name)) for name in UPPER_BLOCKS]
        names = [name for name, _ in named]
        first = names.index(start) if start else 0
        last = names.index(stop) if stop else len(names)
        return [module for _, module in named[first:last]]

    def lower(self, images: torch.Tensor) -> torch.Tensor:
        """Frozen part: standardized images -> activations entering ``trainable_from``."""
        for block in self._blocks(None, self.config.trainable_from or None):
            images = block(images)
        return images

    def upper(self, activations: torch.Tensor) -> torch.Tensor:
        """Trainable part of the backbone: activations -> pooled 1792-d features."""
        if self.config.trainable_from:
            for block in self._blocks(self.config.trainable_from, None):
                activations = block(activations)
        return self.backbone.avgpool_1a(activations).flatten(1)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.upper(self.lower(images))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.heads(self.features(images))

    def calibrated(self, logits: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Logits divided by each head's temperature."""
        return {head: logits[head] / self.temperature[i] for i, head in enumerate(self.HEADS)}

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The tensors a checkpoint stores: heads, temperatures and any fine-tuned blocks."""
        prefixes = ["heads.", "temperature"]
        if self.config.trainable_from:
            start = UPPER_BLOCKS.index(self.config.trainable_from)
            prefixes += [f"backbone.{name}." for name in UPPER_BLOCKS[start:]]
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
        "labels": {"gender": list(labels.GENDERS), "race": list(model.config.race_labels), "age_max": labels.AGE_MAX},
        "preprocessing": {"crop": model.config.crop.to_dict(), "normalization": "per-image standardization"},
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
    model = FaceModel(config, backbone=backbone)
    tensors = load_file(str(path))
    unknown = set(tensors) - set(model.state_dict())
    if unknown:
        raise ValueError(f"{path} holds tensors this model does not have: {sorted(unknown)[:5]}")
    model.load_state_dict(tensors, strict=False)
    return Checkpoint(model=model.eval(), metadata=metadata)
