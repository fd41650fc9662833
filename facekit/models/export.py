"""The model as an ONNX graph run by ONNX Runtime: the same outputs, faster on CPU.

PyTorch stays the source of truth (training, Grad-CAM, checkpoints). For inference, the
loaded ``FaceModel`` is exported once and the graph cached under the user cache, keyed by
a hash of every tensor and the torch version, so a new checkpoint or a new exporter gets a
new graph and nothing is ever shipped twice. ONNX Runtime runs the network faster than eager
PyTorch on CPU, and the test suite checks that its outputs match PyTorch's to 1e-4.

An int8 graph runs the network faster again (timings: docs/benchmarks.md). Its activation ranges are
measured once on real training crops (``calibrate_int8``) and kept beside the checkpoint in
ONNX Runtime's calibration-cache JSON, so every machine quantizes the same graph the same
way without the training data; the quantized graph itself is built at first use and cached.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch import nn

from facekit.cache import cache_dir
from facekit.files import atomic_write
from facekit.models.model import FaceModel

OUTPUTS = FaceModel.HEADS


class _TupleOutputs(nn.Module):
    """ONNX graphs return tuples, not dicts."""

    def __init__(self, model: FaceModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        logits = self.model(images)
        return tuple(logits[head] for head in OUTPUTS)


def weights_digest(model: FaceModel) -> str:
    """Short sha256 of every tensor of the model: names, shapes and values."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().float().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


# Which of torch's two ONNX exporters writes the graph: the TorchScript tracer. It gives the same
# outputs as the torch.export-based one for every backbone and is many times faster on the deep
# torchvision networks (timings: docs/benchmarks.md).
EXPORTER = "torchscript"


def model_digest(model: FaceModel) -> str:
    """The graph cache's key: the weights, the exporter and its version."""
    return hashlib.sha256(f"{torch.__version__}/{EXPORTER}/{weights_digest(model)}".encode()).hexdigest()[:16]


def export_onnx(model: FaceModel, path: Path) -> Path:
    """Write the model (eval mode, any batch size) as one self-contained ONNX file, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = model.config.crop.size
    example = torch.zeros(2, 3, size, size)
    with warnings.catch_warnings():  # the tracer's notes on Python-side shapes, about a graph that is checked
        warnings.simplefilter("ignore")
        atomic_write(path, lambda temporary: torch.onnx.export(
            _TupleOutputs(model).eval(), (example,), str(temporary), input_names=["images"],
            output_names=list(OUTPUTS), dynamo=False, dynamic_axes={"images": {0: "batch"}}))
    return path


class OnnxModel:
    """Callable like ``FaceModel`` for inference: standardized NCHW batch in, logits per head out."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = self.session.run(None, {"images": np.ascontiguousarray(images.numpy(), dtype=np.float32)})
        return {head: torch.from_numpy(value) for head, value in zip(OUTPUTS, outputs)}


def onnx_path(model: FaceModel) -> Path:
    """The cached float graph of ``model``, exported first if this model has none yet (slow, once)."""
    path = cache_dir() / "onnx" / f"facemodel-{model_digest(model)}.onnx"
    if not path.exists():
        export_onnx(model, path)
    return path


def onnx_model(model: FaceModel, threads: int | None = None) -> OnnxModel:
    return OnnxModel(onnx_path(model), threads)


def int8_ranges_path(checkpoint: Path) -> Path:
    """Where a checkpoint's int8 calibration lives: beside it, ``<name>.int8.json``."""
    return checkpoint.with_suffix(".int8.json")


def _int8_settings() -> dict:
    """Static QDQ quantization for x86 CPUs with VNNI: uint8 activations, int8 weights per output channel."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    return {"quant_format": QuantFormat.QDQ, "per_channel": True, "reduce_range": False,
            "activation_type": QuantType.QUInt8, "weight_type": QuantType.QInt8,
            "calibrate_method": CalibrationMethod.MinMax}


@contextlib.contextmanager
def _quiet_quantizer():
    """ONNX Runtime's quantizer advises pre-processing on the root logger at every call (our graph needs none),
    and warns once per weight where per-channel quantization has no channel axis (DenseNet's batch norms that
    follow no convolution), which it then quantizes per tensor: neither is a fault of the graph."""
    class Advice(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            message = record.getMessage()
            return "pre-process" not in message and "is out-of-range for weight" not in message

    advice = Advice()
    logging.getLogger().addFilter(advice)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(advice)


class _Batches:
    """ONNX Runtime's calibration reader over standardized NCHW batches."""

    def __init__(self, batches: Iterable[torch.Tensor]) -> None:
        self.batches = iter(batches)

    def get_next(self) -> dict | None:
        batch = next(self.batches, None)
        return None if batch is None else {"images": np.ascontiguousarray(batch.numpy(), dtype=np.float32)}


def calibrate_int8(model: FaceModel, batches: Iterable[torch.Tensor], ranges: Path) -> Path:
    """Measure every activation's range over ``batches`` of real crops and write them to ``ranges``.

    The file is ONNX Runtime's calibration cache plus the digest of the weights it was measured
    for, so ranges are never applied to another model.
    """
    from onnxruntime.quantization import quantize_static

    ranges = Path(ranges)
    if ranges.exists():
        ranges.unlink()  # ONNX Runtime would reuse it instead of measuring
    with tempfile.TemporaryDirectory() as folder, _quiet_quantizer():
        quantize_static(str(onnx_path(model)), str(Path(folder) / "int8.onnx"), _Batches(batches),
                        calibration_cache_path=str(ranges), **_int8_settings())
    content = json.loads(ranges.read_text())
    content["facekit_weights"] = weights_digest(model)
    ranges.write_text(json.dumps(content))
    return ranges


def int8_model(model: FaceModel, ranges: Path, threads: int | None = None) -> OnnxModel:
    """The int8 graph of ``model`` quantized with the calibration ``ranges`` (built once, then cached).

    Raises ValueError when the ranges were measured for other weights. The weights are hashed
    once per load; the float graph is looked up only when the int8 one must be built.
    """
    from onnxruntime.quantization import quantize_static

    ranges = Path(ranges)
    content = ranges.read_bytes()
    weights = weights_digest(model)
    measured_for = json.loads(content).get("facekit_weights")
    if measured_for != weights:
        raise ValueError(f"{ranges} holds int8 ranges for other weights ({measured_for}); "
                         "run `facekit quantize` for this checkpoint")
    key = hashlib.sha256(f"{torch.__version__}/{EXPORTER}/{weights}/".encode() + content).hexdigest()[:16]
    path = cache_dir() / "onnx" / f"facemodel-{key}-int8.onnx"
    if not path.exists():
        source = onnx_path(model)  # exports the float graph first if needed, which also makes the folder
        def write(temporary: Path) -> None:
            with _quiet_quantizer():
                quantize_static(str(source), str(temporary), None, calibration_cache_path=str(ranges),
                                **_int8_settings())
        atomic_write(path, write)
    return OnnxModel(path, threads)
