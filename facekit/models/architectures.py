"""Every backbone behind one interface: how to build it, its blocks in forward order, its pooling,
its input, and the layer Grad-CAM explains.

The model cuts a backbone into named blocks (``blocks``) so that training can freeze the
lower ones and run the rest, and so that any backbone's classifier is dropped and the
pooled features feed facekit's heads. Every network takes the same input, a crop
standardized per image (``facekit.models.model.to_batch``); a one-channel network sees its
luminance, standardized again (``InputAdapter``), so greyscale handling lives in the graph
itself and every engine (PyTorch, ONNX, int8) gets it.

Grad-CAM explains the output of ``Architecture.cam_block``: the deepest block whose map is
still about 6-7 cells across at the default input, fine enough to point at a part of the face.

| backbone | default input | pooled features | Grad-CAM block | default weights |
|---|---|---|---|---|
| inception_resnet_v1 | 160 RGB | 1792 | repeat_2 | ms-celeb-keras (converted at set-up) |
| resnet18 / resnet50 | 112 RGB | 512 / 2048 | layer3 | none |
| densenet121 | 112 RGB | 1024 | denseblock3 | none |
| vgg16_bn | 112 RGB | 512 | stage4 | none |
| inception_v3 | 128 RGB | 2048 | Mixed_6e | none |
| efficientnet_b0 | 112 RGB | 1280 | features.5 | none |
| mobilenet_v3_large | 112 RGB | 960 | features.12 | none |
| small_cnn | 48 grey | 256 | block3 | none |

``weights`` is ``none`` (random initialisation), a torchvision weights name such as
``IMAGENET1K_V1`` or ``DEFAULT`` (fetched by torchvision's own mechanism into its cache,
``$TORCH_HOME``), or a local ``.pth``/``.safetensors`` state dict; for Inception-ResNet-v1 it
is one of the cached face weights of ``facekit.models.backbones``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from facekit.models.backbones import FACENET_PYTORCH_WEIGHTS, MS_CELEB, WeightsMissing, load_backbone

DEFAULT_BACKBONE = "inception_resnet_v1"
NO_WEIGHTS = "none"
# ITU-R BT.601 luma weights: what a greyscale photo keeps of a colour one.
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Architecture:
    """What facekit needs to know of one backbone."""

    name: str
    input_size: int  # default crop side in pixels (a recipe's crop_size overrides it)
    channels: int  # 3: colour; 1: the network sees luminance
    feature_size: int  # length of the pooled feature vector the heads read
    cam_block: str  # block whose output Grad-CAM explains
    default_weights: str
    pool_relu: bool = False  # densenet: a ReLU after the last batch norm, before pooling


ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture(DEFAULT_BACKBONE, 160, 3, 1792, "repeat_2", MS_CELEB),
    Architecture("resnet18", 112, 3, 512, "layer3", NO_WEIGHTS),
    Architecture("resnet50", 112, 3, 2048, "layer3", NO_WEIGHTS),
    Architecture("densenet121", 112, 3, 1024, "denseblock3", NO_WEIGHTS, pool_relu=True),
    Architecture("vgg16_bn", 112, 3, 512, "stage4", NO_WEIGHTS),
    Architecture("inception_v3", 128, 3, 2048, "Mixed_6e", NO_WEIGHTS),
    Architecture("efficientnet_b0", 112, 3, 1280, "features.5", NO_WEIGHTS),
    Architecture("mobilenet_v3_large", 112, 3, 960, "features.12", NO_WEIGHTS),
    Architecture("small_cnn", 48, 1, 256, "block3", NO_WEIGHTS),
)}
TORCHVISION_BACKBONES = ("resnet18", "resnet50", "densenet121", "vgg16_bn", "inception_v3", "efficientnet_b0",
                         "mobilenet_v3_large")
# Where each torchvision network's classifier sits: dropped, since facekit's heads read the pooled features.
_CLASSIFIER_PREFIXES = ("fc.", "classifier.", "AuxLogits.")
_FACENET_STEM = ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a", "conv2d_4b")
FACENET_UPPER_BLOCKS = ("repeat_1", "mixed_6a", "repeat_2", "mixed_7a", "repeat_3", "block8")
_INCEPTION_V3_STEM = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                      "Conv2d_4a_3x3", "maxpool2")
_INCEPTION_V3_MIXED = ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                       "Mixed_7a", "Mixed_7b", "Mixed_7c")


def architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown backbone {name!r}; expected one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


class SmallCNN(nn.Module):
    """Seed 002's kind of network for 48x48 greyscale faces: four conv-BN-ReLU-pool blocks, dropout."""

    def __init__(self, channels: int = 1, widths: tuple[int, ...] = (32, 64, 128, 256), dropout: float = 0.25) -> None:
        super().__init__()
        blocks, previous = [], channels
        for width in widths:
            blocks.append(nn.Sequential(
                nn.Conv2d(previous, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                nn.MaxPool2d(2), nn.Dropout2d(dropout)))
            previous = width
        for i, block in enumerate(blocks):
            self.add_module(f"block{i + 1}", block)


class InputAdapter(nn.Module):
    """The shared standardized RGB input as this backbone takes it: unchanged, or its luminance re-standardized."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("luma", torch.tensor(LUMA).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels == 3:
            return images
        grey = (images * self.luma).sum(1, keepdim=True)
        flat = grey.flatten(1)
        std = flat.std(1).clamp_min(1.0 / flat.shape[1] ** 0.5)
        return (grey - flat.mean(1)[:, None, None, None]) / std[:, None, None, None]


class GlobalPool(nn.Module):
    """The pooled feature vector: global average over the last block's map (after a ReLU for densenet)."""

    def __init__(self, relu: bool = False) -> None:
        super().__init__()
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.relu:
            x = torch.relu(x)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


# Layers of torchvision's vgg16_bn ``features`` per stage (conv-BN-ReLU triples, then a max pool).
_VGG16_BN_STAGES = (7, 7, 10, 10, 10)
# Entries of ``features`` in efficientnet_b0 and mobilenet_v3_large.
_FEATURE_STAGES = {"efficientnet_b0": 9, "mobilenet_v3_large": 17}


def block_paths(name: str) -> list[tuple[str, tuple[str, ...]]]:
    """(block name, module paths under the backbone) in forward order; the paths run one after another."""
    if name == DEFAULT_BACKBONE:
        return [("stem", _FACENET_STEM)] + [(block, (block,)) for block in FACENET_UPPER_BLOCKS]
    if name.startswith("resnet"):
        return [("stem", ("conv1", "bn1", "relu", "maxpool"))] + [(f"layer{i}", (f"layer{i}",)) for i in range(1, 5)]
    if name == "densenet121":
        blocks = [("stem", ("features.conv0", "features.norm0", "features.relu0", "features.pool0"))]
        for i in range(1, 5):
            blocks.append((f"denseblock{i}", (f"features.denseblock{i}",) + (("features.norm5",) if i == 4 else ())))
            if i < 4:
                blocks.append((f"transition{i}", (f"features.transition{i}",)))
        return blocks
    if name == "vgg16_bn":
        starts = [sum(_VGG16_BN_STAGES[:i]) for i in range(len(_VGG16_BN_STAGES))]
        return [(f"stage{i + 1}", tuple(f"features.{j}" for j in range(start, start + count)))
                for i, (start, count) in enumerate(zip(starts, _VGG16_BN_STAGES))]
    if name == "inception_v3":
        return [("stem", _INCEPTION_V3_STEM)] + [(block, (block,)) for block in _INCEPTION_V3_MIXED]
    if name in _FEATURE_STAGES:
        return [(f"features.{i}", (f"features.{i}",)) for i in range(_FEATURE_STAGES[name])]
    if name == "small_cnn":
        return [(f"block{i}", (f"block{i}",)) for i in range(1, 5)]
    raise ValueError(f"unknown backbone {name!r}")


def _torchvision_model(name: str) -> nn.Module:
    import torchvision

    options = {"aux_logits": False, "init_weights": True} if name == "inception_v3" else {}
    model = torchvision.models.get_model(name, weights=None, **options)
    for attribute in ("fc", "classifier"):  # facekit's heads read the pooled features instead
        if hasattr(model, attribute):
            setattr(model, attribute, nn.Identity())
    return model


def _load_torchvision_weights(name: str, model: nn.Module, weights: str) -> None:
    """torchvision's named weights through its own download-and-cache mechanism, or a clear one-line error."""
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(name)
        chosen = enum.DEFAULT if weights == "DEFAULT" else enum[weights]
    except KeyError:
        raise ValueError(f"{name} has no torchvision weights {weights!r}; it has "
                         f"{', '.join(w.name for w in torchvision.models.get_model_weights(name))}") from None
    try:
        state = chosen.get_state_dict(progress=False, check_hash=True)
    except OSError as error:  # URLError and socket errors are OSErrors
        raise WeightsMissing(f"could not fetch torchvision's {name} {chosen.name} weights ({type(error).__name__}: "
                             f"{error}); on a machine without internet, download {chosen.url} elsewhere and pass its "
                             f"path as --weights, or use --weights none") from None
    _load_state(model, state, f"{name} {chosen.name}")


def _read_state_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):  # training scripts often wrap the state dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds no state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load every backbone tensor of ``state``; only a classifier may be missing or left over."""
    state = {k: v for k, v in state.items() if not k.startswith(_CLASSIFIER_PREFIXES)}
    own = model.state_dict()
    mismatched = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    if mismatched:
        raise ValueError(f"{source} does not fit this backbone: {len(mismatched)} tensors have other shapes, "
                         f"first {mismatched[0]} {tuple(state[mismatched[0]].shape)} where the backbone has "
                         f"{tuple(own[mismatched[0]].shape)}")
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(_CLASSIFIER_PREFIXES)]
    if missing or unexpected:
        raise ValueError(f"{source} does not fit this backbone: missing {missing[:3]}, unexpected {unexpected[:3]}")


