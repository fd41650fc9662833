"""A training recipe: every option of a run as one dataclass, read from YAML, any field overridable.

A recipe names its data either as one path (``data``, the single-dataset recipes) or as a list
of datasets (``datasets``), each read by any facekit reader and drawn with its own weight.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from facekit._extras import require

require("train")  # before the imports: a missing extra is one line, not a traceback
import yaml

from facekit import labels
from facekit.models.architectures import DEFAULT_BACKBONE, architecture, block_paths
from facekit.models.model import ModelConfig
from facekit.vision.align import CropSettings


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of a run.

    ``weight`` scales how often each of its faces is drawn against the other datasets' faces
    (1 = in proportion to its size). ``split`` is a ``file,split`` CSV; empty means the committed
    split of a shipped dataset, or a seeded stratified split written into the run folder.
    """

    data: str
    weight: float = 1.0
    split: str = ""

    @classmethod
    def from_value(cls, value: "str | dict | DatasetSpec") -> "DatasetSpec":
        if isinstance(value, DatasetSpec):
            return value
        if isinstance(value, str):
            return cls(data=value)
        unknown = set(value) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"dataset entry {value}: unknown keys {sorted(unknown)}")
        return cls(**value)


@dataclass
class TrainConfig:
    """Every option of a run; a recipe YAML sets any of these fields."""

    data: str = ""  # one dataset (path for any reader); ignored when ``datasets`` is set
    datasets: list = field(default_factory=list)  # DatasetSpec entries: {data, weight, split}
    split: str = ""  # file,split CSV for ``data``; "" = its committed split
    out: str = "runs/facekit"
    backbone: str = DEFAULT_BACKBONE  # any of facekit.models.architectures; others than the default train from images
    weights: str = ""  # "" = the backbone's default; "none", a torchvision weights name, or a .pth/.safetensors file
    trainable_from: str = ""  # first block training changes; "" = heads only over cached features (default
    # backbone), or the whole network (any other backbone)
    ethnicities: int = len(labels.RACE7)  # classes of the ethnicity head (7, or UTKFace's 5)
    gender_head: str = "softmax"  # softmax: two classes, cross-entropy; sigmoid: one output, binary cross-entropy
    age_head: str = "distribution"  # distribution (over years: distribution loss), regression (years: MSE),
    # groups (age_groups: cross-entropy)
    age_groups: list = field(default_factory=list)  # [label, first year, last year] per group, youngest first
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
    stop_after_steps: int = 0  # end the last epoch (and the cosine) after this many of its steps, then validate and save
    checkpoint_every: int = 50  # steps between resumable checkpoints within an epoch
    fp16_backbone: bool = True  # store fine-tuned backbone tensors in half precision
    init_from: str = ""  # a facekit checkpoint whose tensors (trained heads, fine-tuned blocks) start this run
    images: bool = False  # train on faces cropped and augmented each step (facekit.training.augment), not the cache
    augmentation: str = "standard"  # with images: "standard", or "real_photos" (small, JPEG'd, noisy, occluded faces)
    crop_size: int = 0  # pixels of the model's input; 0 = the backbone's default (a changed size needs images)
    detect: bool = True  # False: every image is already the face (aligned chips such as Kaggle's 48x48), resized

    @classmethod
    def from_yaml(cls, path: Path, **overrides) -> "TrainConfig":
        data = yaml.safe_load(Path(path).read_text()) or {}
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown options {sorted(unknown)}")
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown options {sorted(unknown)}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)

    def dataset_specs(self) -> list[DatasetSpec]:
        """The run's datasets: ``datasets`` if given, else ``data`` with ``split``."""
        if self.datasets:
            return [DatasetSpec.from_value(entry) for entry in self.datasets]
        if not self.data:
            raise ValueError("a recipe needs `data` (one dataset) or `datasets` (a list)")
        return [DatasetSpec(self.data, 1.0, self.split)]

    def to_dict(self) -> dict:
        return asdict(self)

    def model_config(self) -> ModelConfig:
        """The network this recipe trains, with the backbone's defaults filled in: a backbone that does not
        start from the shipped face weights trains whole, from its first block, unless ``trainable_from`` says."""
        spec = architecture(self.backbone)
        model = ModelConfig(backbone=self.backbone, weights=self.weights or spec.default_weights,
                            trainable_from=self.trainable_from, hidden=self.hidden, dropout=self.dropout,
                            crop=CropSettings(size=self.crop_size or spec.input_size), ethnicities=self.ethnicities,
                            gender_head=self.gender_head, age_head=self.age_head,
                            age_groups=tuple(tuple(group) for group in self.age_groups))
        if model.stores_backbone and not model.trainable_from:
            model = replace(model, trainable_from=block_paths(self.backbone)[0][0])
        return model

    def from_images(self) -> bool:
        """Whether faces are cropped from their images each step: asked for, or a backbone the feature cache
        (of the shipped face weights) does not hold."""
        return self.images or self.model_config().stores_backbone