def build_backbone(name: str, weights: str) -> nn.Module:
    """The backbone ``name`` with ``weights`` (see the module docstring), its classifier unused."""
    spec = architecture(name)
    path = Path(weights).expanduser()
    is_file = path.suffix in (".pth", ".pt", ".safetensors")
    if is_file and not path.is_file():
        raise FileNotFoundError(f"no weights file {path}")
    if name == DEFAULT_BACKBONE:
        if is_file:
            from facekit.models.backbones import build_inception_resnet_v1

            state = _read_state_file(path)
            model = build_inception_resnet_v1(state["last_linear.weight"].shape[0])
            _load_state(model, {k: v for k, v in state.items() if not k.startswith("logits.")}, str(path))
            return model.eval()
        if weights == NO_WEIGHTS:
            from facekit.models.backbones import build_inception_resnet_v1

            return build_inception_resnet_v1()
        if weights not in (MS_CELEB, *FACENET_PYTORCH_WEIGHTS):
            raise ValueError(f"inception_resnet_v1 weights are {MS_CELEB}, {', '.join(FACENET_PYTORCH_WEIGHTS)}, "
                             f"none or a file, not {weights!r}")
        return load_backbone(weights)
    model = SmallCNN(spec.channels) if name == "small_cnn" else _torchvision_model(name)
    if is_file:
        _load_state(model, _read_state_file(path), str(path))
    elif weights != NO_WEIGHTS:
        if name == "small_cnn":
            raise ValueError("small_cnn has no published weights: --weights none or a file")
        _load_torchvision_weights(name, model, weights)
    return model


def pretrained(weights: str) -> bool:
    """Whether training starts from learnt weights (whose batch-norm statistics it keeps)."""
    return weights != NO_WEIGHTS
